"""一户一策, a household's plan: ``POST /v1/households/{id}/plan`` drafts it from the household's warm
list and assessed needs, ``GET`` reads it, ``POST …/plan/measures/{measure_id}/events`` moves one
measure. Bodies are read as the other routes read theirs (:func:`serving.bodies.json_body`); the
lifecycle and the drafting are :mod:`domain.plans`'."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from domain import plans as lifecycle
from domain.household_file import household_file
from domain.needs import levels
from serving.auth import require
from serving.bodies import documented_body, json_body, validated
from serving.deps import AccessDep, AdvisorDep, AuditDep, FeedbackDep, HouseholdId, NeedsDep, PlansDep
from serving.errors import BadRequest, store_down
from serving.schemas import (
    BODY_ERRORS,
    NOT_FOUND,
    ErrorResponse,
    PlanDraftRequest,
    PlanEventRequest,
    PlanMeasureOut,
    PlanResponse,
)
from store.access import Caller
from store.audit import AuditStore
from store.history import household_batches

router = APIRouter(tags=["plans"])

MeasureId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]{1,32}$")]
UNKNOWN = "the service has not scored this household"


def _visible(audit: AuditStore, caller: Caller, household_id: str) -> bool:
    """Whether the service scored the household and the key may see its town (outside a key's towns:
    as if unknown)."""
    if caller.towns is not None and not caller.may_see(audit.latest_town(household_id)):
        return False
    return bool(audit.query(household_id=household_id, limit=1)
                or household_batches(audit.engine, household_id, limit=1))


@router.post("/v1/households/{household_id}/plan", response_model=PlanResponse, status_code=201,
             responses={**BODY_ERRORS, 200: {"model": PlanResponse, "description": "nothing new to add: the plan"},
                        404: {"model": ErrorResponse, "description": "the service has not scored this household "
                                                                     "(or not one of the key's towns)"}},
             openapi_extra=documented_body(PlanDraftRequest),
             summary="一户一策: draft the household's plan from its warm list and assessed needs (201 when measures "
                     "were added, 200 when nothing new)")
def draft(caller: Annotated[Caller, Depends(require("platform"))], household_id: HouseholdId,
          raw: Annotated[Any, Depends(json_body)], audit: AuditDep, feedback: FeedbackDep, advisor: AdvisorDep,
          plans: PlansDep, needs: NeedsDep, access: AccessDep) -> Any:
    body = validated(PlanDraftRequest, raw)
    today = dt.date.today()
    on = body.on or today
    if problems := lifecycle.date_problems(on, today):
        raise BadRequest(problems)
    try:
        file = household_file(audit, feedback, advisor, household_id, needs=needs) \
            if _visible(audit, caller, household_id) else None
        if file is None:
            raise HTTPException(404, UNKNOWN)
        # the needs as the household file shows them: data levels, overridden by visits since the score
        added = lifecycle.draft_plan(plans, file, advisor.measures, levels(file["needs"]), on=on,
                                     actor=body.actor or caller.key_id, caller=caller.as_dict())
        measures = plans.plan(household_id)
    except SQLAlchemyError as exc:
        raise store_down("plan not drafted", exc) from exc
    access.record("plan_draft", caller, households=[household_id], count=len(measures))
    return JSONResponse(lifecycle.plan_view(household_id, measures, advisor.measures, today),
                        status_code=201 if added else 200)


@router.get("/v1/households/{household_id}/plan", response_model=PlanResponse, responses=NOT_FOUND,
            summary="一户一策: the household's plan, each measure with its owner, due date, status and history")
def read(caller: Annotated[Caller, Depends(require("platform", "auditor"))], household_id: HouseholdId,
         audit: AuditDep, advisor: AdvisorDep, plans: PlansDep, access: AccessDep) -> dict[str, Any]:
    try:
        if not _visible(audit, caller, household_id):
            raise HTTPException(404, UNKNOWN)
        measures = plans.plan(household_id)
    except SQLAlchemyError as exc:
        raise store_down("plan unreadable", exc) from exc
    access.record("plan", caller, households=[household_id], count=len(measures))
    return lifecycle.plan_view(household_id, measures, advisor.measures, dt.date.today())


@router.post("/v1/households/{household_id}/plan/measures/{measure_id}/events", response_model=PlanMeasureOut,
             status_code=201,
             responses={**BODY_ERRORS, 404: {"model": ErrorResponse, "description": "no such measure in this "
                                                                                    "household's plan"},
                        409: {"model": ErrorResponse, "description": "the lifecycle does not allow this move "
                                                                     "(from → to named); nothing changed"}},
             openapi_extra=documented_body(PlanEventRequest),
             summary="Move one measure of the household's plan (proposed → agreed → in_progress → delivered, or "
                     "declined / cancelled with a reason)")
def add_event(caller: Annotated[Caller, Depends(require("platform"))], household_id: HouseholdId,
              measure_id: MeasureId, raw: Annotated[Any, Depends(json_body)], advisor: AdvisorDep,
              plans: PlansDep, access: AccessDep) -> Any:
    body = validated(PlanEventRequest, raw)
    today = dt.date.today()
    try:
        measure = plans.measure(measure_id)
        if measure is None or measure.household_id != household_id or not caller.may_see(measure.town):
            raise HTTPException(404, "no such measure in this household's plan")
        moved = lifecycle.move(plans, measure, body.status, actor=body.actor, on=body.on, note=body.note,
                               today=today, caller=caller.as_dict())
    except lifecycle.BadEvent as exc:
        raise BadRequest(exc.problems) from None
    except lifecycle.MoveNotAllowed as exc:
        raise HTTPException(409, f"{exc}; nothing changed") from None
    except SQLAlchemyError as exc:
        raise store_down("event not stored", exc) from exc
    access.record("plan_event", caller, households=[household_id], count=1)
    return JSONResponse(lifecycle.measure_view(moved, advisor.measures, today), status_code=201)
