"""Needs assessments (困难群众需求评估): ``POST /v1/assessments`` records what a home visit found,
domain by domain, tied to the score request that prompted it; ``GET /v1/households/{id}/needs``
answers the household's needs (:mod:`domain.needs`). The body is read as the other routes read
theirs (:func:`serving.bodies.json_body`): a body that is not JSON is a 422 naming ``body``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from domain.needs import AssessmentRefused
from serving.auth import require
from serving.bodies import documented_body, json_body, validated
from serving.deps import AccessDep, AdvisorDep, AuditDep, FeedbackDep, HouseholdId, NeedsDep, prompting_record
from serving.errors import BadRequest, store_down
from serving.schemas import (
    BODY_ERRORS,
    NOT_FOUND,
    AssessmentRequest,
    AssessmentResponse,
    ErrorResponse,
    HouseholdNeeds,
)
from store.access import Caller

router = APIRouter(tags=["needs"])


@router.post("/v1/assessments", response_model=AssessmentResponse, status_code=201,
             responses={**BODY_ERRORS, 404: {"model": ErrorResponse, "description": "no score request with this "
                                             "request_id (or not one of the key's towns)"}},
             openapi_extra=documented_body(AssessmentRequest),
             summary="Record a home visit's needs assessment, domain by domain (append-only)")
def assess(caller: Annotated[Caller, Depends(require("platform"))], raw: Annotated[Any, Depends(json_body)],
           audit: AuditDep, needs: NeedsDep) -> Any:
    body = validated(AssessmentRequest, raw)
    prompt = prompting_record(audit, caller, body.request_id, "an assessment")
    try:
        stored = needs.assess(prompt, body.assessed_on, body.assessor, [d.model_dump() for d in body.domains],
                              body.note, caller.as_dict())
    except AssessmentRefused as exc:
        raise BadRequest(exc.problems) from None
    except SQLAlchemyError as exc:
        raise store_down("assessment not stored", exc) from exc
    return JSONResponse(stored.as_dict(), status_code=201)


@router.get("/v1/households/{household_id}/needs", response_model=HouseholdNeeds, responses=NOT_FOUND,
            summary="需求评估: per domain the level (data rules, overridden by later visits) with its evidence, and "
                    "the overall grade")
def household_needs(caller: Annotated[Caller, Depends(require("platform", "auditor"))],
                    household_id: HouseholdId,
                    audit: AuditDep, feedback: FeedbackDep, advisor: AdvisorDep, needs: NeedsDep,
                    access: AccessDep) -> dict[str, Any]:
    try:
        if caller.towns is not None and not caller.may_see(audit.latest_town(household_id)):
            answer = None  # outside the key's towns: as if the service had never scored it
        else:
            answer = needs.for_household(audit, feedback, advisor, household_id)
    except SQLAlchemyError as exc:
        raise store_down("needs unreadable", exc) from exc
    if answer is None:
        raise HTTPException(404, "the service has not scored this household")
    access.record("needs", caller, households=[household_id], count=len(answer["assessments"]))
    return answer
