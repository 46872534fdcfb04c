"""一户一档: one household's file, assembled from what the service already keeps — its latest
received bundle and scores (audit trail), its score history across API requests and nightly
batches, caseworkers' feedback — plus today's lists, eligibility and warm list computed from that
latest bundle with the dated policy file. When a nightly batch saw the household after its latest
request (or no request ever did), the latest part comes from that run's outputs
(:mod:`domain.nightly_file`)."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from domain.advice import Advisor
from domain.nightly_file import batch_file
from domain.plans import plan_view
from features.build import build_features
from features.catalog import FEATURES
from features.tables import tables_from_bundle
from models.explain import format_value
from store.audit import AuditRecord, AuditStore
from store.feedback import FeedbackStore
from store.history import household_batches, latest_run_of
from store.plans import PlanStore

if TYPE_CHECKING:  # domain.needs reads the file: only the type here, not the module
    from domain.needs import NeedsService

HISTORY_LIMIT = 100
_SOURCES = {"score": "api_request", "batch": "api_batch"}


def _history_entry(r: AuditRecord) -> dict[str, Any]:
    return {"source": _SOURCES.get(r.kind, r.kind), "id": r.request_id, "created_at": r.created_at.isoformat(),
            "as_of": r.as_of,
            "scores": [{"risk": s["risk"], "probability": s["probability"], "band": s["band"], "flagged": s["flagged"],
                        "model_version": s["model"]["version"]} for s in r.scores]}


def _features(values: dict[str, float | None]) -> list[dict[str, Any]]:
    out = []
    for spec in FEATURES:
        if spec.id not in values:
            continue
        v = values[spec.id]
        out.append({"feature": spec.id, "label": spec.label_zh, "unit": spec.unit, "value": v,
                    "display": format_value(math.nan if v is None else v, spec.unit)})
    return out


def household_file(audit: AuditStore, feedback: FeedbackStore, advisor: Advisor,
                   household_id: str, plans: PlanStore | None = None,
                   needs: NeedsService | None = None) -> dict[str, Any] | None:
    """None when the service has never scored the household. ``plans``: the plan store, for the
    file's ``plan`` (一户一策; none without it). ``needs``: add the needs assessment (data levels of
    the latest part with the visits since, :mod:`domain.needs`)."""
    answer = _file(audit, feedback, advisor, household_id)
    if answer is None:
        return None
    if plans is not None:  # the household's plan (一户一策)
        answer["plan"] = plan_view(household_id, plans.plan(household_id), advisor.measures,
                                   dt.date.today())["measures"]
    if needs is not None:  # 需求评估
        answer["needs"] = needs.of_file(answer)
    return answer


def _file(audit: AuditStore, feedback: FeedbackStore, advisor: Advisor, household_id: str) -> dict[str, Any] | None:
    records = audit.query(household_id=household_id, limit=HISTORY_LIMIT)
    batches = household_batches(audit.engine, household_id, limit=HISTORY_LIMIT)
    if not records and not batches:
        return None
    history = sorted([*map(_history_entry, records), *batches], key=lambda h: h["created_at"], reverse=True)
    answer: dict[str, Any] = {"household_id": household_id, "latest": None, "features": [], "scores": [],
                              "lists": [], "eligibility": None, "warm_list": [], "history": history[:HISTORY_LIMIT],
                              "feedback": [fb.as_dict() for fb in feedback.for_household(household_id)]}
    latest = next((r for r in records if r.purged_at is None), None)  # a purged record has no bundle left
    run = latest_run_of(audit.engine, household_id) if batches else None
    if run is not None and (latest is None or run.created_at > latest.created_at):
        nightly = batch_file(run, household_id, advisor)  # the nightly batch saw it last
        if nightly is not None:
            return answer | nightly | {"features": _features(nightly["features"])}
    if latest is not None:
        bundle = latest.request
        tables = tables_from_bundle(bundle)
        feats = build_features(tables, bundle["as_of"], advisor.policy)
        public = latest.response.get("scores", [])
        advice = advisor.advise(tables, feats, bundle["as_of"], public)
        stored = latest.scores[0].get("features") if latest.scores else None
        values = stored if stored is not None else {
            k: (None if math.isnan(v) else float(v)) for k, v in feats.iloc[0].items()}
        answer |= {"latest": {"source": _SOURCES.get(latest.kind, latest.kind), "request_id": latest.request_id,
                              "run_id": None, "created_at": latest.created_at.isoformat(), "as_of": latest.as_of,
                              "town": bundle["household"]["town"]},
                   "features": _features(values), "scores": public, "lists": advice.lists,
                   "eligibility": advice.eligibility, "warm_list": advice.warm_list}
    return answer
