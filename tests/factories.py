"""Factories for tiny hand-made inputs: one row of each contract table, one household bundle, and
whole :class:`features.tables.Tables` from several bundles.

Every factory returns a *valid* row by default (the contract's example household) and takes keyword
overrides, so a test states only what it is about. ``bundle`` with ``income=[]`` / ``claims=[]``
replaces the default rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from features.build import build_features
from features.policy import PolicyBook
from features.tables import TABLE_COLUMNS, Tables, make_tables, tables_from_bundle

AS_OF = "2026-06-30"  # the contract example's as-of date; the 2025.1 policy (低保 1100) is in force


def household_row(household_id: str = "H1", **over: Any) -> dict[str, Any]:
    return {"household_id": household_id, "town": "tangqiao", "hukou_type": "rural", "housing": "owned",
            "property_count": 1, "vehicle_count": 0, "financial_assets": 8000.0, **over}


def member(person_id: str = "P1", relation: str = "head", birth_date: str = "1961-03-02", **over: Any
           ) -> dict[str, Any]:
    return {"person_id": person_id, "relation": relation, "sex": "M", "birth_date": birth_date,
            "employment": "farmer", "disability_grade": 0, **over}


def income_row(month: str = "2026-05", amount: float = 1500.0, person_id: str = "P1",
               source: str = "agriculture") -> dict[str, Any]:
    return {"person_id": person_id, "month": month, "source": source, "amount": float(amount)}


def monthly_income(months: Iterable[str], amount: float, person_id: str = "P1", source: str = "wage"
                   ) -> list[dict[str, Any]]:
    return [income_row(m, amount, person_id, source) for m in months]


def months_back(as_of: str, n: int) -> list[str]:
    """The ``n`` months up to and including the month of ``as_of``, oldest first."""
    end = pd.Period(as_of[:7], freq="M")
    return [str(end - k) for k in range(n - 1, -1, -1)]


def claim(claim_id: str = "C1", service_date: str = "2026-04-11", out_of_pocket: float = 19000.0, *,
          person_id: str = "P1", setting: str = "outpatient", diagnosis_group: str = "other",
          fund_paid: float = 0.0, critical_illness_paid: float = 0.0, assistance_paid: float = 0.0,
          inpatient_days: int = 0, total_cost: float | None = None) -> dict[str, Any]:
    """A settled claim; ``total_cost`` defaults to the sum of its parts (the contract invariant)."""
    if total_cost is None:
        total_cost = fund_paid + critical_illness_paid + assistance_paid + out_of_pocket
    return {"claim_id": claim_id, "person_id": person_id, "service_date": service_date, "setting": setting,
            "diagnosis_group": diagnosis_group, "total_cost": float(total_cost), "fund_paid": float(fund_paid),
            "critical_illness_paid": float(critical_illness_paid), "assistance_paid": float(assistance_paid),
            "out_of_pocket": float(out_of_pocket), "inpatient_days": inpatient_days}


def assistance_row(program: str = "dibao", start_date: str = "2024-01-01", end_date: str | None = None,
                   monthly_amount: float = 1100.0) -> dict[str, Any]:
    return {"program": program, "start_date": start_date, "end_date": end_date,
            "monthly_amount": float(monthly_amount)}


_DEFAULT = object()


def bundle(household_id: str = "H1", *, as_of: str = AS_OF, members: Sequence[Mapping[str, Any]] | None = None,
           income: Any = _DEFAULT, claims: Any = _DEFAULT, assistance: Sequence[Mapping[str, Any]] = (),
           **household_over: Any) -> dict[str, Any]:
    """The contract's example bundle; any list given replaces the default rows."""
    return {
        "as_of": as_of,
        "household": household_row(household_id, **household_over),
        "members": [dict(m) for m in (members if members is not None else [member()])],
        "income": [dict(r) for r in ([income_row()] if income is _DEFAULT else income)],
        "claims": [dict(r) for r in ([claim(setting="inpatient", diagnosis_group="cancer", fund_paid=40000,
                                            critical_illness_paid=9000, inpatient_days=12)]
                                     if claims is _DEFAULT else claims)],
        "assistance": [dict(r) for r in assistance],
    }


def tables_of(*bundles: Mapping[str, Any], verifications: Sequence[Mapping[str, Any]] | None = None) -> Tables:
    """Whole tables holding several bundles (the batch path), optionally with verifications."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLE_COLUMNS}
    for b in bundles:
        hid = b["household"]["household_id"]
        rows["households"].append(dict(b["household"]))
        rows["persons"] += [{**m, "household_id": hid} for m in b["members"]]
        rows["income"] += [dict(r) for r in b["income"]]
        rows["claims"] += [dict(r) for r in b["claims"]]
        rows["assistance"] += [{**a, "household_id": hid} for a in b["assistance"]]
    rows["verifications"] = [dict(v) for v in verifications or []]
    return make_tables(**{name: pd.DataFrame(r, columns=list(TABLE_COLUMNS[name])) for name, r in rows.items()})


def features_of(b: Mapping[str, Any], policy: PolicyBook, as_of: str | None = None) -> pd.Series:
    """The feature row of one bundle built through the API path (``tables_from_bundle``)."""
    frame = build_features(tables_from_bundle(b), as_of or b["as_of"], policy)
    assert len(frame) == 1
    return frame.iloc[0]


def with_person_ids(b: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """A copy of bundle ``b`` with persons renamed everywhere they appear (members, income, claims).

    Person ids must be unique across households, so tests that put several bundles in one set of
    tables rename the default ``P1``.
    """
    def ren(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "person_id": mapping.get(r["person_id"], r["person_id"])} for r in rows]

    return {**b, "members": ren(b["members"]), "income": ren(b["income"]), "claims": ren(b["claims"]),
            "assistance": [dict(a) for a in b["assistance"]], "household": dict(b["household"])}
