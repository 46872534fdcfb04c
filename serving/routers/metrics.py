"""``GET /metrics``: the service's operations metrics in Prometheus's text format, for the admin key
(what they are: :mod:`serving.metrics`). With several worker processes, any worker answers for all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from serving.auth import require
from serving.metrics import CONTENT_TYPE
from serving.routers.health import not_ready
from serving.schemas import ERRORS
from store.access import Caller

router = APIRouter(tags=["operations"])
Admin = Annotated[Caller, Depends(require("admin"))]


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                       **{status: ERRORS[status] for status in (401, 403, 429)}},
            summary="Operations metrics (Prometheus text): requests by route template, scores by risk and band, "
                    "audit commits, store failures, loaded models, readiness")
def metrics(request: Request, caller: Admin) -> Response:
    # a plain def (a worker thread): readiness pings the store, and the values of every worker are read
    state = request.app.state
    not_ready(state)  # this worker's ready, as of now
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)
