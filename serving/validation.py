"""Checks across the rows of one bundle (../shared/contract.md, POST /v1/score).

Each problem is reported with the path of the offending field, in FastAPI's 422 shape, so the
platform can fix its data; nothing is dropped or repaired silently.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from pydantic import ValidationError

from features.policy import PolicyBook
from serving.schemas import Bundle

Problem = dict[str, Any]
MAX_AGE = 120


def _p(loc: list[str | int], msg: str, kind: str) -> Problem:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def pydantic_problems(exc: ValidationError, prefix: list[str | int] | None = None) -> list[Problem]:
    """Pydantic's errors without echoing the input back (it may be large or personal)."""
    return [{"loc": [*(prefix or ["body"]), *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)]


def _cents(x: float) -> int:
    return round(x * 100)


def check_bundle(b: Bundle, policy: PolicyBook) -> list[Problem]:
    """Everything the contract requires of a bundle beyond each field's own type and range."""
    out: list[Problem] = []
    as_of: dt.date = b.as_of
    as_of_month = f"{as_of.year:04d}-{as_of.month:02d}"
    try:
        towns = policy.at(as_of).towns
    except ValueError as exc:
        return [_p(["as_of"], str(exc), "value_error.policy")]
    if b.household.town not in towns:
        out.append(_p(["household", "town"], f"unknown town code; known codes: {', '.join(towns)}",
                      "value_error.town"))

    hid = b.household.household_id
    ids = Counter(m.person_id for m in b.members)
    heads = [i for i, m in enumerate(b.members) if m.relation == "head"]
    if len(heads) != 1:
        out.append(_p(["members"], f"exactly one member must have relation 'head', found {len(heads)}",
                      "value_error.head"))
    for i, m in enumerate(b.members):
        if ids[m.person_id] > 1:
            out.append(_p(["members", i, "person_id"], "duplicate person_id in this bundle", "value_error.duplicate"))
        if m.household_id is not None and m.household_id != hid:
            out.append(_p(["members", i, "household_id"], "differs from household.household_id",
                          "value_error.household"))
        if m.birth_date > as_of:
            out.append(_p(["members", i, "birth_date"], "after as_of", "value_error.after_as_of"))
        elif (as_of.year - m.birth_date.year) > MAX_AGE:
            out.append(_p(["members", i, "birth_date"], f"older than {MAX_AGE} years on as_of", "value_error.age"))

    seen_income: set[tuple[str, str, str]] = set()
    for i, r in enumerate(b.income):
        if r.person_id not in ids:
            out.append(_p(["income", i, "person_id"], "not one of the bundle's members", "value_error.unknown_person"))
        if r.month > as_of_month:
            out.append(_p(["income", i, "month"], f"after the month of as_of ({as_of_month})",
                          "value_error.after_as_of"))
        key = (r.person_id, r.month, r.source)
        if key in seen_income:
            out.append(_p(["income", i], "a second row for the same person, month and source",
                          "value_error.duplicate"))
        seen_income.add(key)

    claim_ids = Counter(c.claim_id for c in b.claims)
    for i, c in enumerate(b.claims):
        if claim_ids[c.claim_id] > 1:
            out.append(_p(["claims", i, "claim_id"], "duplicate claim_id in this bundle", "value_error.duplicate"))
        if c.person_id not in ids:
            out.append(_p(["claims", i, "person_id"], "not one of the bundle's members", "value_error.unknown_person"))
        if c.service_date > as_of:
            out.append(_p(["claims", i, "service_date"], "after as_of", "value_error.after_as_of"))
        parts = sum(_cents(x) for x in (c.fund_paid, c.critical_illness_paid, c.assistance_paid, c.out_of_pocket))
        if _cents(c.total_cost) != parts:
            out.append(_p(["claims", i, "total_cost"],
                          f"total_cost {c.total_cost:.2f} != fund_paid + critical_illness_paid + assistance_paid + "
                          f"out_of_pocket = {parts / 100:.2f}", "value_error.claim_invariant"))
        if c.setting != "inpatient" and c.inpatient_days != 0:
            out.append(_p(["claims", i, "inpatient_days"], "must be 0 unless setting is inpatient",
                          "value_error.inpatient_days"))

    for i, a in enumerate(b.assistance):
        if a.household_id is not None and a.household_id != hid:
            out.append(_p(["assistance", i, "household_id"], "differs from household.household_id",
                          "value_error.household"))
        if a.start_date > as_of:
            out.append(_p(["assistance", i, "start_date"], "after as_of", "value_error.after_as_of"))
        if a.end_date is not None and a.end_date < a.start_date:
            out.append(_p(["assistance", i, "end_date"], "before start_date", "value_error.dates"))
    return out


def parse_bundle(raw: Any, policy: PolicyBook, prefix: list[str | int] | None = None
                 ) -> tuple[Bundle | None, list[Problem]]:
    """Validates one raw bundle: ``(bundle, [])`` when it is good, ``(None, problems)`` when not."""
    try:
        bundle = Bundle.model_validate(raw)
    except ValidationError as exc:
        return None, pydantic_problems(exc, prefix)
    problems = check_bundle(bundle, policy)
    if prefix is not None:
        for p in problems:
            p["loc"] = [*prefix, *p["loc"][1:]]
    return (None, problems) if problems else (bundle, [])
