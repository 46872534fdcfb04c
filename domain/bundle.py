"""A household bundle (docs/contract.md, docs/api.md): its pydantic model and the checks
across its rows. The API reads request bodies with it, ``reproduce`` re-reads stored requests with it,
so both hold a bundle to the same rules.

The models are strict: a wrong type, an unknown field, NaN or Infinity, a negative amount, a bad
enum or a malformed date is refused with the field's path, never coerced. :func:`check_bundle` adds
what spans rows (the claim invariant, persons, dates after ``as_of``); each problem is reported with
the path of the offending field, in FastAPI's 422 shape, so the platform can fix its data; nothing is
dropped or repaired silently.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from features.policy import PolicyBook
from features.tables import (
    DIAGNOSIS_GROUPS,
    EMPLOYMENT,
    HOUSING,
    HUKOU_TYPES,
    INCOME_SOURCES,
    PROGRAMS,
    RELATIONS,
    SETTINGS,
    SEXES,
)

# The contract's own example (docs/api.md, POST /v1/score): the API's documented example body.
CONTRACT_EXAMPLE: dict[str, Any] = {
    "as_of": "2026-06-30",
    "household": {"household_id": "H000123", "town": "tangqiao", "hukou_type": "rural", "housing": "owned",
                  "property_count": 1, "vehicle_count": 0, "financial_assets": 8000},
    "members": [{"person_id": "P0001", "relation": "head", "sex": "M", "birth_date": "1961-03-02",
                 "employment": "farmer", "disability_grade": 0}],
    "income": [{"person_id": "P0001", "month": "2026-05", "source": "agriculture", "amount": 1500}],
    "claims": [{"claim_id": "C1", "person_id": "P0001", "service_date": "2026-04-11", "setting": "inpatient",
                "diagnosis_group": "cancer", "total_cost": 68000, "fund_paid": 40000,
                "critical_illness_paid": 9000, "assistance_paid": 0, "out_of_pocket": 19000,
                "inpatient_days": 12}],
    "assistance": [],
}

MAX_MEMBERS = 50
MAX_ROWS = 5000          # income or claim rows in one bundle: 50 persons × 12 months × 7 sources ≈ 4,200
MAX_ASSISTANCE_ROWS = 500
MAX_BATCH = 1000
MAX_MONEY = 1e10         # yuan; anything larger is a unit error, not a household
MAX_COUNT = 10_000
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date(value: Any) -> dt.date:
    """Only the contract's ``YYYY-MM-DD`` string: no timestamps, no datetimes, no other formats."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a date string YYYY-MM-DD")
    try:
        d = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a valid calendar date (YYYY-MM-DD)") from None
    if not 1900 <= d.year <= 2100:
        raise ValueError("dates must fall between 1900 and 2100")
    return d




IsoDate = Annotated[dt.date, BeforeValidator(_date)]
# a pattern, not a Python check: a bundle holds dozens of months, and pydantic checks patterns natively
MONTH_PATTERN = r"^(19[0-9][0-9]|20[0-9][0-9]|2100)-(0[1-9]|1[0-2])$"
MONTH_MESSAGE = "must be a month YYYY-MM between 1900-01 and 2100-12"
IsoMonth = Annotated[str, StringConstraints(strict=True, pattern=MONTH_PATTERN)]
# ids (household, person, claim): also what the API's paths and queries take, checked before the store
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
ID_MAX_LENGTH = 64
Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
Money = Annotated[float, Field(strict=True, ge=0, le=MAX_MONEY, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]


def _enum(values: tuple[str, ...]) -> Any:
    return Literal[values]  # type: ignore[valid-type]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Household(StrictModel):
    household_id: Id
    town: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
    hukou_type: _enum(HUKOU_TYPES)
    housing: _enum(HOUSING)
    property_count: Count
    vehicle_count: Count
    financial_assets: Money


class Member(StrictModel):
    person_id: Id
    household_id: Id | None = None
    relation: _enum(RELATIONS)
    sex: _enum(SEXES)
    birth_date: IsoDate
    employment: _enum(EMPLOYMENT)
    disability_grade: Annotated[int, Field(strict=True, ge=0, le=4)]


class IncomeRow(StrictModel):
    person_id: Id
    month: IsoMonth
    source: _enum(INCOME_SOURCES)
    amount: Money


class Claim(StrictModel):
    claim_id: Id
    person_id: Id
    service_date: IsoDate
    setting: _enum(SETTINGS)
    diagnosis_group: _enum(DIAGNOSIS_GROUPS)
    total_cost: Money
    fund_paid: Money
    critical_illness_paid: Money
    assistance_paid: Money
    out_of_pocket: Money
    inpatient_days: Annotated[int, Field(strict=True, ge=0, le=366)]


class AssistanceRow(StrictModel):
    household_id: Id | None = None
    program: _enum(PROGRAMS)
    start_date: IsoDate
    end_date: IsoDate | None = None
    monthly_amount: Money


class Bundle(StrictModel):
    """One household and everything the platform holds on it, as of a date. ``city``: the city
    whose parameters judge it (省内通办, a project extension of the contract); absent, the home
    city. Its town must be one of that city's."""

    as_of: IsoDate
    city: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)] | None = None
    household: Household
    members: Annotated[list[Member], Field(min_length=1, max_length=MAX_MEMBERS)]
    income: Annotated[list[IncomeRow], Field(max_length=MAX_ROWS)] = []
    claims: Annotated[list[Claim], Field(max_length=MAX_ROWS)] = []
    assistance: Annotated[list[AssistanceRow], Field(max_length=MAX_ASSISTANCE_ROWS)] = []

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": []})



Problem = dict[str, Any]
MAX_AGE = 120


def _p(loc: list[str | int], msg: str, kind: str) -> Problem:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def pydantic_problems(exc: ValidationError, prefix: list[str | int] | None = None) -> list[Problem]:
    """Pydantic's errors without echoing the input back (it may be large or personal); a month that
    does not match its pattern is said in words, not as the pattern."""
    out = []
    for e in exc.errors(include_url=False, include_input=False, include_context=False):
        msg = e["msg"]
        if e["type"] == "string_pattern_mismatch" and MONTH_PATTERN in msg:
            msg = MONTH_MESSAGE
        out.append({"loc": [*(prefix or ["body"]), *e["loc"]], "msg": msg, "type": e["type"]})
    return out


def _cents(x: float) -> int:
    return round(x * 100)


def check_bundle(b: Bundle, policy: PolicyBook) -> list[Problem]:
    """Everything the contract requires of a bundle beyond each field's own type and range."""
    out: list[Problem] = []
    as_of: dt.date = b.as_of
    as_of_month = f"{as_of.year:04d}-{as_of.month:02d}"
    city = policy.home_city if b.city is None else b.city
    if city not in policy.city_ids:
        return [_p(["city"], f"unknown city {city!r}; known cities: {policy.known_cities()}", "value_error.city")]
    try:
        towns = policy.towns_of(city, as_of)
    except ValueError as exc:
        return [_p(["as_of"], str(exc), "value_error.policy")]
    if b.household.town not in towns:
        out.append(_town_problem(b.household.town, city, b.city is not None, towns, policy))

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


def _town_problem(town: str, city: str, given: bool, towns: tuple[str, ...], policy: PolicyBook) -> Problem:
    """A town not of the bundle's city (``given``: the bundle names it; else the home city): another
    city's town (said so, never re-assigned), or no city's."""
    other = policy.city_of_town(town)
    if other is not None and other != city:
        where = f"the bundle's city {city} ({policy.city(city).name_zh})" if given else (
            f"the home city {city} ({policy.city(city).name_zh}), the city of a bundle without \"city\"")
        return _p(["household", "town"], f"town {town!r} belongs to the city {other} ({policy.city(other).name_zh}), "
                  f"not to {where}; give \"city\": \"{other}\" if the household is there", "value_error.town")
    return _p(["household", "town"], f"unknown town code; known codes of {city} ({policy.city(city).name_zh}): "
              f"{', '.join(towns)}", "value_error.town")


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
