"""``/healthz`` (the process is up) and ``/readyz`` (models loaded, store reachable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.schemas import ErrorResponse

router = APIRouter(tags=["health"])


def not_ready(state: Any) -> list[str]:
    """Why the service is not ready (nothing: it is), and the metrics' ``ready`` set to match. Blocking:
    a store that is not ready yet is tried again from here, one that is is pinged."""
    problems = []
    if state.scorer is None:
        problems.append(f"models not loaded: {state.load_error or 'starting'}")
    if not state.store_gate.create():
        problems.append(f"audit store not ready ({state.store_gate.error})")
    elif not state.audit.ping():
        problems.append("audit store unreachable")
    state.metrics.set_ready(not problems)
    return problems


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Models loaded and audit store reachable", responses={503: {"model": ErrorResponse}})
def readyz(request: Request) -> JSONResponse:
    # a plain def (a worker thread): a store that is not ready yet is tried again from here
    problems = not_ready(request.app.state)
    if problems:
        return JSONResponse(status_code=503, content={"status": "not ready", "detail": "; ".join(problems)})
    return JSONResponse({"status": "ready"})
