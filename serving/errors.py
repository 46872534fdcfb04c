"""The one map from what can go wrong to an HTTP answer. Routes raise domain exceptions (or
``HTTPException`` for plain 404/409 cases); :func:`install` turns each kind into its status here, so
every route answers the same way for the same failure (MLServer's ``rest/errors.py`` does the same).
Each 503 the store causes is counted in the metrics' ``store_failures_total`` by its kind."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from models.schema import FeatureSchemaError
from serving.metrics import Metrics
from store.access import AccessUnavailable
from store.audit import AuditUnavailable

log = logging.getLogger("relief_risk.serving")

Problem = dict[str, Any]


class NotReady(RuntimeError):
    """The models are not loaded (yet): 503."""


class StoreUnavailable(RuntimeError):
    """The store did not answer a read or a non-score write: 503; the message is safe to return."""


class BadRequest(Exception):
    """Bad input found by the service's own checks: 422 with FastAPI's ``detail`` shape, each item
    naming the field (``loc``) and why (``msg``)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


def store_down(what: str, exc: SQLAlchemyError) -> StoreUnavailable:
    """A read or non-score write that failed on the store: the reason's type, never its text (it may
    hold a connection string)."""
    return StoreUnavailable(f"{what}: {type(exc).__name__}")


def install(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "invalid"), "type": e.get("type", "value_error")}
                  for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.problems})

    @app.exception_handler(AuditUnavailable)
    async def _audit_down(request: Request, exc: AuditUnavailable) -> JSONResponse:
        log.error("audit write failed: %s", exc)
        metrics.store_failed("audit")
        return JSONResponse(status_code=503, content={"detail": "audit store unavailable; nothing was scored"})

    @app.exception_handler(AccessUnavailable)
    async def _access_down(request: Request, exc: AccessUnavailable) -> JSONResponse:
        log.error("access log write failed: %s", exc)
        metrics.store_failed("access")
        return JSONResponse(status_code=503, content={"detail": "access log unavailable; nothing was returned"})

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("store unavailable: %s", exc)
        metrics.store_failed("store")
        return JSONResponse(status_code=503, content={"detail": f"store unavailable: {exc}"})

    @app.exception_handler(SQLAlchemyError)
    async def _store_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # a store read that no route expected to fail: still the store's fault, never a 500
        log.error("store error: %s", type(exc).__name__)
        metrics.store_failed("store_unexpected")
        return JSONResponse(status_code=503, content={"detail": f"store unavailable: {type(exc).__name__}"})

    @app.exception_handler(FeatureSchemaError)
    async def _outside_schema(request: Request, exc: FeatureSchemaError) -> JSONResponse:
        # every request limit is meant to keep features inside the schema; if one slips through,
        # the caller learns which feature, and nothing is scored
        return JSONResponse(status_code=422, content={"detail": [outside_schema(str(exc))]})

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})


def outside_schema(message: str, loc: list[str | int] | None = None) -> Problem:
    return {"loc": loc or ["body"], "msg": f"the household's features fall outside the model's schema: {message}",
            "type": "value_error.feature_schema"}
