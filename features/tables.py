"""The contract's raw tables (../shared/contract.md) as one typed container.

Training reads them from files (``features.io``), the API builds them from one household bundle
(:func:`tables_from_bundle`); both then go through the same :func:`features.build.build_features`.
Everything here is pure: no files, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

TOWNS_DEFAULT = (
    "yangshe", "tangqiao", "jingang", "jinfeng", "leyu", "fenghuang", "nanfeng", "daxin", "changyinsha",
)
HUKOU_TYPES = ("urban", "rural")
HOUSING = ("owned", "rented", "public_rental", "none")
RELATIONS = ("head", "spouse", "child", "parent", "grandchild", "sibling", "other")
SEXES = ("M", "F")
EMPLOYMENT = (
    "employed", "self_employed", "farmer", "unemployed", "retired", "student", "unable_to_work", "other",
)
INCOME_SOURCES = ("wage", "pension", "unemployment_benefit", "business", "agriculture", "transfer", "other")
SETTINGS = ("outpatient", "inpatient", "special_outpatient", "pharmacy")
DIAGNOSIS_GROUPS = (
    "cancer", "renal", "cardio_cerebrovascular", "diabetes_metabolic", "mental", "respiratory", "injury",
    "maternity", "rare_disease", "other",
)
PROGRAMS = ("dibao", "dibao_edge", "tekun", "expenditure_hardship", "temporary")
FINDINGS = (
    "illness_poverty", "disability_poverty", "unemployment_poverty", "elderly_care_need",
    "child_in_difficulty", "not_in_need",
)

# Column names exactly as the contract gives them, in its order. Kinds: str, cat (closed list),
# int, money, date, month, date_or_null.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "households": {
        "household_id": "str", "town": "cat", "hukou_type": "cat", "housing": "cat",
        "property_count": "int", "vehicle_count": "int", "financial_assets": "money",
    },
    "persons": {
        "person_id": "str", "household_id": "str", "relation": "cat", "sex": "cat", "birth_date": "date",
        "employment": "cat", "disability_grade": "int",
    },
    "income": {"person_id": "str", "month": "month", "source": "cat", "amount": "money"},
    "claims": {
        "claim_id": "str", "person_id": "str", "service_date": "date", "setting": "cat",
        "diagnosis_group": "cat", "total_cost": "money", "fund_paid": "money",
        "critical_illness_paid": "money", "assistance_paid": "money", "out_of_pocket": "money",
        "inpatient_days": "int",
    },
    "assistance": {
        "household_id": "str", "program": "cat", "start_date": "date", "end_date": "date_or_null",
        "monthly_amount": "money",
    },
    "verifications": {"household_id": "str", "visited_on": "date", "finding": "cat"},
}

CATEGORIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("households", "hukou_type"): HUKOU_TYPES,
    ("households", "housing"): HOUSING,
    ("persons", "relation"): RELATIONS,
    ("persons", "sex"): SEXES,
    ("persons", "employment"): EMPLOYMENT,
    ("income", "source"): INCOME_SOURCES,
    ("claims", "setting"): SETTINGS,
    ("claims", "diagnosis_group"): DIAGNOSIS_GROUPS,
    ("assistance", "program"): PROGRAMS,
    ("verifications", "finding"): FINDINGS,
}


@dataclass(frozen=True)
class Tables:
    """The contract's raw tables with normalised dtypes.

    Dates are ``datetime64[ns]``; months are kept as the integer ``month_index`` = year*12 + month-1
    beside the contract's ``month`` string. ``verifications`` is empty where labels are not known
    (the API never receives them).
    """

    households: pd.DataFrame
    persons: pd.DataFrame
    income: pd.DataFrame
    claims: pd.DataFrame
    assistance: pd.DataFrame
    verifications: pd.DataFrame

    def __iter__(self):  # pragma: no cover - convenience
        return ((f.name, getattr(self, f.name)) for f in fields(self))


def month_index(year: np.ndarray | int, month: np.ndarray | int) -> np.ndarray | int:
    """Months since year 0, so that month arithmetic is integer arithmetic."""
    return year * 12 + (month - 1)


def month_index_of(values: pd.Series) -> pd.Series:
    """``'YYYY-MM'`` strings to integer month indexes."""
    s = values.astype("string")
    year = pd.to_numeric(s.str.slice(0, 4), errors="coerce")
    month = pd.to_numeric(s.str.slice(5, 7), errors="coerce")
    # a malformed month becomes -1 here and is reported by ``features.io.check_tables``
    return (year * 12 + month - 1).fillna(-1).astype("int64")


def empty_table(name: str) -> pd.DataFrame:
    return normalise_table(name, pd.DataFrame({c: [] for c in TABLE_COLUMNS[name]}))


def normalise_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Gives one raw table the dtypes the feature code expects; checks nothing beyond dtypes.

    Content checks (enums, invariants, dates after as-of) belong to the boundary that received
    the data: ``features.io.check_tables`` for files, the API's request models for bundles.
    """
    spec = TABLE_COLUMNS[name]
    missing = [c for c in spec if c not in frame.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks columns {missing}")
    out = {}
    for col, kind in spec.items():
        s = frame[col]
        if kind in ("str", "cat"):
            out[col] = s.astype("string").astype(object) if len(s) else pd.Series([], dtype=object)
        elif kind in ("int", "money"):
            try:
                num = pd.to_numeric(s)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}.{col}: not a number ({exc})") from None
            # a missing count stays missing (float NaN) for the boundary check to report, not 0
            out[col] = num.astype("int64") if kind == "int" and not num.isna().any() else num.astype("float64")
        elif kind in ("date", "date_or_null"):
            out[col] = pd.to_datetime(s, format="%Y-%m-%d" if s.dtype == object else None).astype("datetime64[ns]")
        elif kind == "month":
            out[col] = s.astype("string").astype(object) if len(s) else pd.Series([], dtype=object)
    result = pd.DataFrame(out, index=frame.index).reset_index(drop=True)
    if name == "income":
        result["month_index"] = month_index_of(result["month"]) if len(result) else pd.Series([], dtype="int64")
    return result


def make_tables(**frames: pd.DataFrame | None) -> Tables:
    """Builds :class:`Tables` from raw frames; a table not given is empty."""
    unknown = set(frames) - set(TABLE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown tables {sorted(unknown)}")
    return Tables(**{
        name: normalise_table(name, frames[name]) if frames.get(name) is not None else empty_table(name)
        for name in TABLE_COLUMNS
    })


def tables_from_bundle(bundle: Mapping[str, Any]) -> Tables:
    """One validated household bundle (the API's request body, as plain dicts) to :class:`Tables`.

    Members may omit ``household_id``; they belong to the bundle's household by construction.
    """
    household = dict(bundle["household"])
    hid = household["household_id"]
    members: Sequence[Mapping[str, Any]] = bundle.get("members") or []
    persons = pd.DataFrame(
        [{**{c: m.get(c) for c in TABLE_COLUMNS["persons"]}, "household_id": hid} for m in members],
        columns=list(TABLE_COLUMNS["persons"]),
    )
    assistance = pd.DataFrame(
        [{**{c: a.get(c) for c in TABLE_COLUMNS["assistance"]}, "household_id": hid}
         for a in bundle.get("assistance") or []],
        columns=list(TABLE_COLUMNS["assistance"]),
    )
    return make_tables(
        households=pd.DataFrame([{c: household.get(c) for c in TABLE_COLUMNS["households"]}]),
        persons=persons,
        income=pd.DataFrame(list(bundle.get("income") or []), columns=list(TABLE_COLUMNS["income"])),
        claims=pd.DataFrame(list(bundle.get("claims") or []), columns=list(TABLE_COLUMNS["claims"])),
        assistance=assistance,
    )


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for row in frame.loc[:, list(columns)].to_dict("records"):
        rec = {}
        for k, v in row.items():
            if isinstance(v, pd.Timestamp):
                rec[k] = v.strftime("%Y-%m-%d")
            elif v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
                rec[k] = None
            elif isinstance(v, np.integer):
                rec[k] = int(v)
            elif isinstance(v, np.floating):
                rec[k] = float(v)
            else:
                rec[k] = v
        out.append(rec)
    return out


def bundle_from_tables(tables: Tables, household_id: str, as_of: str) -> dict[str, Any]:
    """The API request body for one household, holding its rows dated on or before ``as_of``.

    The inverse of :func:`tables_from_bundle`; the batch/API parity test and the examples use it.
    """
    t = pd.Timestamp(as_of)
    m = t.year * 12 + t.month - 1
    hh = tables.households.loc[tables.households["household_id"] == household_id]
    if hh.empty:
        raise KeyError(household_id)
    persons = tables.persons.loc[(tables.persons["household_id"] == household_id) & (tables.persons["birth_date"] <= t)]
    ids = set(persons["person_id"])
    income = tables.income.loc[tables.income["person_id"].isin(ids) & (tables.income["month_index"] <= m)]
    claims = tables.claims.loc[tables.claims["person_id"].isin(ids) & (tables.claims["service_date"] <= t)]
    assistance = tables.assistance.loc[(tables.assistance["household_id"] == household_id)
                                       & (tables.assistance["start_date"] <= t)]
    return {
        "as_of": t.strftime("%Y-%m-%d"),
        "household": _records(hh, TABLE_COLUMNS["households"])[0],
        "members": _records(persons, TABLE_COLUMNS["persons"]),
        "income": _records(income, TABLE_COLUMNS["income"]),
        "claims": _records(claims, TABLE_COLUMNS["claims"]),
        "assistance": _records(assistance, TABLE_COLUMNS["assistance"]),
    }
