"""The household file of a household the nightly batch scored, built from that run's own outputs.

``relief-risk batch`` (with a store, which is its default when ``RELIEF_RISK_AUDIT_URL`` is set)
records the run and each household's scores beside the audit trail; the run's folder keeps
``scores.parquet`` (every household's scores, model versions, lists), ``explanations.parquet``
(exact explanations with the top reasons in Chinese, for every household the run explained: the
flagged ones by default) and ``summary.json`` (which raw-table folder it read). The file reads the
household's rows from those (arrow filters, not the whole city) and its raw rows from that folder,
and builds what a request's record would give: features with Chinese labels, scores with reasons,
lists, eligibility and the warm list. A household the run did not explain has its scores without
reasons. If the folders are gone, the file keeps the batch's score history only.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from domain.advice import Advisor
from features.build import build_features
from features.io import read_households
from store.history import BatchRun

log = logging.getLogger(__name__)

SCORES_FILE, EXPLANATIONS_FILE, SUMMARY_FILE = "scores.parquet", "explanations.parquet", "summary.json"


def _explanations(path: Path, household_id: str, risks: set[str]
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """The household's explanation per risk, and each of ``risks``' base value in the run (TreeSHAP's
    base value is the model's expected output: one per model, whichever household was explained)."""
    mine = {r["risk"]: r for r in pq.read_table(path, columns=["risk", "base_value", "reasons"],
                                                filters=[("household_id", "=", household_id)]).to_pylist()}
    base: dict[str, float] = {}
    for batch in pq.ParquetFile(path).iter_batches(columns=["risk", "base_value"], batch_size=65_536):
        for risk, value in zip(batch.column("risk").to_pylist(), batch.column("base_value").to_pylist(),
                               strict=True):
            base.setdefault(risk, value)
        if risks <= base.keys():
            break
    return mine, base


def batch_file(run: BatchRun, household_id: str, advisor: Advisor) -> dict[str, Any] | None:
    """The file's latest part (``latest``, ``features`` as {id: value}, ``scores``, ``lists``,
    ``eligibility``, ``warm_list``) from ``run``'s outputs; None when they cannot be read."""
    out = Path(run.output)
    try:
        summary = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
        found = pq.read_table(out / SCORES_FILE, filters=[("household_id", "=", household_id)]).to_pylist()
        explained, base = _explanations(out / EXPLANATIONS_FILE, household_id,
                                        {m["risk"] for m in summary.get("models", [])})
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        log.warning("batch run %s: outputs unreadable (%s); the file keeps its history only", run.run_id,
                    type(exc).__name__)
        return None
    if not found:
        return None
    row = found[0]
    scores = []
    for m in summary.get("models", []):
        risk = m["risk"]
        e = explained.get(risk)
        scores.append({"risk": risk, "probability": row[f"{risk}__probability"], "band": row[f"{risk}__band"],
                       "flagged": bool(row[f"{risk}__flagged"]),
                       "model": {"name": m["name"], "version": row[f"{risk}__model_version"]},
                       "base_value": e["base_value"] if e else base.get(risk),
                       "reasons": json.loads(e["reasons"]) if e else []})
    latest = {"source": "nightly_batch", "request_id": None, "run_id": run.run_id,
              "created_at": run.created_at.isoformat(), "as_of": run.as_of, "town": row["town"]}
    answer: dict[str, Any] = {"latest": latest, "features": {}, "scores": scores, "lists": [], "eligibility": None,
                              "warm_list": []}
    try:
        tables = read_households(summary["data"], [household_id])
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        log.warning("batch run %s: raw tables unreadable (%s); the file shows the run's scores only", run.run_id,
                    type(exc).__name__)
        return answer
    feats = build_features(tables, run.as_of, advisor.policy)
    advice = advisor.advise(tables, feats, run.as_of, scores)
    answer |= {"features": {k: (None if math.isnan(v) else float(v)) for k, v in feats.iloc[0].items()},
               "lists": advice.lists, "eligibility": advice.eligibility, "warm_list": advice.warm_list}
    return answer
