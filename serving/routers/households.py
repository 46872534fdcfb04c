"""``GET /v1/households/{household_id}``: 一户一档, the household file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.exc import SQLAlchemyError

from domain.household_file import household_file
from serving.auth import require
from serving.deps import AccessDep, AdvisorDep, AuditDep, FeedbackDep, HouseholdId, NeedsDep, PlansDep
from serving.errors import store_down
from serving.schemas import NOT_FOUND, HouseholdFile
from store.access import Caller

router = APIRouter(tags=["households"])


@router.get("/v1/households/{household_id}", response_model=HouseholdFile, responses=NOT_FOUND,
            summary="一户一档: the household's latest features, score history, lists, eligibility, warm list, "
                    "feedback and needs")
def household(caller: Annotated[Caller, Depends(require("platform", "auditor"))],
              household_id: HouseholdId,
              audit: AuditDep, feedback: FeedbackDep, advisor: AdvisorDep, access: AccessDep,
              plans: PlansDep, needs: NeedsDep) -> dict[str, Any]:
    try:
        if caller.towns is not None and not caller.may_see(audit.latest_town(household_id)):
            answer = None  # outside the key's towns: as if the service had never scored it
        else:
            answer = household_file(audit, feedback, advisor, household_id, plans, needs=needs)
    except SQLAlchemyError as exc:
        raise store_down("household file unreadable", exc) from exc
    if answer is None:
        raise HTTPException(404, "the service has not scored this household")
    access.record("household_file", caller, households=[household_id],
                  requests=[h["id"] for h in answer["history"] if h["source"] != "nightly_batch"],
                  count=len(answer["history"]))
    return answer
