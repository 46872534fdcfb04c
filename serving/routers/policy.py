"""``POST /v1/policy/check``: the policy calculator (政策计算器) for one household."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from domain.bundle import CONTRACT_EXAMPLE, Bundle
from features.tables import tables_from_bundle
from policy import check_programs
from serving.auth import require
from serving.bodies import documented_body
from serving.deps import AccessDep, BundleBody, town_refused
from serving.schemas import BODY_ERRORS, PolicyCheckResponse
from store.access import Caller

router = APIRouter(tags=["policy"])


@router.post("/v1/policy/check", response_model=PolicyCheckResponse, responses=BODY_ERRORS,
             openapi_extra=documented_body(Bundle, {"contract": {"value": CONTRACT_EXAMPLE}}),
             summary="Policy calculator (政策计算器): which programmes the household likely qualifies for, "
                     "with the arithmetic")
def policy_check(request: Request, caller: Annotated[Caller, Depends(require("platform", "auditor"))],
                 bundle: BundleBody, access: AccessDep) -> dict[str, Any]:
    town_refused(caller, bundle["household"]["town"])
    state = request.app.state
    answer = check_programs(tables_from_bundle(bundle), dt.date.fromisoformat(bundle["as_of"]), state.policy,
                            state.eligibility)
    access.record("policy_check", caller, households=[bundle["household"]["household_id"]], count=1)
    return {"household_id": bundle["household"]["household_id"], "as_of": bundle["as_of"], **answer}
