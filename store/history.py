"""Nightly batch scores kept beside the audit trail, so a household's file shows its score history
across API requests and batches. One row per household per batch run, its scores as compact JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from store.schema import batch_runs, batch_scores


@dataclass(frozen=True)
class BatchRun:
    run_id: str
    created_at: dt.datetime
    as_of: str
    models: list[dict[str, str]]
    households: int
    flagged: int
    output: str


def record_run(engine: Engine, run: BatchRun, rows: Iterable[tuple[str, dict[str, Any]] |
                                                             tuple[str, dict[str, Any], str | None]],
               chunk: int = 20_000) -> None:
    """Stores the run and one row per household, ``rows`` = (household_id, {risk: [p, band, flagged]}[,
    town]); the town lets a key limited to towns see the household's file."""
    with engine.begin() as conn:
        conn.execute(insert(batch_runs).values(
            run_id=run.run_id, created_at=run.created_at, as_of=run.as_of, models=json.dumps(run.models),
            households=run.households, flagged=run.flagged, output=run.output))
        buf: list[dict[str, Any]] = []
        for hid, scores, *town in rows:
            buf.append({"run_id": run.run_id, "household_id": hid, "town": town[0] if town else None,
                        "scores": json.dumps(scores, separators=(",", ":"))})
            if len(buf) >= chunk:
                conn.execute(insert(batch_scores), buf)
                buf = []
        if buf:
            conn.execute(insert(batch_scores), buf)


def household_batches(engine: Engine, household_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The household's batch scores, newest run first, in the shape of the file's history entries."""
    stmt = (select(batch_runs.c.run_id, batch_runs.c.created_at, batch_runs.c.as_of, batch_runs.c.models,
                   batch_scores.c.scores)
            .join(batch_scores, batch_scores.c.run_id == batch_runs.c.run_id)
            .where(batch_scores.c.household_id == household_id)
            .order_by(batch_runs.c.created_at.desc()).limit(limit))
    out = []
    with engine.connect() as conn:
        for row in conn.execute(stmt).mappings():
            created = row["created_at"]
            if created.tzinfo is None:
                created = created.replace(tzinfo=dt.UTC)
            versions = {m["name"]: m["version"] for m in json.loads(row["models"])}
            out.append({"source": "nightly_batch", "id": row["run_id"], "created_at": created.isoformat(),
                        "as_of": row["as_of"],
                        "scores": [{"risk": risk, "probability": p, "band": band, "flagged": flagged,
                                    "model_version": versions.get(risk)}
                                   for risk, (p, band, flagged) in json.loads(row["scores"]).items()]})
    return out


def _to_run(row: Any) -> BatchRun:
    created = row["created_at"]
    return BatchRun(run_id=row["run_id"], created_at=created if created.tzinfo else created.replace(tzinfo=dt.UTC),
                    as_of=row["as_of"], models=json.loads(row["models"]), households=row["households"],
                    flagged=row["flagged"], output=row["output"])


def latest_run_of(engine: Engine, household_id: str) -> BatchRun | None:
    """The newest batch run that scored the household (its output folder holds its scores)."""
    stmt = (select(batch_runs).join(batch_scores, batch_scores.c.run_id == batch_runs.c.run_id)
            .where(batch_scores.c.household_id == household_id).order_by(batch_runs.c.created_at.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    return None if row is None else _to_run(row)


def latest_run(engine: Engine) -> BatchRun | None:
    """The newest nightly batch run recorded."""
    with engine.connect() as conn:
        row = conn.execute(select(batch_runs).order_by(batch_runs.c.created_at.desc()).limit(1)).mappings().first()
    return None if row is None else _to_run(row)
