"""``POST /v1/feedback``: what a home visit found, tied to the score request that prompted it. Its body
is read as the scoring routes read theirs (:func:`serving.bodies.json_body`): a body that is not JSON
is a 422 naming ``body`` on every route."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from serving.auth import require
from serving.bodies import documented_body, json_body, validated
from serving.deps import AuditDep, FeedbackDep, prompting_record
from serving.errors import BadRequest, store_down
from serving.schemas import BODY_ERRORS, ErrorResponse, FeedbackRequest, FeedbackResponse
from store.access import Caller
from store.feedback import FeedbackConflict

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", response_model=FeedbackResponse, status_code=201,
             responses={**BODY_ERRORS, 404: {"model": ErrorResponse, "description": "no score request with this "
                                             "request_id (or not one of the key's towns)"},
                        200: {"model": FeedbackResponse,
                                             "description": "the same visit was already recorded: the stored one"},
                        409: {"model": ErrorResponse,
                              "description": "this request already has feedback with a different outcome"}},
             openapi_extra=documented_body(FeedbackRequest),
             summary="Record what a home visit found, tied to the score request that prompted it")
def feedback(caller: Annotated[Caller, Depends(require("platform"))], raw: Annotated[Any, Depends(json_body)],
             audit: AuditDep, store: FeedbackDep) -> Any:
    body = validated(FeedbackRequest, raw)
    prompt = prompting_record(audit, caller, body.request_id, "feedback")
    problems = []
    if prompt.household_id != body.household_id:
        problems.append({"loc": ["body", "household_id"], "type": "value_error.household_mismatch",
                         "msg": "is not the household that request scored"})
    if body.visited_on.isoformat() < prompt.as_of:
        problems.append({"loc": ["body", "visited_on"], "type": "value_error.before_as_of",
                         "msg": f"is before the prompting request's as_of ({prompt.as_of})"})
    # a day's grace for time zones: the platform's clock may be ahead of the server's (UTC+8)
    if body.visited_on > dt.date.today() + dt.timedelta(days=1):
        problems.append({"loc": ["body", "visited_on"], "msg": "is in the future", "type": "value_error.future"})
    if problems:
        raise BadRequest(problems)
    try:
        fb, created = store.add(prompt, body.visited_on, list(body.findings), caller.as_dict())
    except FeedbackConflict as exc:
        raise HTTPException(409, f"request {body.request_id} already has feedback {exc.existing.feedback_id} "
                                 f"(visited {exc.existing.visited_on}, findings "
                                 f"{','.join(exc.existing.findings)}); feedback is append-only") from None
    except SQLAlchemyError as exc:
        raise store_down("feedback not stored", exc) from exc
    return JSONResponse(fb.as_dict(), status_code=201 if created else 200)
