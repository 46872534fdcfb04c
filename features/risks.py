"""The risks the service scores, one per finding of the contract but ``not_in_need``, with their
Chinese names. Every part of the project that names a risk (settings, training, the warm list, the
batch and its worklist, the auditor's pages) reads it here."""

from __future__ import annotations

from features.contract import FINDINGS

RISKS: tuple[str, ...] = tuple(f for f in FINDINGS if f != "not_in_need")

RISK_LABELS: dict[str, str] = {
    "illness_poverty": "因病致贫", "disability_poverty": "因残致贫", "unemployment_poverty": "因失业致贫",
    "elderly_care_need": "老年照护需求", "child_in_difficulty": "困境儿童",
}
FINDING_LABELS: dict[str, str] = {**RISK_LABELS, "not_in_need": "无需救助"}

if set(RISK_LABELS) != set(RISKS):  # a finding added to the contract needs its Chinese name here
    raise ValueError(f"RISK_LABELS must name exactly the risks {RISKS}, has {sorted(RISK_LABELS)}")


def risk_label(risk: str) -> str:
    """The Chinese name of ``risk``; an unknown code is shown as itself."""
    return RISK_LABELS.get(risk, risk)
