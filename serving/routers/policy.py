"""``POST /v1/policy/check``: the policy calculator (政策计算器) for one household;
``GET /v1/policy/parameters``: the parameters in force per city (not personal data: no access log)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from domain.bundle import CONTRACT_EXAMPLE, Bundle
from features.tables import tables_from_bundle
from policy import check_programs
from policy.parameters import ParameterError, cities_overview, city_parameters
from serving.auth import require
from serving.bodies import documented_body
from serving.deps import AccessDep, BundleBody, town_refused
from serving.errors import BadRequest
from serving.schemas import BODY_ERRORS, ERRORS, CitiesOverview, CityParameters, ParametersQuery, PolicyCheckResponse
from store.access import Caller

router = APIRouter(tags=["policy"])
Reader = Annotated[Caller, Depends(require("platform", "auditor"))]


@router.post("/v1/policy/check", response_model=PolicyCheckResponse, responses=BODY_ERRORS,
             openapi_extra=documented_body(Bundle, {"contract": {"value": CONTRACT_EXAMPLE}}),
             summary="Policy calculator (政策计算器): which programmes the household likely qualifies for, "
                     "with the arithmetic")
def policy_check(request: Request, caller: Reader, bundle: BundleBody, access: AccessDep) -> dict[str, Any]:
    town_refused(caller, bundle["household"]["town"])
    state = request.app.state
    answer = check_programs(tables_from_bundle(bundle), dt.date.fromisoformat(bundle["as_of"]), state.policy,
                            state.eligibility)
    access.record("policy_check", caller, households=[bundle["household"]["household_id"]], count=1)
    return {"household_id": bundle["household"]["household_id"], "as_of": bundle["as_of"], **answer}


@router.get("/v1/policy/parameters", response_model=CityParameters | CitiesOverview, responses=ERRORS,
            summary="The policy parameters in force (低保标准, 低边, reference incomes, towns): of one city, or every "
                    "city in brief")
def policy_parameters(request: Request, caller: Reader, q: Annotated[ParametersQuery, Query()]) -> dict[str, Any]:
    state = request.app.state
    on = q.on or dt.date.today()
    try:
        if q.city is None:
            return cities_overview(state.policy, on)
        return city_parameters(state.policy, state.eligibility, q.city, on)
    except ParameterError as exc:
        raise BadRequest([{"loc": ["query", exc.field], "msg": str(exc), "type": f"value_error.{exc.field}"}]) from None
