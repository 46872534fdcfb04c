"""The FastAPI app: an app factory, a lifespan that loads the champion models once, the routers.

The service is HTTP only: what it answers comes from :mod:`domain` (scoring, advice, the household
file) and :mod:`store` (the audit trail, feedback, batch history), which the nightly batch and the
command line use too. Routes live in :mod:`serving.routers`, one per resource; failures map to
statuses in one place (:mod:`serving.errors`). Each app has its metrics (:mod:`serving.metrics`,
``GET /metrics``); the request log and each request's id are :mod:`serving.middleware`'s.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import mlflow
from fastapi import FastAPI

from domain.advice import Advisor
from domain.bundle import Bundle
from domain.funnel import FunnelCache
from domain.loader import load_served
from domain.needs import NeedsService
from domain.scoring import Scorer
from features.io import load_policy_book
from models.drift import Thresholds as DriftThresholds
from policy import load_eligibility
from serving import docs, errors, middleware
from serving.bodies import add_schemas
from serving.deps import StoreGate, Workers
from serving.limits import BodySizeLimit
from serving.metrics import Metrics
from serving.routers import ROUTERS
from serving.schemas import AssessmentRequest, BatchRequest, FeedbackRequest, PlanDraftRequest, PlanEventRequest
from serving.settings import Settings
from serving.throttle import Window, parse_rate
from serving.ui import router as ui_router
from store.access import AccessLog
from store.assessments import AssessmentStore
from store.audit import AuditStore
from store.checkpoint import Checkpointer
from store.feedback import FeedbackStore
from store.plans import PlanStore
from store.writer import GroupCommitter

log = logging.getLogger("relief_risk.serving")

DESCRIPTION = ("Scores support caseworkers' decisions about whom to visit; a score never denies help. "
               "The data contract (tables, the household bundle, point-in-time rules) is docs/contract.md, and "
               "every route with its roles, bodies, answers and errors is docs/api.md, both in the relief-risk "
               "project's repository; checks/contract_check.py there checks a running service against them.")


def create_app_from_env() -> FastAPI:
    """The factory uvicorn's worker processes call (``--workers N``): settings from the environment."""
    return create_app(Settings())


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.mlflow_tracking_uri:
            mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        state = app.state
        state.keys = settings.keys
        state.policy = load_policy_book(settings.policy_path)
        unknown = sorted({t for g in state.keys.values() for t in (g.towns or ())} - state.policy.all_towns)
        if unknown:
            raise ValueError(f"RELIEF_RISK_API_KEYS limits keys to towns the policy file does not know: {unknown}")
        state.secure_cookies = settings.secure_cookies
        state.login_window = Window(*parse_rate(settings.login_failures))
        state.key_window = Window(*parse_rate(settings.key_rate)) if settings.key_rate else None
        state.eligibility = load_eligibility(settings.policy_path)
        state.drift_thresholds = DriftThresholds.load(settings.policy_path)
        state.advisor = Advisor.load(settings.policy_path, policy=state.policy)
        state.audit = AuditStore(settings.audit_url)
        state.committer = GroupCommitter(state.audit, on_commit=metrics.committed)
        state.workers = Workers(settings.scoring_threads)
        state.feedback = FeedbackStore(state.audit.engine)
        state.access = AccessLog(state.audit)
        state.funnel = FunnelCache(state.audit.engine, settings.funnel_ttl)
        state.plans = PlanStore(state.audit.engine)
        state.needs = NeedsService.load(AssessmentStore(state.audit.engine), state.policy, settings.policy_path)
        state.checkpointer = None
        if settings.checkpoint_key and settings.checkpoint_file:  # a bad or open key stops the start here
            state.checkpointer = Checkpointer(state.audit, settings.checkpoint_key, settings.checkpoint_file,
                                              every_records=settings.checkpoint_every_records,
                                              every_seconds=settings.checkpoint_every_seconds)
        state.scorer, state.missing, state.load_error = None, [], None
        # the service starts even when the database does not answer: it says it is not ready, and
        # /readyz and the routes that need the store try again until it does (serving.deps.StoreGate)
        state.store_gate = StoreGate(state.audit)
        state.store_gate.create()
        try:
            models, state.missing = load_served(settings.risks, settings.model_alias,
                                                required=settings.risks_explicit)
            state.scorer = Scorer(models=models, policy=state.policy, advisor=state.advisor)
            log.info("loaded %s", ", ".join(f"{m.name} v{m.version}" for m in models))
        except Exception as exc:
            state.load_error = f"{type(exc).__name__}: {exc}"
            log.error("models not loaded: %s", state.load_error)
        served = state.scorer.models if state.scorer is not None else []
        metrics.models([(m.risk, m.name, m.version) for m in served], settings.risks)
        metrics.set_ready(state.scorer is not None and state.store_gate.ready)
        # what start-up built (models, MLflow's modules, the policy books) lives as long as the process:
        # the cyclic garbage collector need not walk it again on every collection of request garbage
        gc.collect()
        gc.freeze()
        if state.checkpointer is not None:
            state.checkpointer.start()
        yield
        gc.unfreeze()
        state.committer.close()
        if state.checkpointer is not None:
            state.checkpointer.close()  # signs what was added since the last checkpoint
        state.audit.dispose()

    metrics = Metrics()
    app = FastAPI(title="relief-risk", version="1", lifespan=lifespan, description=DESCRIPTION,
                  docs_url=None, redoc_url=None,  # served offline by serving.docs
                  summary="Active discovery of hardship (主动发现), above all illness-induced poverty (因病致贫).")
    app.add_middleware(BodySizeLimit, default_limit=settings.max_body_bytes,
                       limits={"/v1/score/batch": settings.max_batch_body_bytes})
    app.state.metrics = metrics
    # the request log lines and the request metrics, not the access log of reads
    app.add_middleware(middleware.AccessLog, metrics=metrics)
    errors.install(app, metrics)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(ui_router)  # the auditor's web pages under /ui
    docs.install(app)
    add_schemas(app, Bundle, BatchRequest, FeedbackRequest, AssessmentRequest,  # bodies the routes read themselves
                PlanDraftRequest, PlanEventRequest)
    return app
