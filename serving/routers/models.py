"""``GET /v1/models``: the served models, how often visits to flagged households confirmed need, and
the funnel from flag to delivered help (:mod:`domain.funnel`)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import SQLAlchemyError

from domain.funnel import funnel
from serving.auth import require
from serving.deps import FeedbackDep, ScorerDep
from serving.schemas import ERRORS, ModelInfo, ModelsResponse
from store.access import Caller

log = logging.getLogger("relief_risk.serving")
router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelsResponse, responses=ERRORS,
            summary="The served model names, versions and aliases, and how often flagged visits confirmed need")
def models(request: Request, caller: Annotated[Caller, Depends(require("platform", "auditor", "admin"))],
           scorer: ScorerDep, feedback: FeedbackDep) -> dict[str, Any]:
    try:
        confirmation = feedback.confirmation()
        flow = funnel(request.app.state.funnel.facts(), caller.towns)  # counts only; a limited key's towns
    except SQLAlchemyError as exc:  # the store down: the models are still served and listed
        log.warning("feedback unreadable: %s", type(exc).__name__)
        confirmation, flow = {}, []
    return {"models": [ModelInfo(name=m.name, version=m.version, aliases=list(m.aliases), run_id=m.run_id,
                                 loaded_from=m.uri, feedback=confirmation.get(m.name)) for m in scorer.models],
            "missing": request.app.state.missing, "funnel": flow}
