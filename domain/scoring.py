"""From validated bundles to scores, exact explanations, advice and audit entries: the one scoring
path of the API (one household or a batch) and of ``reproduce``, with the same feature code as
training (:func:`features.build.feature_matrix`) and the models exactly as registered.

Many households are scored as matrices: features for all of them in one pass, then per risk one
range check, one exact explanation of every row (``models.fast_shap``; the raw score is the base
value plus the contributions, so scoring and explaining are one computation) and one calibration;
lists, the calculator's inputs and the warm list's exclusions as arrays (:mod:`domain.advice`).
What remains per household is assembling its answer, which is rendered to JSON once: the bytes the
API returns are the bytes the audit record keeps.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from domain.advice import Advice, Advisor
from domain.loader import LoadedModel
from features.build import feature_matrix
from features.catalog import FEATURE_IDS
from features.policy import PolicyBook
from features.tables import Tables, tables_from_bundles
from models.risk_model import MatrixScores
from store.audit import AuditEntry


@dataclass(frozen=True)
class Scored:
    """One household scored: ``response`` (the API's answer), ``body`` (that answer as JSON, rendered
    once), ``scores`` (per risk, the audit's full entries: raw score, every contribution, the
    features) and ``entry`` (the audit record to append)."""

    request_id: str
    response: dict[str, Any]
    body: bytes
    scores: list[dict[str, Any]]
    entry: AuditEntry


@dataclass(frozen=True)
class Unscorable:
    """A bundle whose features fall outside a model's schema (a limit of the request checks let it
    through): nothing is scored for it; ``message`` names the feature."""

    message: str


def _feature_values(values: list[float]) -> dict[str, float | None]:
    return {f: (None if math.isnan(v) else v) for f, v in zip(FEATURE_IDS, values, strict=True)}


@dataclass
class Scorer:
    models: Sequence[LoadedModel]
    policy: PolicyBook
    advisor: Advisor | None = None  # lists, eligibility and warm list beside the scores

    def score(self, bundle: Mapping[str, Any], kind: str = "score", caller: str | None = None,
              request_id: str | None = None) -> Scored | Unscorable:
        """One validated bundle (as plain JSON values: ``domain.bundle`` checked it). ``caller``: who
        asked, as the audit record keeps it (JSON ``{"role", "key_id"}``); ``request_id``: the
        record's id (32 hex digits; the API's HTTP request id), a fresh one by default."""
        return self.score_many([bundle], kind, caller, None if request_id is None else [request_id])[0]

    def score_many(self, bundles: Sequence[Mapping[str, Any]], kind: str = "batch", caller: str | None = None,
                   request_ids: Sequence[str] | None = None) -> list[Scored | Unscorable]:
        """Validated bundles, in their order. Bundles of the same ``as_of`` share one feature matrix.
        ``request_ids``: each bundle's record id, fresh ones by default."""
        if request_ids is None:
            request_ids = [uuid.uuid4().hex for _ in bundles]
        elif len(request_ids) != len(bundles):
            raise ValueError(f"{len(request_ids)} request ids for {len(bundles)} bundles")
        by_day: dict[str, list[int]] = defaultdict(list)
        for i, b in enumerate(bundles):
            by_day[str(b["as_of"])].append(i)
        out: list[Scored | Unscorable | None] = [None] * len(bundles)
        for day, positions in by_day.items():
            for i, result in zip(positions, self._score_day([bundles[i] for i in positions], day, kind, caller,
                                                            [request_ids[i] for i in positions]),
                                 strict=True):
                out[i] = result
        return out  # type: ignore[return-value]

    def floor(self, bundle: Mapping[str, Any]) -> list[MatrixScores]:
        """The work no server can avoid for one household, by the very calls :meth:`score` makes:
        its features, and per risk its prediction and exact explanation. ``make bench`` sets the
        API's cost per request beside this."""
        _, x, per_model = self._features([bundle], str(bundle["as_of"]))
        return [lm.model.score_matrix(xm) for lm, xm in zip(self.models, per_model, strict=True)]

    def _features(self, bundles: Sequence[Mapping[str, Any]], as_of: str
                  ) -> tuple[Tables, np.ndarray, list[np.ndarray]]:
        """The bundles' tables (household i is bundle i), their feature matrix (row i) and each
        model's columns of it."""
        tables = tables_from_bundles(bundles)
        _, x = feature_matrix(tables, as_of, self.policy)
        return tables, x, [x[:, lm.model.positions(FEATURE_IDS)] for lm in self.models]

    def _score_day(self, bundles: list[Mapping[str, Any]], as_of: str, kind: str,
                   caller: str | None, request_ids: list[str]) -> list[Scored | Unscorable]:
        tables, x, per_model = self._features(bundles, as_of)
        refused: dict[int, str] = {}
        for lm, xm in zip(self.models, per_model, strict=True):
            for row, problem in lm.model.schema.row_problems(xm).items():
                refused.setdefault(row, f"{problem} (model {lm.name})")
        good = np.array([i for i in range(len(bundles)) if i not in refused], dtype=np.intp)
        out: list[Scored | Unscorable | None] = [Unscorable(refused[i]) if i in refused else None
                                                 for i in range(len(bundles))]
        if not len(good):
            return out  # type: ignore[return-value]
        columns = {f: x[:, j] for j, f in enumerate(FEATURE_IDS)}  # every household's, for the advice
        if refused:
            x, per_model = x[good], [xm[good] for xm in per_model]
        scores = [lm.model.score_matrix(xm) for lm, xm in zip(self.models, per_model, strict=True)]
        publics = [[self._public(lm, s, xm, k) for lm, s, xm in zip(self.models, scores, per_model, strict=True)]
                   for k in range(len(good))]
        advice: list[Advice | None] = [None] * len(good)
        if self.advisor is not None:
            advice = self.advisor.advise_matrix(tables, columns, as_of, publics, rows=good if refused else None)
        created = dt.datetime.now(dt.UTC)
        values = x.tolist()
        for k, i in enumerate(good.tolist()):
            out[i] = self._assemble(bundles[i], as_of, kind, created, publics[k], scores, k, values[k], advice[k],
                                    caller, request_ids[i])
        return out  # type: ignore[return-value]

    def _public(self, lm: LoadedModel, s: MatrixScores, xm: np.ndarray, k: int) -> dict[str, Any]:
        return {"risk": lm.risk, "probability": float(s.probability[k]), "band": str(s.band[k]),
                "flagged": bool(s.flagged[k]),
                "cause_present": None if s.cause_present is None else bool(s.cause_present[k]),
                "model": {"name": lm.name, "version": lm.version},
                "base_value": float(s.contributions[k, -1]), "reasons": lm.model.reasons(s.contributions[k], xm[k])}

    def _assemble(self, bundle: Mapping[str, Any], as_of: str, kind: str, created: dt.datetime,
                  public: list[dict[str, Any]], scores: list[MatrixScores], k: int, values: list[float],
                  advice: Advice | None, caller: str | None, request_id: str) -> Scored:
        household_id = bundle["household"]["household_id"]
        features = _feature_values(values)
        full = [{**entry, "raw_score": float(s.raw_score[k]),
                 "contributions": dict(zip(lm.model.schema.ids, s.contributions[k, :-1].tolist(), strict=True)),
                 "features": features}
                for lm, s, entry in zip(self.models, scores, public, strict=True)]
        response: dict[str, Any] = {"request_id": request_id, "household_id": household_id, "as_of": as_of,
                                    "scores": public}
        if advice is not None:
            response |= advice.response_fields()
        body = orjson.dumps(response)
        entry = AuditEntry(request_id=request_id, created_at=created, kind=kind, household_id=household_id,
                           as_of=as_of, models=[{"name": m.name, "version": m.version} for m in self.models],
                           flagged=any(p["flagged"] for p in public), request=orjson.dumps(bundle).decode(),
                           scores=orjson.dumps(full).decode(), response=body.decode(), caller=caller,
                           town=bundle["household"]["town"])
        return Scored(request_id=request_id, response=response, body=body, scores=full, entry=entry)
