"""Drift reports of a served model: the households the API scored in a window, or the latest nightly
batch, against the reference profile the model keeps from training (:mod:`models.drift`).

The API's window is read from the audit trail: every record keeps each household's full feature
vector and each risk's probability, so nothing is recomputed. Records scored by another version of
the model count for the features but not for the score (a score's scale is its model's). The nightly
batch counts its whole city into the same bins as it scores (``batch.run``) and writes the report
beside its scores (:data:`DRIFT_FILE`); asking for the batch reads that file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from domain.loader import LoadedModel
from models.drift import Profile, Thresholds, Window, nearest_reference
from store.audit import AuditStore
from store.history import latest_run

DRIFT_FILE = "drift.json"
# records read for one API window, newest first: each holds five risks' features and contributions
# (about 20 kB of JSON), and 10,000 households already put sampling noise under 0.001 PSI
MAX_WINDOW = 10_000


class NoReference(LookupError):
    """The model version was trained before models kept a drift reference."""


def reference_of(lm: LoadedModel, as_of: str | None = None) -> tuple[Profile, str | None]:
    """The reference a window of households scored as of ``as_of`` is compared with, and the date
    of the snapshot it was taken from: the model's reference of that calendar month (or the nearest
    month it has: :func:`models.drift.nearest_reference`), else its test period's (None: a model
    trained before it kept one per month)."""
    meta = lm.model.meta
    if meta.get("reference") is None:
        raise NoReference(f"{lm.name} version {lm.version} keeps no drift reference (trained before drift "
                          "monitoring); retrain it to monitor it")
    if as_of is not None and (seasonal := nearest_reference(meta.get("references") or [], as_of)) is not None:
        return Profile.from_dict(seasonal["profile"]), str(seasonal["as_of"])
    return Profile.from_dict(meta["reference"]), meta.get("test_as_of")


def _header(lm: LoadedModel, source: str, since: str | None, until: str | None, n: int,
            limited: bool, reference_as_of: str | None) -> dict[str, Any]:
    return {"risk": lm.risk, "model": {"name": lm.name, "version": lm.version}, "source": source,
            "window": {"since": since, "until": until, "n": n, "limited": limited},
            "reference": {"as_of": reference_as_of}}


def api_drift(audit: AuditStore, lm: LoadedModel, since: dt.datetime, until: dt.datetime | None,
              thresholds: Thresholds, limit: int = MAX_WINDOW) -> dict[str, Any]:
    """The households the API scored for ``lm``'s risk in [``since``, ``until``) against its reference
    of the calendar month most of them were scored as of."""
    window_rows = audit.scores_window(since, until, limit)
    months = Counter(as_of[:7] for as_of, _ in window_rows)
    reference, reference_as_of = reference_of(lm, f"{months.most_common(1)[0][0]}-01" if months else None)
    ids = list(reference.features)
    rows: list[list[float]] = []
    probabilities: list[float] = []
    texts = [text for _, text in window_rows]
    for text in texts:
        for entry in orjson.loads(text):
            if entry.get("risk") != lm.risk or "features" not in entry:
                continue
            values = entry["features"]
            rows.append([math.nan if values.get(f) is None else float(values[f]) for f in ids])
            if str(entry.get("model", {}).get("version")) == lm.version:
                probabilities.append(float(entry["probability"]))
            break
    window = Window(reference, ids).add(np.array(rows, dtype="float64").reshape(-1, len(ids)),
                                        np.array(probabilities, dtype="float64"))
    report = window.report(thresholds)
    return _header(lm, "api", since.isoformat(), until.isoformat() if until else None, report.n,
                   len(texts) >= limit, reference_as_of) | report.as_dict(thresholds)


def batch_window(lm: LoadedModel, feature_ids: list[str], as_of: str) -> tuple[Window, str | None] | None:
    """A window the nightly batch fills chunk by chunk, against the reference of ``as_of``'s month,
    and that reference's date (None: the model keeps no reference)."""
    try:
        reference, reference_as_of = reference_of(lm, as_of)
    except NoReference:
        return None
    return Window(reference, feature_ids), reference_as_of


def batch_report(windows: dict[str, tuple[LoadedModel, Window, str | None]], thresholds: Thresholds, as_of: str,
                 out_dir: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Writes the nightly batch's drift report, one entry per risk, into ``out_dir``; returns its path
    and, per risk, the brief the batch summary keeps (the score's PSI and status, the features at
    "act" and at "watch")."""
    reports = {risk: _header(lm, "nightly_batch", as_of, as_of, w.n, False, ref_as_of)
               | w.report(thresholds).as_dict(thresholds)
               for risk, (lm, w, ref_as_of) in windows.items()}
    path = Path(out_dir) / DRIFT_FILE
    path.write_text(json.dumps({"as_of": as_of, "risks": reports}, ensure_ascii=False, indent=1), encoding="utf-8")
    brief = {risk: {"score_psi": r["score_psi"], "status": r["score"]["status"],
                    "act": [f["feature"] for f in r["features"] if f["status"] == "act"],
                    "watch": [f["feature"] for f in r["features"] if f["status"] == "watch"]}
             for risk, r in reports.items()}
    return path, brief


def nightly_drift(audit: AuditStore, lm: LoadedModel) -> dict[str, Any] | None:
    """The latest recorded nightly batch's report for ``lm``'s risk (None: no run, or a run without
    a report for that risk or that model version)."""
    run = latest_run(audit.engine)
    if run is None:
        return None
    path = Path(run.output) / DRIFT_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    report = doc.get("risks", {}).get(lm.risk)
    if report is None:
        return None
    return report | {"run_id": run.run_id}


__all__ = ["DRIFT_FILE", "MAX_WINDOW", "NoReference", "api_drift", "batch_report", "batch_window",
           "nightly_drift", "reference_of"]
