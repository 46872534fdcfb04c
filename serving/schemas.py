"""Request and response models of the scoring API that are not the bundle itself (the bundle's
model is :mod:`domain.bundle`, shared with ``reproduce``), kept apart from the routes.

One module on purpose, in sections by resource: every model here becomes a component of
``/openapi.json`` under its class name, and one namespace is what keeps those names unique (two
``Measure`` or ``Evidence`` classes in two modules would collide there, silently renamed by FastAPI).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from domain.bundle import MAX_BATCH, Bundle, Id, IsoDate, StrictModel  # noqa: F401 - Bundle: the body of several routes
from domain.needs import EVIDENCE_MAX, NOTE_MAX
from serving.settings import ROLES
from store.access import ACTIONS

# ---- identifiers the routes take in paths, queries and bodies ------------------------------------
# Checked before anything reaches the store: no NUL (PostgreSQL refuses it), no control character,
# no value longer than the column. A household id is the bundle's (domain.bundle.ID_PATTERN).
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"      # the service's own request ids (hex uuids)
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
MODEL_VERSION_PATTERN = r"^[A-Za-z0-9_.\-]{1,32}$"
RequestId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=REQUEST_ID_PATTERN)]
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def is_request_id(text: str) -> bool:
    """Whether ``text`` can be a request id at all (a path's id that cannot is no record: 404)."""
    return _REQUEST_ID.fullmatch(text) is not None


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
    band: Literal["high", "medium", "low"] = Field(
        description="one rule for every risk (docs/bands.md): high = flagged; medium = at least the model's medium "
                    "line; low otherwise, and always when the household lacks the risk's cause")
    flagged: bool = Field(description="band high: the risk's cause is present and the probability is at least the "
                                      "model's flag line, set from the worklists' capacity; worth a visit; never "
                                      "a denial of help")
    cause_present: bool | None = Field(
        None, description="whether the household has the cause this risk needs (a member under 18 for "
                          "child_in_difficulty, one of 60 or more for elderly_care_need, a disabled member for "
                          "disability_poverty); false: never flagged for it, whatever the probability; null: the "
                          "risk has no such gate")
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
    lists: list[ListEntry] = Field([], description="today's rule-based high-risk lists (高风险名单) the household "
                                                   "is on")
    eligible_programs: list[str] = Field([], description="programmes the policy calculator says it likely "
                                                         "qualifies for (see /v1/policy/check for the steps)")
    eligible_program_labels: list[str] = Field([], description="中文名称 of eligible_programs, in the same order "
                                                               "(e.g. 最低生活保障（低保）)")
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
    detail: list[ErrorItem] | str = Field(description="the item's 422 details, or why a key limited to towns may "
                                                      "not score it (403)")


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


class FunnelRow(BaseModel):
    risk: str
    town: str | None
    steps: dict[str, int] = Field(description="households at each step: flagged, visited, need_confirmed, "
                                              "plan_drafted, delivered")
    median_days: dict[str, float | None] = Field(description="per step after the first, the median days from the "
                                                             "step before (None: no household got there)")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    missing: list[str] = Field([], description="configured risks with no model under the alias (not served)")
    funnel: list[FunnelRow] = Field([], description="from discovery to help, per risk and town: households flagged, "
                                                    "visited, need confirmed, plan drafted, a measure delivered "
                                                    "(counts only, no household ids)")


class DriftEntry(BaseModel):
    feature: str = Field(description="feature id, or `score` for the calibrated probability")
    label: str = Field(description="中文名称")
    psi: float | None = Field(description="population stability index against the training reference; null "
                                          "for an empty window")
    status: Literal["stable", "watch", "act", "too_few"]
    status_label: str = Field(description="稳定 / 关注 / 需处置 / 样本不足")
    bins: list[str] = Field(description="the reference's bins (Chinese labels; the last: missing)")
    reference: list[float] = Field(description="each bin's share in the training reference")
    current: list[float] = Field(description="each bin's share in the window")


class DriftWindow(BaseModel):
    since: str | None
    until: str | None
    n: int = Field(description="households in the window")
    limited: bool = Field(description="the window held more records than are read (the newest were read)")


class DriftReference(BaseModel):
    as_of: str | None = Field(description="the training snapshot the window is compared with: the model's own of the "
                                          "window's calendar month, or the nearest month it has (income has a season)")


class DriftReport(BaseModel):
    risk: str
    model: ModelRef
    source: Literal["api", "nightly_batch"]
    run_id: str | None = Field(None, description="the nightly batch run (source nightly_batch)")
    window: DriftWindow
    reference: DriftReference | None = Field(None, description="which reference (absent in a report written "
                                                               "before references were kept per month)")
    n: int
    n_score: int = Field(description="households scored by this model version (the score's window)")
    score_psi: float | None
    score: DriftEntry
    features: list[DriftEntry] = Field(description="largest PSI first")
    thresholds: dict[str, float] = Field(description="psi_watch, psi_act, min_window: [monitoring] of the policy file")


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
    city: str = Field(description="the city whose parameters judged the household (its bundle's city, or the home "
                                  "city)")
    city_name: str = Field(description="城市名称")
    dibao_standard_monthly: float = Field(description="that city's 低保标准 in force, yuan/person/month")


# ---- the parameters in force per city (GET /v1/policy/parameters) ---------------------------------
class ParametersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str | None = Field(None, min_length=1, max_length=64,
                             description="a city id of the policy file; absent: every city, in brief")
    on: IsoDate | None = Field(None, description="the day (YYYY-MM-DD) whose parameters; absent: today")


class EligibilityLimits(BaseModel):
    version: str
    effective_from: str
    assets_months_of_line: float = Field(description="financial assets per person at most this many months of the "
                                                     "city's 低保标准")
    assets_limit_per_capita: float = Field(description="that limit in yuan, with this city's line")
    max_properties: int
    max_vehicles: int
    expenditure_older_multiple: float


class CityParameters(BaseModel):
    city: str
    name: str = Field(description="城市名称")
    home: bool = Field(description="the home city: its parameters judge a bundle without city")
    on: str
    version: str
    effective_from: str
    dibao_standard_monthly: float = Field(description="低保标准, yuan/person/month")
    edge_multiple: float = Field(description="低保边缘 = edge_multiple × 低保标准")
    edge_standard_monthly: float = Field(description="低保边缘标准, yuan/person/month")
    pdi_urban: float = Field(description="last year's per-capita disposable income, urban, yuan/year")
    pdi_rural: float
    pdi_all: float
    rigid_share: float = Field(description="支出型: rigid spending above this share of income")
    towns: list[str] = Field(description="the city's town codes")
    eligibility: EligibilityLimits = Field(description="the policy calculator's limits in force (one set for all "
                                                       "cities)")


class CityBrief(BaseModel):
    city: str
    name: str
    home: bool
    towns: list[str]
    dibao_standard_monthly: float | None = Field(description="null where the city has no version in force on the day")
    version: str | None


class CitiesOverview(BaseModel):
    home_city: str
    on: str
    cities: list[CityBrief]


class PolicyCheckBody(BaseModel):
    programs: list[ProgramResult]
    parameters: PolicyParameters


class PolicyCheckResponse(PolicyCheckBody):
    household_id: str
    as_of: str


class ListDefinitionOut(BaseModel):
    list: str = Field(description="list id (ASCII), defined in the policy-parameter file")
    label: str = Field(description="中文名称")
    description: str = Field(description="中文：为什么关注这一人群")
    version: str = Field(description="the definition's version")
    effective_from: str = Field(description="YYYY-MM-DD: the version in force from this day")
    definition: str = Field(description="中文：名单条件，每个阈值写明参数名称和当日的数值")


class ListsResponse(BaseModel):
    on: str = Field(description="YYYY-MM-DD: the day the definitions and thresholds are in force")
    city: str = Field(description="the city whose parameters the thresholds are (省内通办)")
    lists: list[ListDefinitionOut] = Field(description="the lists in force that day, in the policy file's order")


# ---- caseworker feedback -----------------------------------------------------------------------
Finding = Literal["illness_poverty", "disability_poverty", "unemployment_poverty", "elderly_care_need",
                  "child_in_difficulty", "not_in_need"]


def _findings(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("findings must not repeat")
    if "not_in_need" in value and len(value) > 1:
        raise ValueError("not_in_need cannot be combined with a need")
    return value


class FeedbackRequest(StrictModel):
    """What a home visit found (as in the contract's verifications), tied to the score request that
    prompted the visit."""

    request_id: RequestId
    household_id: Id
    visited_on: IsoDate
    findings: Annotated[list[Finding], Field(min_length=1, max_length=6), AfterValidator(_findings)]

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"request_id": "3f2a…", "household_id": "H000123", "visited_on": "2026-07-08",
         "findings": ["illness_poverty"]}]})


Role = Literal[ROLES]  # type: ignore[valid-type] - the roles of RELIEF_RISK_API_KEYS


class CallerInfo(BaseModel):
    role: Role
    key_id: str = Field(description="the key's stable fingerprint (never the key): `k-` and 12 hex digits")


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
    caller: CallerInfo | None = Field(None, description="who recorded it; null on feedback recorded before callers "
                                                        "were kept")


# ---- the access log ---------------------------------------------------------------------------------
Action = Literal[ACTIONS]  # type: ignore[valid-type] - the store's one list of actions


class AccessEventOut(BaseModel):
    seq: int
    created_at: str = Field(description="UTC, ISO 8601")
    caller: CallerInfo
    action: Action
    households: list[str] = Field(description="the households whose data the read showed")
    requests: list[str] = Field(description="the audit records (request ids) it showed")
    result_count: int = Field(description="how many records it returned")


class AccessPage(BaseModel):
    events: list[AccessEventOut]
    next_before_seq: int | None = Field(description="paging: pass as before_seq for the next (older) page")


# ---- needs assessments (困难群众需求评估) ---------------------------------------------------------
# text a caseworker types: any character but the controls (newlines and tabs allowed; PostgreSQL
# refuses NUL), and not only spaces
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _plain_text(value: str) -> str:
    if _CONTROLS.search(value):
        raise ValueError("must not hold control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Level = Annotated[int, Field(strict=True, ge=0, le=3, description="0 no need, 1 一般, 2 较大, 3 紧急")]


class DomainAssessmentIn(StrictModel):
    domain: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)] = Field(
        description="a domain of the instrument in force on assessed_on (basic_living, medical, care, education, "
                    "employment, housing, child_protection, social_support)")
    level: Level
    evidence: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=EVIDENCE_MAX),
                        AfterValidator(_plain_text)] = Field(
        description=f"what the visit found, in the caseworker's words (at most {EVIDENCE_MAX} characters)")


# who acted, as the platform names them (a caseworker's pseudonymous id such as SW0012 or 社工0231): one line
def _actor(value: str) -> str:
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("must be one line without control characters")
    if value != value.strip():
        raise ValueError("must not begin or end with whitespace (an id is kept as given, never trimmed)")
    return value


Actor = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64), AfterValidator(_actor)]


class AssessmentRequest(StrictModel):
    """One home visit's needs assessment, domain by domain, tied to the score request that prompted it."""

    request_id: RequestId
    assessed_on: IsoDate
    assessor: Actor = Field(description="the caseworker's pseudonymous id (one line, at most 64 characters)")
    domains: Annotated[list[DomainAssessmentIn], Field(min_length=1, max_length=16)]
    note: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=NOTE_MAX),
                    AfterValidator(_plain_text)] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"request_id": "3f2a…", "assessed_on": "2026-07-08", "assessor": "SW0012",
         "domains": [{"domain": "medical", "level": 3, "evidence": "户主肝癌术后化疗，每月自付约3,000元"},
                     {"domain": "social_support", "level": 2, "evidence": "配偶焦虑失眠，邻里支持少"}],
         "note": "约定两周后回访"}]})


class DomainAssessmentOut(BaseModel):
    domain: str
    level: int
    evidence: str


class AssessmentResponse(BaseModel):
    assessment_id: str
    request_id: str
    household_id: str
    town: str | None
    assessed_on: str
    assessor: str
    instrument_version: str = Field(description="the instrument in force on assessed_on")
    domains: list[DomainAssessmentOut]
    note: str | None
    recorded_at: str
    caller: CallerInfo


class NeedEvidence(BaseModel):
    source: Literal["features", "list", "calculator", "model", "visit"]
    text: str = Field(description="中文: the rule's reading with the household's own values, or the visit's words")
    level: int = Field(description="the level this rule or visit gives the domain")
    rule: str | None = Field(None, description="the data rule's id ([[instrument.need]])")
    assessor: str | None = Field(None, description="a visit's assessor")
    assessed_on: str | None = Field(None, description="a visit's day")
    assessment_id: str | None = None


class DomainNeed(BaseModel):
    domain: str
    label: str = Field(description="中文名称")
    level: int = Field(description="0 no need … 3 urgent: the latest visit's when one assessed the domain, else the "
                                   "data level")
    level_label: str
    data_level: int = Field(description="the highest level among the data rules that hold")
    set_by: Literal["data", "visit"]
    evidence: list[NeedEvidence] = Field(description="the visits' (newest first), then the data rules' (highest "
                                                     "level first)")


class AssessmentUsed(BaseModel):
    assessment_id: str
    request_id: str
    assessed_on: str
    assessor: str
    instrument_version: str
    domains: list[str]
    note: str | None


class HouseholdNeeds(BaseModel):
    household_id: str
    as_of: str | None = Field(description="the latest score's as_of (null if its record was purged and no batch saw "
                                          "the household since)")
    instrument_version: str
    overall_level: int = Field(description="the grade of graded case management: 3 一级 … 0 无明显需求")
    overall_label: str
    overall_description: str
    domains: list[DomainNeed]
    assessments: list[AssessmentUsed] = Field(description="the visits used: assessed on or after as_of, newest "
                                                          "first")


# ---- one household, one plan (一户一策) -----------------------------------------------------------
PLAN_STATUSES = ("proposed", "agreed", "in_progress", "delivered", "declined", "cancelled")  # domain.plans.MOVES
# a caseworker's pseudonymous id or name as the platform gives it: no control character (PostgreSQL
# refuses NUL), not blank
Note = Annotated[str, StringConstraints(strict=True, max_length=2000,
                                        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]


class PlanDraftRequest(StrictModel):
    """Drafting a household's plan: ``{}`` is enough."""

    actor: Actor | None = Field(None, description="who drafts (default: the key's fingerprint)")
    on: IsoDate | None = Field(None, description="the drafting date, from which due dates count (default: today)")

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {}, {"actor": "社工0231", "on": "2026-07-08"}]})


class PlanEventRequest(StrictModel):
    """A move of one plan measure's status."""

    status: Literal[PLAN_STATUSES]  # type: ignore[valid-type]
    actor: Actor
    on: IsoDate = Field(description="the day it happened; not in the future, not before the measure's previous event")
    note: Note | None = Field(None, description="why; required for declined and cancelled")

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"status": "agreed", "actor": "社工0231", "on": "2026-07-10", "note": "户主同意申请"},
        {"status": "declined", "actor": "社工0231", "on": "2026-07-10", "note": "户方表示暂不需要"}]})


class PlanTrigger(BaseModel):
    kind: Literal["list", "program", "reason", "risk", "need"]
    id: str
    label: str
    level: int | None = None


class PlanEventOut(BaseModel):
    status: str
    status_label: str = Field(description="中文状态")
    actor: str
    on: str = Field(description="the day it happened, YYYY-MM-DD")
    note: str | None
    recorded_at: str
    caller: CallerInfo | None


class PlanMeasureOut(BaseModel):
    measure_id: str
    measure: str = Field(description="the [[measure]] id of the policy file")
    label: str = Field(description="中文名称")
    owner: str = Field(description="the owner department's code")
    owner_label: str = Field(description="责任部门")
    due: str
    status: str | None
    status_label: str | None = Field(description="中文状态")
    overdue: bool = Field(description="not final and due before today")
    proposed_because: list[PlanTrigger]
    created_at: str
    events: list[PlanEventOut] = Field(description="every move, oldest first")


class PlanResponse(BaseModel):
    household_id: str
    measures: list[PlanMeasureOut]


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
    source: Literal["api_request", "api_batch", "nightly_batch"] = Field(
        description="what saw the household last: an API request (single or batch) or the nightly batch")
    request_id: str | None = Field(description="the audit record's request_id; null for the nightly batch")
    run_id: str | None = Field(description="the nightly batch run's id; null for an API request")
    created_at: str
    as_of: str
    town: str


class FileScore(RiskScore):
    base_value: float | None = Field(description="log-odds; null only if the nightly run explained no household "
                                                 "for this risk")
    reasons: list[Reason] = Field(description="top reasons; empty for a household the nightly batch scored but did "
                                              "not explain (it explains the flagged ones)")


class HouseholdFile(BaseModel):
    household_id: str
    latest: LatestRequest | None = Field(description="what the latest part of the file comes from: the latest API "
                                                     "request or the nightly batch run that saw the household last")
    features: list[FileFeature] = Field(description="the latest features the models saw, with Chinese labels")
    scores: list[FileScore] = Field(description="the latest scores with their reasons")
    lists: list[ListEntry]
    eligibility: PolicyCheckBody | None
    warm_list: list[Measure]
    history: list[HistoryEntry] = Field(description="score history across API requests and nightly batches, "
                                                    "newest first")
    feedback: list[FeedbackResponse]
    plan: list[PlanMeasureOut] = Field([], description="帮扶计划（一户一策）: the household's plan measures, "
                                                         "each with its owner, due date, status and history")
    needs: HouseholdNeeds | None = Field(None, description="需求评估: the data levels of the latest part with the "
                                                           "caseworkers' assessments since (GET .../needs)")


# ---- documented error answers (serving/errors.py maps each failure to its status) ----------------
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or unknown API key"},
    403: {"model": ErrorResponse, "description": "the key's role may not call this endpoint, or the household is "
                                                 "outside the towns the key is limited to"},
    429: {"model": ErrorResponse, "description": "the key's request rate is over its limit (RELIEF_RISK_KEY_RATE); "
                                                 "retry after `Retry-After` seconds"},
    422: {"model": ErrorResponse, "description": "bad input: each item names the field (`loc`) and why (`msg`); "
                                                 "a body that is not JSON names `body`"},
    503: {"model": ErrorResponse, "description": "models not loaded or the store unreachable; nothing was scored"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 413: {"model": ErrorResponse, "description": "request body larger than the configured limit"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"model": ErrorResponse, "description": "no such record"}}
