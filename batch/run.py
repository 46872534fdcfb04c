"""The nightly batch: every household of the city scored by every served model, the flagged ones
explained, today's lists beside them, in Parquet; the batch kept beside the audit trail; and the
same scores and explanations on demand for a few households.

    relief-risk batch --data data/city --out out/2026-10-31

The city is read once (:class:`features.city.CityTables`) and scored chunk by chunk: memory is bounded
by the chunk, not the city. The models are the served ones (:func:`domain.loader.load_served`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import resource
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from batch.list_changes import (
    AUTO,
    LIST_CHANGES_FILE,
    change_counts,
    list_changes,
    memberships,
    resolve_previous,
    write_list_changes,
)
from domain.drift import batch_report, batch_window
from domain.nightly_file import EXPLANATIONS_FILE, SCORES_FILE, SUMMARY_FILE
from features.build import as_timestamp, build_features, household_cities
from features.city import CityTables
from features.io import read_households
from features.policy import PolicyBook
from features.tables import Tables
from models.drift import Thresholds

if TYPE_CHECKING:
    from domain.loader import LoadedModel
    from models.risk_model import RiskModel

log = logging.getLogger(__name__)

EXPLAIN_MODES = ("flagged", "all", "none")
# the output files' names: the household file (domain.nightly_file) reads them back
CONTRIB_PREFIX = "contrib__"


@dataclass
class BatchSummary:
    """What a batch run did; ``summary.json`` holds the same (without ``out_dir`` as a Path)."""

    out_dir: Path
    as_of: str
    models: list[dict[str, str]]
    households: int
    flagged: dict[str, int]
    flagged_any: int
    explained: dict[str, int]
    lists: dict[str, int]
    chunk: int
    chunks: int
    explain: str
    seconds: dict[str, float]
    peak_rss_mb: float
    rows: dict[str, int] = field(default_factory=dict)
    dropped_rows: dict[str, int] = field(default_factory=dict)
    run_id: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    data: str | None = None  # the raw-table folder scored (None: tables handed in): the household file reads it
    # the run the lists were compared with (batch.list_changes), None on a first run or with --previous none
    previous: dict[str, str] | None = None
    list_changes: dict[str, dict[str, int]] | None = None  # per list {"entered": n, "left": n}; None: no previous
    # per risk the drift against the model's training reference ({"score_psi", "status", "act", "watch"},
    # drift.json has the whole report); None: no model kept a reference
    drift: dict[str, dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir)}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now


def _scores_schema(risks: Sequence[str], versions: Sequence[str]) -> pa.Schema:
    fields = [pa.field("household_id", pa.string()), pa.field("town", pa.string()), pa.field("as_of", pa.date32())]
    for risk in risks:
        fields += [pa.field(f"{risk}__probability", pa.float64()), pa.field(f"{risk}__raw_score", pa.float64()),
                   pa.field(f"{risk}__band", pa.string()), pa.field(f"{risk}__flagged", pa.bool_()),
                   pa.field(f"{risk}__model_version", pa.string())]
    fields += [pa.field("flagged_any", pa.bool_()), pa.field("lists", pa.list_(pa.string()))]
    return pa.schema(fields, metadata={"risks": json.dumps(list(risks)), "versions": json.dumps(list(versions))})


def _explanations_schema(feature_ids: Sequence[str]) -> pa.Schema:
    return pa.schema([pa.field("household_id", pa.string()), pa.field("town", pa.string()),
                      pa.field("risk", pa.string()), pa.field("model_version", pa.string()),
                      pa.field("probability", pa.float64()), pa.field("flagged", pa.bool_()),
                      pa.field("raw_score", pa.float64()), pa.field("base_value", pa.float64()),
                      *(pa.field(CONTRIB_PREFIX + f, pa.float64()) for f in feature_ids),
                      pa.field("reasons", pa.string())])


def _list_column(matrix: pd.DataFrame | None, n: int) -> pa.Array:
    """Per household, the ids of the lists it is on (book order), without a Python loop per row."""
    if matrix is None or matrix.shape[1] == 0:
        return pa.array([[]] * n, type=pa.list_(pa.string()))
    on = matrix.to_numpy(dtype=bool)
    rows, cols = np.nonzero(on)  # row-major: each household's lists together, in column order
    offsets = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n)))).astype(np.int32)
    ids = pa.array(np.asarray(matrix.columns, dtype=object)[cols], type=pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), ids)


def _explain(model: RiskModel, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Exact contributions of the rows of ``x`` (``models.explain.contributions``: base value last)
    and their top reasons in Chinese (``models.explain.top_reasons``) as JSON text."""
    from models.explain import Explanation, top_reasons

    if not len(x):
        return np.zeros((0, x.shape[1] + 1)), []
    contrib = model.contributions(x)
    ids = model.schema.ids
    reasons = []
    for values, row in zip(x, contrib, strict=True):
        e = Explanation(base_value=float(row[-1]), raw_score=float(row.sum()),
                        contributions=dict(zip(ids, row[:-1].tolist(), strict=True)))
        reasons.append(json.dumps(top_reasons(e, model.schema, values), ensure_ascii=False, allow_nan=False))
    return contrib, reasons


def _chunk_bounds(n: int, chunk: int | None) -> list[tuple[int, int]]:
    size = n if not chunk or chunk <= 0 else int(chunk)
    return [(lo, min(lo + size, n)) for lo in range(0, n, max(size, 1))] or [(0, 0)]


def run_batch(data: str | Path | CityTables | Tables, out_dir: str | Path, models: Sequence[LoadedModel],
              policy: PolicyBook, as_of: dt.date | str | None = None, chunk: int | None = 50_000,
              explain: str = "flagged", record_url: str | None = None, progress: bool = True,
              lists: Any = None, source: str | Path | None = None, previous: str | Path | None = AUTO,
              monitoring: Thresholds | None = None) -> BatchSummary:
    """Scores every household of ``data`` (a folder of raw tables, or tables already read) with
    every model, chunk by chunk, and writes into ``out_dir``:

    - ``scores.parquet``: one row per household: ``household_id``, ``town``, ``as_of``; per risk
      ``{risk}__probability`` (calibrated), ``__raw_score`` (log-odds), ``__band``, ``__flagged`` and
      ``__model_version``; ``flagged_any``; ``lists`` (ids of today's lists the household is on);
    - ``explanations.parquet``: one row per household and risk explained (``explain``: "flagged",
      each model's flagged households; "all"; "none"): ``base_value``, ``contrib__{feature}`` for
      every feature (log-odds; NaN for a feature the model does not use; ``base_value`` plus the
      sum is ``raw_score``), ``reasons`` (the top reasons in Chinese, JSON text);
    - ``list_changes.parquet``: who entered and who left each list since the previous run
      (:mod:`batch.list_changes`): ``household_id``, ``town``, ``list``, ``label``, ``change``
      (entered / left), ``change_zh`` (新进入 / 退出); not written when there is no previous run;
    - ``summary.json``: :class:`BatchSummary`.

    ``as_of`` None: the last day of the data's latest income month. ``chunk`` None or 0: the whole
    city at once. ``lists``: a :class:`policy.lists.ListBook` (None: the packaged definitions).
    ``record_url``: also store the run and every household's scores beside the audit trail
    (:func:`store.history.record_run`), so each household's file shows its batch history.
    ``monitoring``: the drift thresholds (None: the packaged policy file's ``[monitoring]``); each
    model that keeps a drift reference gets its report in ``drift.json`` (:mod:`domain.drift`).
    ``source``: the raw-table folder ``data`` was read from, when it is tables already read (the
    summary names it, and the household file reads a household's raw rows there).
    ``previous``: the run to compare the lists with: "auto" (the run before ``as_of`` among
    ``out_dir`` and its sibling folders), "none" or None (no comparison), or a run's folder.
    """
    from tqdm.auto import tqdm

    from policy.lists import list_matrix, load_lists

    if explain not in EXPLAIN_MODES:
        raise ValueError(f"explain must be one of {EXPLAIN_MODES}, got {explain!r}")
    if not models:
        raise ValueError("no models to score with")
    start = time.perf_counter()
    clock = _Clock()
    t = time.perf_counter()
    if isinstance(data, CityTables):
        city = data
    elif isinstance(data, Tables):
        city = CityTables.from_tables(data)
        t = clock.add("prepare", t)
    else:
        city = CityTables.read(data, policy=policy)
        t = time.perf_counter()
    clock.seconds["read"] = city.read_seconds  # also when the caller read the files (the worklist does)
    day = as_timestamp(as_of).date() if as_of is not None else city.last_income_day()
    book = lists if lists is not None else load_lists()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    before = resolve_previous(previous, out, day)  # read now: tonight's files may overwrite it
    (out / LIST_CHANGES_FILE).unlink(missing_ok=True)  # a stale file of an earlier run in this folder
    risks = [m.risk for m in models]
    if len(set(risks)) != len(risks):
        raise ValueError(f"two models for one risk: {risks}")
    versions = [m.version for m in models]
    feature_ids = list(dict.fromkeys(f for m in models for f in m.model.schema.ids))
    scores_writer = pq.ParquetWriter(out / SCORES_FILE, _scores_schema(risks, versions), compression="zstd")
    explain_schema = _explanations_schema(feature_ids)
    explain_writer = pq.ParquetWriter(out / EXPLANATIONS_FILE, explain_schema, compression="zstd")
    flagged = dict.fromkeys(risks, 0)
    explained = dict.fromkeys(risks, 0)
    list_counts: dict[str, int] = {}
    flagged_any = 0
    windows = {m.risk: (m, *w) for m in models
               if (w := batch_window(m, list(m.model.schema.ids), day.isoformat())) is not None}
    bounds = _chunk_bounds(city.n, chunk)
    towns = city.household_column("town")
    bar = tqdm(total=city.n, unit="户", unit_scale=True, desc=f"batch {day.isoformat()}", disable=not progress)
    t = clock.add("setup", t)
    try:
        for lo, hi in bounds:
            tables = city.slice(lo, hi)
            features = build_features(tables, day, policy)
            t = clock.add("features", t)
            ids = pa.array(city.household_ids[lo:hi], type=pa.string())
            town = pa.array(towns[lo:hi], type=pa.string(), from_pandas=True)
            columns: dict[str, Any] = {"household_id": ids, "town": town,
                                       "as_of": pa.array(np.full(hi - lo, np.datetime64(day, "D")), pa.date32())}
            any_flag = np.zeros(hi - lo, dtype=bool)
            explained_batches = []
            for served, risk in zip(models, risks, strict=True):
                model, version = served.model, served.version
                frame = model.predict_frame(features)
                t = clock.add("scores", t)
                flags = frame["flagged"].to_numpy(dtype=bool)
                any_flag |= flags
                flagged[risk] += int(flags.sum())
                p = frame["probability"].to_numpy()
                if risk in windows:
                    windows[risk][1].add(model.matrix(features), p)
                columns |= {f"{risk}__probability": p, f"{risk}__raw_score": frame["raw_score"].to_numpy(),
                            f"{risk}__band": pa.array(frame["band"].to_numpy(dtype=object), pa.string()),
                            f"{risk}__flagged": flags, f"{risk}__model_version": pa.array([version] * (hi - lo))}
                if explain != "none":
                    rows = np.flatnonzero(flags) if explain == "flagged" else np.arange(hi - lo)
                    contrib, reasons = _explain(model, model.matrix(features.iloc[rows]))
                    explained[risk] += len(rows)
                    full = np.full((len(rows), len(feature_ids)), np.nan)
                    where = [feature_ids.index(f) for f in model.schema.ids]
                    full[:, where] = contrib[:, :-1]
                    explained_batches.append(pa.record_batch({
                        "household_id": ids.take(pa.array(rows)), "town": town.take(pa.array(rows)),
                        "risk": pa.array([risk] * len(rows), pa.string()),
                        "model_version": pa.array([version] * len(rows), pa.string()),
                        "probability": p[rows], "flagged": flags[rows],
                        "raw_score": frame["raw_score"].to_numpy()[rows],
                        "base_value": contrib[:, -1],
                        **{CONTRIB_PREFIX + f: full[:, j] for j, f in enumerate(feature_ids)},
                        "reasons": pa.array(reasons, pa.string())}, schema=explain_schema))
                    t = clock.add("explain", t)
            matrix = list_matrix(features, day, policy, book, household_cities(tables, policy))
            for list_id, n_on in matrix.sum(axis=0).items():
                list_counts[list_id] = list_counts.get(list_id, 0) + int(n_on)
            columns |= {"flagged_any": any_flag, "lists": _list_column(matrix, hi - lo)}
            flagged_any += int(any_flag.sum())
            t = clock.add("lists", t)
            scores_writer.write_batch(pa.record_batch(columns, schema=scores_writer.schema))
            for batch in explained_batches:
                explain_writer.write_batch(batch)
            t = clock.add("write", t)
            bar.update(hi - lo)
    finally:
        bar.close()
        scores_writer.close()
        explain_writer.close()
    drift, drift_brief = batch_report(windows, monitoring or Thresholds.load(), day.isoformat(), out) \
        if windows else (None, None)
    t = clock.add("write", t)
    files = {"scores": str(out / SCORES_FILE), "explanations": str(out / EXPLANATIONS_FILE)}
    changes = None
    if before is not None:
        order = [d.id for d in book.at(day)]
        labels = {d.id: d.label_zh for d in book.definitions}  # a withdrawn list keeps its name
        found = list_changes(before.members, memberships(out), order, labels)
        write_list_changes(found, out / LIST_CHANGES_FILE)
        changes = change_counts(found, order)
        files["list_changes"] = str(out / LIST_CHANGES_FILE)
        t = clock.add("list_changes", t)
    summary = BatchSummary(
        out_dir=out, as_of=day.isoformat(),
        models=[{"name": m.name, "version": m.version, "risk": m.risk} for m in models],
        households=city.n, flagged=flagged, flagged_any=flagged_any, explained=explained, lists=list_counts,
        chunk=bounds[0][1] - bounds[0][0], chunks=len(bounds) if city.n else 0, explain=explain, seconds={},
        peak_rss_mb=0.0, rows=city.rows(), dropped_rows=city.dropped,
        files={**files, "summary": str(out / SUMMARY_FILE), **({"drift": str(drift)} if drift else {})},
        previous={"out_dir": str(before.out_dir), "as_of": before.as_of} if before is not None else None,
        list_changes=changes, drift=drift_brief,
        data=str(Path(source if source is not None else data).resolve())
        if isinstance(source if source is not None else data, str | Path) else None)
    if record_url:
        summary.run_id = record_batch(record_url, summary)
        t = clock.add("record", t)
    summary.seconds = {k: round(v, 3) for k, v in clock.seconds.items()} | {
        "total": round(time.perf_counter() - start, 3)}
    summary.peak_rss_mb = round(peak_rss_mb(), 1)
    (out / SUMMARY_FILE).write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    log.info("batch %s: %d households, flagged %s, %.1fs, peak RSS %.0f MiB", summary.as_of, summary.households,
             flagged, summary.seconds["total"], summary.peak_rss_mb)
    return summary


# ---- the batch beside the audit trail ------------------------------------------------------------
def record_batch(url: str, summary: BatchSummary, batch_rows: int = 50_000) -> str:
    """Stores the run and every household's scores (:func:`store.history.record_run`), reading
    ``scores.parquet`` back batch by batch; returns the run id."""
    from store.audit import AuditStore
    from store.history import BatchRun, record_run

    risks = [m["risk"] for m in summary.models]
    store = AuditStore(url)
    try:
        store.create()  # store.history's tables are on the same metadata: created here too
        run = BatchRun(run_id=uuid.uuid4().hex, created_at=dt.datetime.now(dt.UTC), as_of=summary.as_of,
                       models=[{"name": m["name"], "version": m["version"]} for m in summary.models],
                       households=summary.households, flagged=summary.flagged_any, output=str(summary.out_dir))
        record_run(store.engine, run, _history_rows(Path(summary.files["scores"]), risks, batch_rows))
    finally:
        store.dispose()
    return run.run_id


def _history_rows(path: Path, risks: Sequence[str], batch_rows: int
                  ) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    columns = ["household_id", "town"] + [f"{r}__{c}" for r in risks for c in ("probability", "band", "flagged")]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        cols = batch.to_pydict()
        per_risk = [(r, cols[f"{r}__probability"], cols[f"{r}__band"], cols[f"{r}__flagged"]) for r in risks]
        for i, (hid, town) in enumerate(zip(cols["household_id"], cols["town"], strict=True)):
            yield hid, {r: [p[i], b[i], f[i]] for r, p, b, f in per_risk}, town


# ---- on demand ------------------------------------------------------------------------------------
def explain_households(data: str | Path | Tables | CityTables, household_ids: Iterable[str],
                       models: Sequence[LoadedModel], policy: PolicyBook, as_of: dt.date | str) -> pd.DataFrame:
    """Scores and exact explanations of the given households under every model, on demand
    (flagged or not): one row per household and risk, the columns of ``explanations.parquet`` plus
    ``band``, with ``reasons`` as a list of dicts (the API's reasons) rather than JSON text."""
    ids = list(dict.fromkeys(household_ids))
    if isinstance(data, CityTables):
        tables = data.take(data.codes_of(ids))
    elif isinstance(data, Tables):
        city = CityTables.from_tables(data)
        tables = city.take(city.codes_of(ids))
    else:
        tables = read_households(data, ids)
    day = as_timestamp(as_of).date()
    features = build_features(tables, day, policy)
    rows = []
    for served in models:
        model, version = served.model, served.version
        frame = model.predict_frame(features)
        contrib, reasons = _explain(model, model.matrix(features))
        for i, hid in enumerate(features.index):
            rows.append({"household_id": hid, "risk": model.risk, "model_version": version,
                         "probability": float(frame["probability"].iloc[i]), "band": str(frame["band"].iloc[i]),
                         "flagged": bool(frame["flagged"].iloc[i]), "raw_score": float(frame["raw_score"].iloc[i]),
                         "base_value": float(contrib[i, -1]),
                         **{CONTRIB_PREFIX + f: float(contrib[i, j]) for j, f in enumerate(model.schema.ids)},
                         "reasons": json.loads(reasons[i])})
    return pd.DataFrame(rows)
