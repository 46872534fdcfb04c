"""``POST /v1/score`` and ``POST /v1/score/batch``: bundles in, scores with reasons, advice and a
durable audit record out. The answer is rendered once (by the domain) and returned as those bytes.

Validation and scoring are CPU work: they run in worker threads (:class:`serving.deps.Workers`, a
few at a time: more threads than cores only fight over the GIL), never on the event loop. The wait
for the audit commit holds no thread: the group committer's future is awaited on the loop, so many
requests can wait for one fsync together.

A single score's audit record takes the HTTP request's id (``X-Request-ID``, the ``request_id`` of
every log line of the request); a batch's items have ids of their own. Scores are counted in the
metrics once their records are committed.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from domain.bundle import CONTRACT_EXAMPLE, Bundle, parse_bundle, pydantic_problems
from domain.scoring import Scored, Scorer
from features.policy import PolicyBook
from serving.auth import require
from serving.bodies import documented_body, json_body
from serving.deps import CommitterDep, PolicyDep, ScorerDep, WorkersDep, town_refused
from serving.errors import BadRequest, outside_schema
from serving.logs import REQUEST_ID
from serving.metrics import tally
from serving.schemas import BODY_ERRORS, BatchRequest, BatchResponse, ScoreResponse
from store.access import Caller

router = APIRouter(tags=["scores"])
Platform = Annotated[Caller, Depends(require("platform"))]
RawBody = Annotated[Any, Depends(json_body)]


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _score_one(raw: Any, scorer: Scorer, policy: PolicyBook, caller: Caller, request_id: str | None) -> Scored:
    _, problems = parse_bundle(raw, policy)
    if problems:
        raise BadRequest(problems)
    town_refused(caller, raw["household"]["town"])
    scored = scorer.score(raw, caller=caller.json(), request_id=request_id)
    if not isinstance(scored, Scored):
        raise BadRequest([outside_schema(scored.message)])
    return scored


@router.post("/v1/score", response_model=ScoreResponse, responses=BODY_ERRORS,
             openapi_extra=documented_body(Bundle, {"contract": {"value": CONTRACT_EXAMPLE}}),
             summary="Score one household: calibrated risks, top reasons in Chinese, an audit record")
async def score(request: Request, caller: Platform, scorer: ScorerDep, policy: PolicyDep, raw: RawBody,
                workers: WorkersDep, writer: CommitterDep) -> Response:
    scored = await workers.run(_score_one, raw, scorer, policy, caller, REQUEST_ID.get())
    await writer.wait([scored.entry])  # durable before it is answered (503 otherwise)
    request.app.state.metrics.scored(tally(scored.response["scores"]))
    return _json(scored.body)


def _score_items(raw: Any, scorer: Scorer, policy: PolicyBook, caller: Caller
                 ) -> tuple[list[bytes], list[Any], Counter[tuple[str, str, bool]]]:
    try:
        items = BatchRequest.model_validate(raw).items
    except ValidationError as exc:
        raise BadRequest(pydantic_problems(exc)) from None
    answers: list[bytes] = [b""] * len(items)
    good = []
    for i, item in enumerate(items):  # item by item: a bad item keeps its own 422
        _, problems = parse_bundle(item, policy, prefix=["body", "items", i])
        if problems:
            answers[i] = orjson.dumps({"index": i, "status": 422, "detail": problems})
        elif not caller.may_see(town := item["household"]["town"]):
            answers[i] = orjson.dumps({"index": i, "status": 403, "detail": f"this key is limited to the towns "
                                       f"{', '.join(sorted(caller.towns or ()))}; the household is of town {town!r}"})
        else:
            good.append(i)
    entries, scores = [], []
    for i, scored in zip(good, scorer.score_many([items[i] for i in good], kind="batch", caller=caller.json()),
                         strict=True):
        if isinstance(scored, Scored):
            answers[i] = scored.body
            entries.append(scored.entry)
            scores += scored.response["scores"]
        else:
            answers[i] = orjson.dumps({"index": i, "status": 422,
                                       "detail": [outside_schema(scored.message, ["body", "items", i])]})
    return answers, entries, tally(scores)


@router.post("/v1/score/batch", response_model=BatchResponse, responses=BODY_ERRORS,
             openapi_extra=documented_body(BatchRequest),
             summary="Score up to 1,000 households; a bad item gets its own 422 detail (403 outside a limited "
                     "key's towns)")
async def score_batch(request: Request, caller: Platform, scorer: ScorerDep, policy: PolicyDep, raw: RawBody,
                      workers: WorkersDep, writer: CommitterDep) -> Response:
    answers, entries, counts = await workers.run(_score_items, raw, scorer, policy, caller)
    if entries:
        await writer.wait(entries)  # one transaction for the whole batch
        request.app.state.metrics.scored(counts)
    return _json(b'{"results":[' + b",".join(answers) + b"]}")
