"""Request and response models of the scoring API (../shared/contract.md, "Scoring API").

Request models are strict: a wrong type, an unknown field, NaN or Infinity, a negative amount, a
bad enum or a malformed date is refused with the field's path, never coerced. Checks that span
rows (the claim invariant, persons, dates after ``as_of``) live in ``serving.validation``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

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

MAX_MEMBERS = 50
MAX_ROWS = 5000          # income or claim rows in one bundle: 50 persons × 12 months × 7 sources ≈ 4,200
MAX_ASSISTANCE_ROWS = 500
MAX_BATCH = 1000
MAX_MONEY = 1e10         # yuan; anything larger is a unit error, not a household
MAX_COUNT = 10_000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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


def _month(value: str) -> str:
    if not 1900 <= int(value[:4]) <= 2100:
        raise ValueError("months must fall between 1900 and 2100")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_date)]
IsoMonth = Annotated[str, StringConstraints(strict=True, pattern=r"^\d{4}-(0[1-9]|1[0-2])$"), AfterValidator(_month)]
Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64,
                                      pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]
Money = Annotated[float, Field(strict=True, ge=0, le=MAX_MONEY, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]


def _enum(values: tuple[str, ...]) -> Any:
    return Literal[values]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Household(_Strict):
    household_id: Id
    town: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
    hukou_type: _enum(HUKOU_TYPES)
    housing: _enum(HOUSING)
    property_count: Count
    vehicle_count: Count
    financial_assets: Money


class Member(_Strict):
    person_id: Id
    household_id: Id | None = None
    relation: _enum(RELATIONS)
    sex: _enum(SEXES)
    birth_date: IsoDate
    employment: _enum(EMPLOYMENT)
    disability_grade: Annotated[int, Field(strict=True, ge=0, le=4)]


class IncomeRow(_Strict):
    person_id: Id
    month: IsoMonth
    source: _enum(INCOME_SOURCES)
    amount: Money


class Claim(_Strict):
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


class AssistanceRow(_Strict):
    household_id: Id | None = None
    program: _enum(PROGRAMS)
    start_date: IsoDate
    end_date: IsoDate | None = None
    monthly_amount: Money


class Bundle(_Strict):
    """One household and everything the platform holds on it, as of a date."""

    as_of: IsoDate
    household: Household
    members: Annotated[list[Member], Field(min_length=1, max_length=MAX_MEMBERS)]
    income: Annotated[list[IncomeRow], Field(max_length=MAX_ROWS)] = []
    claims: Annotated[list[Claim], Field(max_length=MAX_ROWS)] = []
    assistance: Annotated[list[AssistanceRow], Field(max_length=MAX_ASSISTANCE_ROWS)] = []

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": []})


class BatchRequest(BaseModel):
    """Items are checked one by one, so one bad item does not sink the others."""

    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH)]


# ---- responses ---------------------------------------------------------------------------------
class Reason(BaseModel):
    feature: str = Field(description="feature id (ASCII)")
    label: str = Field(description="中文名称")
    value: float | None = Field(description="the household's own value; null where not reported")
    display: str = Field(description="标签与数值，供社工阅读")
    contribution: float = Field(description="contribution to the raw score (log-odds)")
    direction: Literal["raises", "lowers", "none"]


class ModelRef(BaseModel):
    name: str
    version: str


class RiskScore(BaseModel):
    risk: str
    probability: float = Field(description="calibrated probability that a visit finds this need")
    band: Literal["high", "medium", "low"]
    flagged: bool = Field(description="within caseworker capacity: worth a visit; never a denial of help")
    model: ModelRef
    base_value: float = Field(description="log-odds; base_value + sum(all contributions) = raw score")
    reasons: list[Reason]


class ListEntry(BaseModel):
    list: str = Field(description="list id (ASCII), defined in the policy-parameter file")
    label: str = Field(description="中文名称")
    version: str = Field(description="the definition's version")
    why: str = Field(description="中文：本户的数值与名单条件")


class ProposedBy(BaseModel):
    kind: Literal["list", "program", "reason", "risk"]
    id: str
    label: str


class Measure(BaseModel):
    measure: str = Field(description="measure id (ASCII)")
    label: str = Field(description="中文名称")
    detail: str = Field(description="中文：建议内容；由社工入户核实后决定，从不拒绝救助")
    version: str = Field(description="the measure definition's version")
    proposed_by: list[ProposedBy] = Field(description="the rules that proposed it")


class ScoreResponse(BaseModel):
    request_id: str
    household_id: str
    as_of: str
    scores: list[RiskScore]
    lists: list[ListEntry] = Field([], description="today's rule-based high-risk lists (高风险名单) the household is on")
    eligible_programs: list[str] = Field([], description="programmes the policy calculator says it likely "
                                                         "qualifies for (see /v1/policy/check for the steps)")
    warm_list: list[Measure] = Field([], description="暖心清单: measures that fit the household, each with the "
                                                     "rule that proposed it")


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorItem] | str


class BatchItemError(BaseModel):
    index: int
    status: int = 422
    detail: list[ErrorItem]


class BatchResponse(BaseModel):
    results: list[ScoreResponse | BatchItemError]


class FeedbackRates(BaseModel):
    flagged_visits: int = Field(description="visits prompted by a request that flagged this risk")
    confirmed: int = Field(description="of those, visits that found this need")
    any_need: int = Field(description="of those, visits that found any need")
    confirmed_rate: float | None
    any_need_rate: float | None


class ModelInfo(BaseModel):
    name: str
    version: str
    aliases: list[str]
    run_id: str | None = None
    loaded_from: str
    feedback: FeedbackRates | None = Field(None, description="how often flagged visits confirmed need "
                                                             "(caseworkers' feedback, all versions)")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    missing: list[str] = Field([], description="configured risks with no model under the alias (not served)")


class PolicyStep(BaseModel):
    label: str = Field(description="中文：这一步检查什么")
    detail: str = Field(description="the arithmetic, with the household's figures and the line")
    value: float | None = None
    passed: bool | None = Field(description="null where the step only computes, or needs a visit to decide")


class ProgramResult(BaseModel):
    program: str
    label: str
    eligible: bool = Field(description="likely qualifies, on the data the platform holds; a visit decides")
    steps: list[PolicyStep]


class PolicyParameters(BaseModel):
    version: str
    effective_from: str
    eligibility_version: str


class PolicyCheckBody(BaseModel):
    programs: list[ProgramResult]
    parameters: PolicyParameters


class PolicyCheckResponse(PolicyCheckBody):
    household_id: str
    as_of: str


# ---- caseworker feedback -----------------------------------------------------------------------
Finding = Literal["illness_poverty", "disability_poverty", "unemployment_poverty", "elderly_care_need",
                  "child_in_difficulty", "not_in_need"]


def _findings(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("findings must not repeat")
    if "not_in_need" in value and len(value) > 1:
        raise ValueError("not_in_need cannot be combined with a need")
    return value


class FeedbackRequest(_Strict):
    """What a home visit found (as in the contract's verifications), tied to the score request that
    prompted the visit."""

    request_id: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64,
                                                 pattern=r"^[A-Za-z0-9_\-]+$")]
    household_id: Id
    visited_on: IsoDate
    findings: Annotated[list[Finding], Field(min_length=1, max_length=6), AfterValidator(_findings)]

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"request_id": "3f2a…", "household_id": "H000123", "visited_on": "2026-07-08",
         "findings": ["illness_poverty"]}]})


class FeedbackResponse(BaseModel):
    feedback_id: str
    request_id: str
    household_id: str
    as_of: str = Field(description="the prompting request's as_of")
    visited_on: str
    findings: list[str]
    flagged_risks: list[str] = Field(description="the risks the prompting request flagged")
    confirmed: list[str] = Field(description="flagged risks the visit found")
    model_versions: dict[str, str]
    recorded_at: str


# ---- the household file (一户一档) ---------------------------------------------------------------
class FileFeature(BaseModel):
    feature: str
    label: str = Field(description="中文名称")
    unit: str
    value: float | None
    display: str


class HistoryScore(BaseModel):
    risk: str
    probability: float
    band: str
    flagged: bool
    model_version: str | None


class HistoryEntry(BaseModel):
    source: Literal["api_request", "api_batch", "nightly_batch"]
    id: str = Field(description="the request_id, or the nightly batch's run_id")
    created_at: str
    as_of: str
    scores: list[HistoryScore]


class LatestRequest(BaseModel):
    request_id: str
    created_at: str
    as_of: str
    town: str


class HouseholdFile(BaseModel):
    household_id: str
    latest: LatestRequest | None = Field(description="the latest API request; null if only nightly batches "
                                                     "scored the household")
    features: list[FileFeature] = Field(description="the latest features the models saw, with Chinese labels")
    scores: list[RiskScore] = Field(description="the latest request's scores with their reasons")
    lists: list[ListEntry]
    eligibility: PolicyCheckBody | None
    warm_list: list[Measure]
    history: list[HistoryEntry] = Field(description="score history across API requests and nightly batches, "
                                                    "newest first")
    feedback: list[FeedbackResponse]
