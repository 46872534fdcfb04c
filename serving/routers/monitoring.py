"""``GET /v1/monitoring/drift``: how far the households a model scores now have moved from those it
was trained for (population stability index per feature and of the score; :mod:`domain.drift`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from domain.drift import NoReference, api_drift, nightly_drift
from features.risks import RISKS
from serving.audit_view import SearchTime
from serving.auth import require
from serving.deps import AuditDep, ScorerDep
from serving.errors import store_down
from serving.schemas import ERRORS, DriftReport
from store.access import Caller

router = APIRouter(tags=["monitoring"])
WINDOW_DAYS = 30  # the default window: the last 30 days


class DriftQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    risk: Literal[RISKS] = Field(description="the risk whose served model is monitored")  # type: ignore[valid-type]
    since: SearchTime | None = Field(None, description=f"scored at or after (ISO 8601; default {WINDOW_DAYS} days ago)")
    until: SearchTime | None = Field(None, description="scored before (ISO 8601; default now)")
    source: Literal["api", "nightly_batch"] = Field(
        "api", description="api: the households the API scored in the window; nightly_batch: the latest "
                           "nightly batch's whole city (since/until do not apply)")


@router.get("/v1/monitoring/drift", response_model=DriftReport, responses=ERRORS,
            summary="Drift of a served model: PSI per feature and of the score against its training reference")
def drift(request: Request, caller: Annotated[Caller, Depends(require("auditor", "admin"))],
          q: Annotated[DriftQuery, Query()], scorer: ScorerDep, audit: AuditDep) -> dict[str, Any]:
    served = {m.risk: m for m in scorer.models}
    if q.risk not in served:
        raise HTTPException(404, f"no model of {q.risk} is served")
    if caller.towns is not None:
        raise HTTPException(403, "drift reads every town's scores; a key limited to towns cannot ask for it")
    lm = served[q.risk]
    thresholds = request.app.state.drift_thresholds
    since = q.since or dt.datetime.now(dt.UTC) - dt.timedelta(days=WINDOW_DAYS)
    if q.until is not None and q.until <= since:
        raise HTTPException(422, [{"loc": ["query", "until"], "msg": "until must be after since",
                                   "type": "value_error"}])
    try:
        if q.source == "nightly_batch":
            report = nightly_drift(audit, lm)
            if report is None:
                raise HTTPException(404, f"no nightly batch with a drift report of {q.risk} is recorded")
            return report
        return api_drift(audit, lm, since, q.until, thresholds)
    except NoReference as exc:
        raise HTTPException(409, str(exc)) from exc
    except SQLAlchemyError as exc:
        raise store_down("audit trail unreadable", exc) from exc
