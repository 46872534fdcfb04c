"""The FastAPI app: an app factory, a lifespan that loads the champion models once, thin routes.

Routes that score are plain ``def``: FastAPI runs them in its worker threads, so CPU-bound feature
building, prediction and TreeSHAP never block the event loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import mlflow
from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from domain.advice import Advisor
from domain.bundle import CONTRACT_EXAMPLE, check_bundle, parse_bundle
from domain.household_file import household_file
from domain.loader import load_served
from domain.scoring import Scorer
from features.io import load_policy_book
from features.tables import tables_from_bundle
from models.schema import FeatureSchemaError
from policy import check_programs, load_eligibility
from serving.audit_view import AuditPage, AuditQuery, audit_detail, audit_summary, summaries_csv
from serving.auth import require
from serving.limits import BodySizeLimit
from serving.schemas import (
    BatchRequest,
    BatchResponse,
    Bundle,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HouseholdFile,
    ModelInfo,
    ModelsResponse,
    PolicyCheckResponse,
    ScoreResponse,
)
from serving.settings import Settings
from serving.ui import router as ui_router
from store.audit import AuditStore, AuditUnavailable
from store.feedback import FeedbackConflict, FeedbackStore

log = logging.getLogger("relief_risk.serving")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or unknown API key"},
    403: {"model": ErrorResponse, "description": "the key's role may not call this endpoint"},
    422: {"model": ErrorResponse, "description": "bad input: each item names the field (`loc`) and why (`msg`)"},
    503: {"model": ErrorResponse, "description": "models not loaded or audit store unreachable; nothing was scored"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 400: {"model": ErrorResponse, "description": "the body could not be read as JSON (e.g. not UTF-8)"},
    413: {"model": ErrorResponse, "description": "request body larger than the configured limit"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"model": ErrorResponse, "description": "no such record"}}


class NotReady(RuntimeError):
    pass


class StoreUnavailable(RuntimeError):
    """The store did not answer a read or a non-score write; its message is safe to return."""


def create_app_from_env() -> FastAPI:
    """The factory uvicorn's worker processes call (``--workers N``): settings from the environment."""
    return create_app(Settings())


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.mlflow_tracking_uri:
            mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        app.state.keys = settings.keys
        app.state.policy = load_policy_book(settings.policy_path)
        app.state.eligibility = load_eligibility(settings.policy_path)
        app.state.advisor = Advisor.load(settings.policy_path, policy=app.state.policy)
        app.state.audit = AuditStore(settings.audit_url)
        app.state.feedback = FeedbackStore(app.state.audit.engine)
        app.state.scorer = None
        app.state.missing = []
        app.state.load_error = None
        try:
            app.state.audit.create()
        except Exception as exc:  # the service still starts and says it is not ready
            log.error("audit store unavailable at start: %s", type(exc).__name__)
        try:
            models, app.state.missing = load_served(settings.risks, settings.model_alias,
                                                    required=settings.risks_explicit)
            app.state.scorer = Scorer(models=models, policy=app.state.policy, advisor=app.state.advisor)
            log.info("loaded %s", ", ".join(f"{m.name} v{m.version}" for m in app.state.scorer.models))
        except Exception as exc:
            app.state.load_error = f"{type(exc).__name__}: {exc}"
            log.error("models not loaded: %s", app.state.load_error)
        yield
        app.state.audit.dispose()

    app = FastAPI(
        title="relief-risk", version="1", lifespan=lifespan,
        summary="Active discovery of hardship (主动发现), above all illness-induced poverty (因病致贫).",
        description="Scores support caseworkers' decisions about whom to visit; a score never denies help. "
                    "See contract.md for the data contract.",
    )
    app.add_middleware(BodySizeLimit, default_limit=settings.max_body_bytes,
                       limits={"/v1/score/batch": settings.max_batch_body_bytes})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "invalid"), "type": e.get("type", "value_error")}
                  for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(AuditUnavailable)
    async def _audit_down(request: Request, exc: AuditUnavailable) -> JSONResponse:
        log.error("audit write failed: %s", exc)
        return JSONResponse(status_code=503, content={"detail": "audit store unavailable; nothing was scored"})

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("store unavailable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": f"store unavailable: {exc}"})

    @app.exception_handler(FeatureSchemaError)
    async def _outside_schema(request: Request, exc: FeatureSchemaError) -> JSONResponse:
        # every request limit is meant to keep features inside the schema; if one slips through,
        # the caller learns which feature, and nothing is scored
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": ["body"], "msg": f"the household's features fall outside the model's schema: {exc}",
             "type": "value_error.feature_schema"}]})

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.middleware("http")
    async def _access_log(request: Request, call_next):
        # no identifiers: the route's template (/v1/audit/{request_id}), never the path that was asked
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        log.info("%s %s %d %.1fms", request.method, getattr(route, "path", "(no route)"), response.status_code,
                 (time.perf_counter() - t0) * 1000)
        return response

    def scorer(request: Request) -> Scorer:
        s = request.app.state.scorer
        if s is None:
            raise NotReady(f"models not loaded: {request.app.state.load_error or 'starting'}")
        return s

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Models loaded and audit store reachable",
             responses={503: {"model": ErrorResponse}})
    def readyz(request: Request) -> JSONResponse:
        problems = []
        if request.app.state.scorer is None:
            problems.append(f"models not loaded: {request.app.state.load_error or 'starting'}")
        if not request.app.state.audit.ping():
            problems.append("audit store unreachable")
        if problems:
            return JSONResponse(status_code=503, content={"status": "not ready", "detail": "; ".join(problems)})
        return JSONResponse({"status": "ready"})

    @app.post("/v1/score", response_model=ScoreResponse, tags=["scores"], responses=BODY_ERRORS,
              summary="Score one household: calibrated risks, top reasons in Chinese, an audit record")
    def score(request: Request, role: Annotated[str, Depends(require("platform"))],
              bundle: Annotated[Bundle, Body(openapi_examples={"contract": {"value": CONTRACT_EXAMPLE}})]
              ) -> dict[str, Any]:
        s = scorer(request)
        problems = check_bundle(bundle, s.policy)
        if problems:
            raise HTTPException(422, problems)
        scored = s.score(bundle)
        request.app.state.audit.write([scored.record])
        return scored.response

    @app.post("/v1/score/batch", response_model=BatchResponse, tags=["scores"], responses=BODY_ERRORS,
              summary="Score up to 1,000 households; a bad item gets its own 422 detail")
    def score_batch(request: Request, role: Annotated[str, Depends(require("platform"))],
                    batch: BatchRequest) -> dict[str, Any]:
        s = scorer(request)
        results: list[dict[str, Any]] = []
        records = []
        for i, raw in enumerate(batch.items):
            bundle, problems = parse_bundle(raw, s.policy, prefix=["body", "items", i])
            if bundle is None:
                results.append({"index": i, "status": 422, "detail": problems})
                continue
            scored = s.score(bundle, kind="batch")
            results.append(scored.response)
            records.append(scored.record)
        if records:
            request.app.state.audit.write(records)
        return {"results": results}

    @app.get("/v1/audit", tags=["audit"], responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
             response_model=AuditPage, summary="Search audit records, newest first; `format=csv` exports them as CSV")
    def audit_search(request: Request, role: Annotated[str, Depends(require("auditor"))],
                     q: Annotated[AuditQuery, Query()]) -> Any:
        records = request.app.state.audit.query(
            household_id=q.household_id, since=q.since, until=q.until, model_name=q.model_name,
            model_version=q.model_version, flagged=q.flagged, before_seq=q.before_seq, limit=q.limit)
        rows = [audit_summary(r) for r in records]
        if q.format == "csv":
            return Response(summaries_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
        next_seq = records[-1].seq if len(records) == q.limit else None
        return {"records": rows, "next_before_seq": next_seq}

    @app.get("/v1/audit/{request_id}", tags=["audit"], responses=NOT_FOUND,
             summary="What was received, the model versions, full contributions and the response as returned")
    def audit(request: Request, request_id: str, role: Annotated[str, Depends(require("auditor"))]) -> dict[str, Any]:
        if len(request_id) > 64:
            raise HTTPException(404, "no audit record with this request_id")
        rec = request.app.state.audit.get(request_id)
        if rec is None:
            raise HTTPException(404, "no audit record with this request_id")
        return audit_detail(rec)

    @app.post("/v1/policy/check", response_model=PolicyCheckResponse, tags=["policy"], responses=BODY_ERRORS,
              summary="Policy calculator (政策计算器): which programmes the household likely qualifies for, "
                      "with the arithmetic")
    def policy_check(request: Request, role: Annotated[str, Depends(require("platform", "auditor"))],
                     bundle: Annotated[Bundle, Body(openapi_examples={"contract": {"value": CONTRACT_EXAMPLE}})]
                     ) -> dict[str, Any]:
        policy = request.app.state.policy
        problems = check_bundle(bundle, policy)
        if problems:
            raise HTTPException(422, problems)
        raw = bundle.model_dump(mode="json")
        answer = check_programs(tables_from_bundle(raw), bundle.as_of, policy, request.app.state.eligibility)
        return {"household_id": raw["household"]["household_id"], "as_of": raw["as_of"], **answer}

    @app.get("/v1/models", response_model=ModelsResponse, tags=["models"], responses=ERRORS,
             summary="The served model names, versions and aliases, and how often flagged visits confirmed need")
    def models(request: Request, role: Annotated[str, Depends(require("platform", "auditor", "admin"))]
               ) -> dict[str, Any]:
        s = scorer(request)
        try:
            confirmation = request.app.state.feedback.confirmation()
        except SQLAlchemyError as exc:  # the store down: the models are still served and listed
            log.warning("feedback unreadable: %s", type(exc).__name__)
            confirmation = {}
        return {"models": [ModelInfo(name=m.name, version=m.version, aliases=list(m.aliases), run_id=m.run_id,
                                     loaded_from=m.uri, feedback=confirmation.get(m.name)) for m in s.models],
                "missing": request.app.state.missing}

    @app.post("/v1/feedback", response_model=FeedbackResponse, status_code=201, tags=["feedback"],
              responses={**BODY_ERRORS, 200: {"model": FeedbackResponse,
                                              "description": "the same visit was already recorded: the stored one"},
                         409: {"model": ErrorResponse,
                               "description": "this request already has feedback with a different outcome"}},
              summary="Record what a home visit found, tied to the score request that prompted it")
    def feedback(request: Request, role: Annotated[str, Depends(require("platform"))], body: FeedbackRequest
                 ) -> Any:
        try:
            prompt = request.app.state.audit.get(body.request_id)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"feedback not stored: {type(exc).__name__}") from exc
        if prompt is None:
            raise HTTPException(422, [{"loc": ["body", "request_id"], "msg": "no score request with this request_id",
                                       "type": "value_error.unknown_request"}])
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
            raise HTTPException(422, problems)
        try:
            fb, created = request.app.state.feedback.add(prompt, body.visited_on, list(body.findings))
        except FeedbackConflict as exc:
            raise HTTPException(409, f"request {body.request_id} already has feedback {exc.existing.feedback_id} "
                                     f"(visited {exc.existing.visited_on}, findings "
                                     f"{','.join(exc.existing.findings)}); feedback is append-only") from None
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"feedback not stored: {type(exc).__name__}") from exc
        return JSONResponse(fb.as_dict(), status_code=201 if created else 200)

    @app.get("/v1/households/{household_id}", response_model=HouseholdFile, tags=["households"], responses=NOT_FOUND,
             summary="一户一档: the household's latest features, score history, lists, eligibility, warm list "
                     "and feedback")
    def household(request: Request, role: Annotated[str, Depends(require("platform", "auditor"))],
                  household_id: Annotated[str, Path(min_length=1, max_length=64,
                                                    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]) -> dict[str, Any]:
        try:
            answer = household_file(request.app.state.audit, request.app.state.feedback, request.app.state.advisor,
                                    household_id)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"household file unreadable: {type(exc).__name__}") from exc
        if answer is None:
            raise HTTPException(404, "the service has not scored this household")
        return answer

    app.include_router(ui_router)  # the auditor's web pages under /ui
    return app
