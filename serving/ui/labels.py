"""Chinese display names for the contract's codes, as an auditor reads them on the pages.

Codes stay beside their names (``杨舍 yangshe``) so that a page can be matched to the raw data; a
code missing here (a town added to the policy file later, say) is shown as the code alone. The
names themselves are data in :mod:`features.labels`.
"""

from __future__ import annotations

from features.labels import (  # noqa: F401 - re-exported for the templates and pages
    BANDS,
    DIAGNOSES,
    DISABILITY,
    EMPLOYMENT,
    HOUSING,
    HUKOU,
    INCOME_SOURCES,
    PROGRAMS,
    RELATIONS,
    RISKS,
    SETTINGS,
    SEXES,
    TABLES,
    TOWNS,
)

SCORERS = {"model": "模型"}  # rule rows are named from the run's own evaluation/rules.json


def short(kind: str, code: object) -> str:
    """The Chinese name alone (the code where there is none), for narrow table cells."""
    if code is None or code == "":
        return "—"
    return str(TABLES.get(kind, {}).get(code, code))


def name(kind: str, code: object) -> str:
    """``杨舍 yangshe`` for a known code; the code itself otherwise; ``—`` for a missing one."""
    if code is None or code == "":
        return "—"
    zh = TABLES.get(kind, {}).get(code)
    if zh is None:
        return str(code)
    return zh if kind in ("disability_grade", "band", "sex") else f"{zh} {code}"
