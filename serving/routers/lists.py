"""``GET /v1/lists``: the high-risk lists (重点人群清单) in force on a day, each with its Chinese
label, why the group is watched, its version and its definition with the thresholds in force.
The definitions are policy, not personal data: nothing is written to the access log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from policy.lists import lists_in_force
from serving.auth import require
from serving.errors import BadRequest
from serving.schemas import ERRORS, ListsResponse
from store.access import Caller

router = APIRouter(tags=["policy"])


@router.get("/v1/lists", response_model=ListsResponse, responses=ERRORS,
            summary="The high-risk lists (重点人群清单) in force on a day, with their definitions and thresholds")
def lists(request: Request, caller: Annotated[Caller, Depends(require("platform", "auditor"))],
          on: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (default: today)")] = None,
          city: Annotated[str | None, Query(max_length=64, description="the city whose thresholds the definitions "
                                                                       "show (default: the home city)")] = None
          ) -> dict[str, Any]:
    day = _day(on) if on is not None else dt.date.today()
    state = request.app.state
    if city is not None and city not in state.policy.city_ids:
        raise BadRequest([{"loc": ["query", "city"], "msg": f"unknown city {city[:64]!r}; known cities: "
                           f"{', '.join(state.policy.city_ids)}", "type": "value_error.city"}])
    try:
        listed = lists_in_force(day, state.policy, state.advisor.lists, city)
    except ValueError as exc:  # before the city's first [[version]]: no thresholds to show
        raise BadRequest([{"loc": ["query", "on"], "msg": str(exc), "type": "value_error.date"}]) from None
    return {"on": day.isoformat(), "city": city or state.policy.home_city, "lists": listed}


def _day(text: str) -> dt.date:
    """``YYYY-MM-DD`` only (ASCII digits, a real day), else 422 naming ``on``."""
    if len(text) == 10 and text.isascii():
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise BadRequest([{"loc": ["query", "on"], "msg": f"not a YYYY-MM-DD date: {text[:20]!r}",
                       "type": "value_error.date"}])
