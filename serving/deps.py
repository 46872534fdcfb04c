"""What the routes depend on: the services built at start-up (``app.state``), each behind a small
dependency that answers 503 when it is not there, and the bundle reader shared by the routes that
take a household bundle.

The dependencies are ``async def``: they only look things up, and FastAPI would run a plain ``def``
dependency in its thread pool, one thread hop per dependency per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, HTTPException, Request

from domain.advice import Advisor
from domain.bundle import parse_bundle
from domain.scoring import Scorer
from features.policy import PolicyBook
from serving.bodies import json_body
from serving.errors import BadRequest, NotReady
from store.access import AccessLog, Caller
from store.audit import AuditStore
from store.feedback import FeedbackStore
from store.writer import GroupCommitter

T = TypeVar("T")


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


async def audit(request: Request) -> AuditStore:
    return request.app.state.audit


async def committer(request: Request) -> GroupCommitter:
    return request.app.state.committer


async def feedback(request: Request) -> FeedbackStore:
    return request.app.state.feedback


async def access(request: Request) -> AccessLog:
    return request.app.state.access


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
