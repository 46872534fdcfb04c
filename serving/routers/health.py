"""``/healthz`` (the process is up) and ``/readyz`` (models loaded, store reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.schemas import ErrorResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Models loaded and audit store reachable", responses={503: {"model": ErrorResponse}})
def readyz(request: Request) -> JSONResponse:
    problems = []
    if request.app.state.scorer is None:
        problems.append(f"models not loaded: {request.app.state.load_error or 'starting'}")
    if not request.app.state.audit.ping():
        problems.append("audit store unreachable")
    if problems:
        return JSONResponse(status_code=503, content={"status": "not ready", "detail": "; ".join(problems)})
    return JSONResponse({"status": "ready"})
