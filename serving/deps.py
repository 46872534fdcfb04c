"""What the routes depend on: the services built at start-up (``app.state``), each behind a small
dependency that answers 503 when it is not there, and the bundle reader shared by the routes that
take a household bundle.

The dependencies are ``async def``: they only look things up, and FastAPI would run a plain ``def``
dependency in its thread pool, one thread hop per dependency per request.

The audit store is there once its schema is (:class:`StoreGate`): a service that started while the
database was down tries again, from ``/readyz`` and from each route that needs the store, until the
database answers; until then those routes answer 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.exc import SQLAlchemyError

from domain.advice import Advisor
from domain.bundle import ID_MAX_LENGTH, ID_PATTERN, parse_bundle
from domain.needs import NeedsService
from domain.scoring import Scorer
from features.policy import PolicyBook
from serving.bodies import json_body
from serving.errors import BadRequest, NotReady, StoreUnavailable, store_down
from store.access import AccessLog, Caller
from store.audit import AuditRecord, AuditStore
from store.feedback import FeedbackStore
from store.plans import PlanStore
from store.writer import GroupCommitter

T = TypeVar("T")
log = logging.getLogger("relief_risk.serving")

RETRY_SECONDS = 2.0  # how often a store that is not ready is tried again, at most


class StoreGate:
    """Whether :meth:`AuditStore.create` (schema, migrations, chain head) has succeeded, and trying
    it again, at most once every ``retry_seconds`` and by one thread at a time, until it does.
    ``create`` is idempotent, so a try that races a worker process's is harmless."""

    def __init__(self, store: AuditStore, retry_seconds: float = RETRY_SECONDS) -> None:
        self.store, self.retry_seconds = store, retry_seconds
        self.ready = False
        self.error = "not created yet"
        self._lock = threading.Lock()
        self._next_try = 0.0

    def due(self) -> bool:
        return not self.ready and time.monotonic() >= self._next_try

    def create(self) -> bool:
        """Tries ``create`` if it is due (blocking: call it off the event loop); whether the store is
        ready. A caller that finds another thread trying does not wait for it."""
        if self.ready:
            return True
        if not self.due() or not self._lock.acquire(blocking=False):
            return False
        try:
            if not self.ready:
                self.store.create()
                self.ready = True
                log.info("audit store ready")
        except Exception as exc:  # the reason's type, never its text (it may hold the URL's password)
            self.error = type(exc).__name__
            log.error("audit store not ready: %s", self.error)
        finally:
            self._next_try = time.monotonic() + self.retry_seconds
            self._lock.release()
        return self.ready

    async def ensure(self) -> None:
        """Returns once the store is ready (at once, the usual case); raises :class:`StoreUnavailable`
        (503) while it is not, after trying again in a worker thread when a try is due."""
        if self.ready:
            return
        if self.due():
            await anyio.to_thread.run_sync(self.create)
        if not self.ready:
            raise StoreUnavailable(f"audit store not ready ({self.error})")


class Workers:
    """Runs CPU-bound work (validation, scoring) in worker threads, at most ``threads`` at once."""

    def __init__(self, threads: int) -> None:
        self.limiter = anyio.CapacityLimiter(threads)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


async def workers(request: Request) -> Workers:
    return request.app.state.workers


async def scorer(request: Request) -> Scorer:
    s = request.app.state.scorer
    if s is None:
        raise NotReady(f"models not loaded: {request.app.state.load_error or 'starting'}")
    return s


def _behind_gate(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency answering ``app.state.<name>`` once the store's schema is there (503 until then)."""

    async def dependency(request: Request) -> Any:
        await request.app.state.store_gate.ensure()
        return getattr(request.app.state, name)

    return dependency


audit = _behind_gate("audit")
committer = _behind_gate("committer")
feedback = _behind_gate("feedback")
access = _behind_gate("access")
plans = _behind_gate("plans")
needs = _behind_gate("needs")


def town_refused(caller: Caller, town: str) -> None:
    """A key limited to towns may act only on households of those towns: 403 naming the town."""
    if not caller.may_see(town):
        raise HTTPException(403, f"this key is limited to the towns {', '.join(sorted(caller.towns or ()))}; "
                                 f"the household is of town {town!r}")


async def advisor(request: Request) -> Advisor:
    return request.app.state.advisor


async def policy(request: Request) -> PolicyBook:
    return request.app.state.policy


async def bundle_body(request: Request, raw: Annotated[Any, Depends(json_body)]) -> dict[str, Any]:
    """The request's bundle as JSON values, validated (422 naming each bad field otherwise)."""
    _, problems = parse_bundle(raw, request.app.state.policy)
    if problems:
        raise BadRequest(problems)
    return raw


WorkersDep = Annotated[Workers, Depends(workers)]
BundleBody = Annotated[dict[str, Any], Depends(bundle_body)]
ScorerDep = Annotated[Scorer, Depends(scorer)]
AuditDep = Annotated[AuditStore, Depends(audit)]
CommitterDep = Annotated[GroupCommitter, Depends(committer)]
FeedbackDep = Annotated[FeedbackStore, Depends(feedback)]
AdvisorDep = Annotated[Advisor, Depends(advisor)]
AccessDep = Annotated[AccessLog, Depends(access)]
PolicyDep = Annotated[PolicyBook, Depends(policy)]
PlansDep = Annotated[PlanStore, Depends(plans)]
NeedsDep = Annotated[NeedsService, Depends(needs)]
# a household id in a path: the bundle's id pattern, checked before anything reaches the store
HouseholdId = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]


def prompting_record(audit: AuditStore, caller: Caller, request_id: str, what: str) -> AuditRecord:
    """The score request a caseworker's record (feedback, an assessment) is tied to: 404 when there is
    none or it is outside a limited key's towns (as if unknown), 422 when its record was purged, 503
    when the store cannot be read. ``what`` names the record in messages ("feedback")."""
    try:
        prompt = audit.get(request_id)
    except SQLAlchemyError as exc:
        raise store_down(f"{what} not stored", exc) from exc
    if prompt is None or not caller.may_see(prompt.town):
        raise HTTPException(404, "no score request with this request_id")
    if prompt.purged_at is not None:
        raise BadRequest([{"loc": ["body", "request_id"], "type": "value_error.purged",
                           "msg": f"that request's record was purged on {prompt.purged_at.date()} (past the "
                                  f"retention period): {what} can no longer be tied to it"}])
    return prompt
