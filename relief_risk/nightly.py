"""The nightly batch: every household of the city scored by every served model, the flagged ones
explained, today's lists beside them; and the worklist (走访清单) caseworkers take out next morning.

    relief-risk batch --data data/city --out out/2026-10-31
    relief-risk worklist --data data/city --out out/2026-10-31 --capacity 0.02

The city is read once (:class:`features.city.CityTables`) and scored chunk by chunk: memory is bounded
by the chunk, not the city.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import resource
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.build import as_timestamp, build_features
from features.city import CityTables
from features.contract import TABLE_COLUMNS
from features.io import load_policy_book, read_tables
from features.policy import PolicyBook
from features.tables import Tables, make_tables

if TYPE_CHECKING:
    from domain.advice import Advisor
    from models.risk_model import RiskModel

log = logging.getLogger(__name__)

EXPLAIN_MODES = ("flagged", "all", "none")
RISK_LABELS = {
    "illness_poverty": "因病致贫", "disability_poverty": "因残致贫", "unemployment_poverty": "因失业致贫",
    "elderly_care_need": "老年照护需求", "child_in_difficulty": "困境儿童",
}
NOTE = "评分仅用于辅助确定走访对象，不作为拒绝救助的依据。"
SCORES_FILE, EXPLANATIONS_FILE, SUMMARY_FILE = "scores.parquet", "explanations.parquet", "summary.json"
CONTRIB_PREFIX = "contrib__"

ServedModel = tuple[str, str, "RiskModel"]  # (registered name, version, model)


# ==== the models ==================================================================================
def load_served_models(risks: Sequence[str] | None = None, alias: str = "champion"
                       ) -> tuple[list[ServedModel], list[str]]:
    """Every risk's model registered under ``alias`` (``models:/{risk}@{alias}``), as the service
    loads them, and the risks that have none (logged, not an error: a risk not yet trained is not
    scored). ``risks`` None: the five risks of the contract."""
    from mlflow.tracking import MlflowClient

    from models.pyfunc import load_risk_model

    client = MlflowClient()
    loaded: list[ServedModel] = []
    missing: list[str] = []
    for risk in risks or RISK_LABELS:
        try:
            version = client.get_model_version_by_alias(risk, alias)
        except Exception:  # MLflow raises its own error types for "no such model" and "no such alias"
            log.warning("no %s@%s registered: not scored", risk, alias)
            missing.append(risk)
            continue
        model, _ = load_risk_model(f"models:/{risk}@{alias}")
        loaded.append((risk, str(version.version), model))
    return loaded, missing


# ==== the batch ===================================================================================
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


def run_batch(data: str | Path | CityTables | Tables, out_dir: str | Path, models: Sequence[ServedModel],
              policy: PolicyBook, as_of: dt.date | str | None = None, chunk: int | None = 50_000,
              explain: str = "flagged", record_url: str | None = None, progress: bool = True,
              lists: Any = None) -> BatchSummary:
    """Scores every household of ``data`` (a folder of raw tables, or tables already read) with
    every model, chunk by chunk, and writes into ``out_dir``:

    - ``scores.parquet``: one row per household: ``household_id``, ``town``, ``as_of``; per risk
      ``{risk}__probability`` (calibrated), ``__raw_score`` (log-odds), ``__band``, ``__flagged`` and
      ``__model_version``; ``flagged_any``; ``lists`` (ids of today's lists the household is on);
    - ``explanations.parquet``: one row per household and risk explained (``explain``: "flagged",
      each model's flagged households; "all"; "none"): ``base_value``, ``contrib__{feature}`` for
      every feature (log-odds; NaN for a feature the model does not use; ``base_value`` plus the
      sum is ``raw_score``), ``reasons`` (the top reasons in Chinese, JSON text);
    - ``summary.json``: :class:`BatchSummary`.

    ``as_of`` None: the last day of the data's latest income month. ``chunk`` None or 0: the whole
    city at once. ``lists``: a :class:`policy.lists.ListBook` (None: the packaged definitions).
    ``record_url``: also store the run and every household's scores beside the audit trail
    (:func:`store.history.record_run`), so each household's file shows its batch history.
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
    risks = [m.risk for _, _, m in models]
    if len(set(risks)) != len(risks):
        raise ValueError(f"two models for one risk: {risks}")
    versions = [v for _, v, _ in models]
    feature_ids = list(dict.fromkeys(f for _, _, m in models for f in m.schema.ids))
    scores_writer = pq.ParquetWriter(out / SCORES_FILE, _scores_schema(risks, versions), compression="zstd")
    explain_schema = _explanations_schema(feature_ids)
    explain_writer = pq.ParquetWriter(out / EXPLANATIONS_FILE, explain_schema, compression="zstd")
    flagged = dict.fromkeys(risks, 0)
    explained = dict.fromkeys(risks, 0)
    list_counts: dict[str, int] = {}
    flagged_any = 0
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
            for (_, version, model), risk in zip(models, risks, strict=True):
                frame = model.predict_frame(features)
                t = clock.add("scores", t)
                flags = frame["flagged"].to_numpy(dtype=bool)
                any_flag |= flags
                flagged[risk] += int(flags.sum())
                p = frame["probability"].to_numpy()
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
                        "probability": p[rows], "flagged": flags[rows], "raw_score": frame["raw_score"].to_numpy()[rows],
                        "base_value": contrib[:, -1],
                        **{CONTRIB_PREFIX + f: full[:, j] for j, f in enumerate(feature_ids)},
                        "reasons": pa.array(reasons, pa.string())}, schema=explain_schema))
                    t = clock.add("explain", t)
            matrix = list_matrix(features, day, policy, book)
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
    t = clock.add("write", t)
    summary = BatchSummary(
        out_dir=out, as_of=day.isoformat(), models=[{"name": n, "version": v, "risk": m.risk} for n, v, m in models],
        households=city.n, flagged=flagged, flagged_any=flagged_any, explained=explained, lists=list_counts,
        chunk=bounds[0][1] - bounds[0][0], chunks=len(bounds) if city.n else 0, explain=explain, seconds={},
        peak_rss_mb=0.0, rows=city.rows(), dropped_rows=city.dropped,
        files={"scores": str(out / SCORES_FILE), "explanations": str(out / EXPLANATIONS_FILE),
               "summary": str(out / SUMMARY_FILE)})
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


def _history_rows(path: Path, risks: Sequence[str], batch_rows: int) -> Iterator[tuple[str, dict[str, Any]]]:
    columns = ["household_id"] + [f"{r}__{c}" for r in risks for c in ("probability", "band", "flagged")]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        cols = batch.to_pydict()
        per_risk = [(r, cols[f"{r}__probability"], cols[f"{r}__band"], cols[f"{r}__flagged"]) for r in risks]
        for i, hid in enumerate(cols["household_id"]):
            yield hid, {r: [p[i], b[i], f[i]] for r, p, b, f in per_risk}


# ---- on demand ------------------------------------------------------------------------------------
def read_households(directory: str | Path, household_ids: Iterable[str]) -> Tables:
    """The raw rows of just these households from the folder's parquet files (arrow filters, not a
    whole-city read), normalised as :func:`features.io.read_tables` normalises them."""
    ids = sorted(set(household_ids))
    base = Path(directory)
    if not all((base / f"{n}.parquet").exists() for n in TABLE_COLUMNS if n != "verifications"):
        city = CityTables.from_tables(read_tables(directory, check=False))
        return city.take(city.codes_of(ids))

    def rows_of(name: str, key: str, values: list[str]) -> pd.DataFrame:
        if not values:
            return pd.DataFrame({c: [] for c in TABLE_COLUMNS[name]})
        return pq.read_table(base / f"{name}.parquet", columns=list(TABLE_COLUMNS[name]),
                             filters=[(key, "in", values)]).to_pandas()

    frames = {name: rows_of(name, "household_id", ids) for name in ("households", "persons", "assistance")}
    missing = sorted(set(ids) - set(frames["households"]["household_id"].astype(str)))
    if missing:
        raise KeyError(f"unknown household {missing[0]!r}")
    persons = sorted(set(frames["persons"]["person_id"].astype(str)))
    frames |= {name: rows_of(name, "person_id", persons) for name in ("income", "claims")}
    return make_tables(**frames)


def explain_households(data: str | Path | Tables | CityTables, household_ids: Iterable[str],
                       models: Sequence[ServedModel], policy: PolicyBook, as_of: dt.date | str) -> pd.DataFrame:
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
    for _, version, model in models:
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


# ==== the worklist ================================================================================
# Chinese headers and Excel column widths (characters)
WORKLIST_COLUMNS: dict[str, float] = {
    "排名": 6, "户编号": 14, "镇（街道）": 14, "风险类型": 16, "风险概率": 20, "最高风险概率": 12,
    "主要原因": 56, "所属重点人群清单": 26, "可能符合的救助项目": 28, "暖心清单措施（提出依据）": 60,
}
WRAPPED = frozenset({"风险类型", "风险概率", "主要原因", "所属重点人群清单", "可能符合的救助项目",
                     "暖心清单措施（提出依据）"})
TRIGGERS_ZH = {"list": "名单", "program": "救助项目", "risk": "风险", "reason": "原因"}
# the town codes' Chinese names, as serving/ui/labels.py has them (importing that package would
# import the whole web UI); a code not here is shown as the code
TOWN_NAMES = {
    "yangshe": "杨舍", "tangqiao": "塘桥", "jingang": "金港", "jinfeng": "锦丰", "leyu": "乐余",
    "fenghuang": "凤凰", "nanfeng": "南丰", "daxin": "大新", "changyinsha": "常阴沙",
}
SUMMARY_SHEET = "汇总"


@dataclass
class WorklistFiles:
    csv: dict[str, Path]     # per town code
    excel: Path
    listed: dict[str, int]   # households listed per town


def town_capacity(capacity: float | int, households: int) -> int:
    """Households a town's caseworkers can visit: a share (a float below 1, e.g. 0.02 of the
    town's households, rounded up) or an absolute number (a whole number ≥ 1)."""
    if isinstance(capacity, bool) or not capacity > 0:
        raise ValueError(f"capacity must be a share in (0, 1) or a whole number ≥ 1, got {capacity!r}")
    if isinstance(capacity, float) and capacity < 1:
        return math.ceil(capacity * households - 1e-9)
    if float(capacity) != int(capacity):
        raise ValueError(f"an absolute capacity is a whole number of households, got {capacity!r}")
    return int(capacity)


def _load_batch(batch: BatchSummary | str | Path) -> tuple[Path, dict[str, Any]]:
    out = batch.out_dir if isinstance(batch, BatchSummary) else Path(batch)
    return out, json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))


def _ranked(scores: pd.DataFrame, risks: Sequence[str]) -> pd.DataFrame:
    """Households flagged for any risk, highest flagged probability first (ties: household id)."""
    flags = scores[[f"{r}__flagged" for r in risks]].to_numpy(dtype=bool)
    probability = scores[[f"{r}__probability" for r in risks]].to_numpy(dtype=float)
    top = np.where(flags, probability, -np.inf).max(axis=1)
    out = scores.assign(top_probability=top).loc[flags.any(axis=1)]
    return out.sort_values(["top_probability", "household_id"], ascending=[False, True], kind="stable")


def _proposed_by(triggers: Sequence[Mapping[str, str]]) -> str:
    """``名单：大病重病、刚性支出过大；风险：因病致贫``: what proposed a measure, by kind."""
    by_kind: dict[str, list[str]] = {}
    for t in triggers:
        by_kind.setdefault(t["kind"], []).append(t["label"])
    return "；".join(f"{TRIGGERS_ZH.get(kind, kind)}：{'、'.join(labels)}" for kind, labels in by_kind.items())


def _worklist_row(rank: int, row: Any, town_name: str, risks: Sequence[str], reasons: Mapping[tuple[str, str], list],
                  advice: Any) -> dict[str, Any]:
    flagged = [r for r in risks if getattr(row, f"{r}__flagged")]
    why = []
    for r in flagged:
        items = reasons.get((row.household_id, r), [])
        why.append(f"【{RISK_LABELS.get(r, r)}】" + "；".join(i["display"] for i in items))
    warm = [f"{m['label']}（{_proposed_by(m['proposed_by'])}）" for m in advice.warm_list]
    return {
        "排名": rank, "户编号": row.household_id, "镇（街道）": town_name,
        "风险类型": "、".join(RISK_LABELS.get(r, r) for r in flagged),
        "风险概率": "\n".join(f"{RISK_LABELS.get(r, r)} {getattr(row, f'{r}__probability'):.3f}" for r in flagged),
        "最高风险概率": round(float(row.top_probability), 4),
        "主要原因": "\n".join(why),
        "所属重点人群清单": "、".join(item["label"] for item in advice.lists),
        "可能符合的救助项目": "、".join(p["label"] for p in advice.eligibility["programs"] if p["eligible"]),
        "暖心清单措施（提出依据）": "\n".join(warm),
    }


def write_worklist(batch: BatchSummary | str | Path, tables: CityTables | Tables | str | Path, out_dir: str | Path,
                   capacity_per_town: float | int, advisor: Advisor, *, progress: bool = True) -> WorklistFiles:
    """Tomorrow's visits: per town, the households flagged for any risk, highest flagged probability
    first, as many as the town's capacity (:func:`town_capacity`; fewer when fewer are flagged);
    each once, with all its flagged risks, their probabilities, top reasons, today's lists, the
    programmes the policy calculator finds it likely eligible for and the warm list (measures and
    the rule that proposed each), from :meth:`domain.advice.Advisor.advise` on the household's own
    rows. Writes ``worklist_<town>.csv`` (UTF-8 with BOM, so Excel reads the Chinese) per town and
    ``worklist.xlsx`` (a sheet per town and a 汇总 summary sheet) into ``out_dir``.

    ``batch``: a :class:`BatchSummary` or the folder :func:`run_batch` wrote; ``tables``: the same
    data the batch scored (a :class:`CityTables` avoids reading it again).
    """
    from tqdm.auto import tqdm

    batch_dir, summary = _load_batch(batch)
    as_of = summary["as_of"]
    models = summary["models"]
    risks = [m["risk"] for m in models]
    city = tables if isinstance(tables, CityTables) else (
        CityTables.from_tables(tables) if isinstance(tables, Tables) else CityTables.read(tables, check=False))
    scores = pq.read_table(batch_dir / SCORES_FILE, columns=[
        "household_id", "town", *(f"{r}__{c}" for r in risks for c in ("probability", "band", "flagged"))]).to_pandas()
    explanations = pq.read_table(batch_dir / EXPLANATIONS_FILE, columns=["household_id", "risk", "base_value", "reasons"],
                                 filters=[("flagged", "==", True)]).to_pandas()
    reasons = {(h, r): json.loads(text) for h, r, text in zip(explanations["household_id"], explanations["risk"],
                                                               explanations["reasons"], strict=True)}
    base_values = dict(zip(zip(explanations["household_id"], explanations["risk"], strict=True),
                           explanations["base_value"], strict=True))
    known_towns = list(advisor.policy.at(pd.Timestamp(as_of).date()).towns)
    towns = known_towns + sorted(set(scores["town"].dropna()) - set(known_towns))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sheets: dict[str, pd.DataFrame] = {}
    overview = []
    files: dict[str, Path] = {}
    for town in tqdm(towns, desc="worklist", unit="镇", disable=not progress):
        in_town = scores.loc[scores["town"] == town]
        capacity = town_capacity(capacity_per_town, len(in_town))
        ranked = _ranked(in_town, risks)
        chosen = ranked.head(capacity)
        rows = []
        if len(chosen):
            codes = city.codes_of(chosen["household_id"])
            features = build_features(city.take(codes), as_of, advisor.policy)  # rows in code order
            position = {code: i for i, code in enumerate(np.sort(codes).tolist())}
            own_tables = dict(city.each(codes))
            for rank, (row, code) in enumerate(zip(chosen.itertuples(index=False), codes.tolist(), strict=True),
                                               start=1):
                public = [{"risk": r, "probability": float(getattr(row, f"{r}__probability")),
                           "band": getattr(row, f"{r}__band"), "flagged": bool(getattr(row, f"{r}__flagged")),
                           "model": {"name": m["name"], "version": m["version"]},
                           "base_value": base_values.get((row.household_id, r)),
                           "reasons": reasons.get((row.household_id, r), [])} for r, m in zip(risks, models, strict=True)]
                i = position[code]
                advice = advisor.advise(own_tables.pop(code), features.iloc[i:i + 1], as_of, public)
                rows.append(_worklist_row(rank, row, TOWN_NAMES.get(town, town), risks, reasons, advice))
        frame = pd.DataFrame(rows, columns=list(WORKLIST_COLUMNS))
        files[town] = out / f"worklist_{town}.csv"
        frame.to_csv(files[town], index=False, encoding="utf-8-sig")
        sheets[town] = frame
        overview.append({"镇（街道）": f"{TOWN_NAMES.get(town, town)} {town}", "户数": len(in_town),
                         "模型标记户数（任一风险）": len(ranked),
                         **{f"{RISK_LABELS.get(r, r)}标记户数": int(in_town[f"{r}__flagged"].sum()) for r in risks},
                         "走访容量": capacity, "清单户数": len(frame)})
    excel = out / "worklist.xlsx"
    _write_workbook(excel, sheets, pd.DataFrame(overview), as_of, models, TOWN_NAMES)
    log.info("worklist %s: %d households in %d towns", as_of, sum(len(f) for f in sheets.values()), len(sheets))
    return WorklistFiles(csv=files, excel=excel, listed={t: len(f) for t, f in sheets.items()})


def _sheet_name(town: str, names: Mapping[str, str], taken: set[str]) -> str:
    base = "".join(ch for ch in f"{names.get(town, town)} {town}" if ch not in "[]:*?/\\")[:31] or "town"
    name, k = base, 2
    while name in taken or name == SUMMARY_SHEET:
        suffix = f" {k}"
        name, k = base[:31 - len(suffix)] + suffix, k + 1
    taken.add(name)
    return name


def _write_workbook(path: Path, sheets: Mapping[str, pd.DataFrame], overview: pd.DataFrame, as_of: str,
                    models: Sequence[Mapping[str, str]], names: Mapping[str, str]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    wrap, top = Alignment(wrap_text=True, vertical="top"), Alignment(vertical="top")
    note_font = Font(bold=True, color="C00000")

    def table(ws: Any, frame: pd.DataFrame, widths: Mapping[str, float], first_row: int) -> None:
        for j, column in enumerate(frame.columns, start=1):
            cell = ws.cell(row=first_row, column=j, value=column)
            cell.font, cell.fill, cell.alignment = bold, fill, wrap
            ws.column_dimensions[get_column_letter(j)].width = widths.get(column, max(10, 2 * len(column) + 2))
        for i, values in enumerate(frame.itertuples(index=False), start=first_row + 1):
            for j, (column, value) in enumerate(zip(frame.columns, values, strict=True), start=1):
                cell = ws.cell(row=i, column=j, value=value)
                cell.alignment = wrap if column in WRAPPED else top
        ws.freeze_panes = ws.cell(row=first_row + 1, column=1)

    wb = Workbook()
    ws = wb.active
    ws.title = SUMMARY_SHEET
    ws.cell(row=1, column=1, value=NOTE).font = note_font
    ws.cell(row=2, column=1, value=f"评分日期：{as_of}；模型：" + "、".join(
        f"{RISK_LABELS.get(m['risk'], m['risk'])} v{m['version']}" for m in models)
        + f"；生成时间：{dt.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    table(ws, overview, {"镇（街道）": 18}, first_row=4)
    taken: set[str] = set()
    for town, frame in sheets.items():
        ws = wb.create_sheet(_sheet_name(town, names, taken))
        ws.cell(row=1, column=1, value=NOTE).font = note_font
        table(ws, frame, WORKLIST_COLUMNS, first_row=2)
    wb.save(path)


# ==== command line ================================================================================
def _batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data/city", help="folder of the raw tables (parquet or CSV)")
    p.add_argument("--out", required=True, help="folder for scores.parquet, explanations.parquet, summary.json")
    p.add_argument("--as-of", default=None, help="YYYY-MM-DD (default: the last day of the latest income month)")
    p.add_argument("--chunk", type=int, default=50_000, help="households per chunk (0: the whole city at once)")
    p.add_argument("--explain", choices=EXPLAIN_MODES, default="flagged")
    p.add_argument("--record-url", default=None,
                   help="SQLAlchemy URL of the audit store to keep the batch's scores in (e.g. sqlite:///audit.db)")
    p.add_argument("--alias", default="champion", help="registered model alias to score with")
    p.add_argument("--risks", default=None, help="comma-separated risks (default: every risk with a model)")
    p.add_argument("--policy", default=None, help="policy parameter file (default: the packaged one)")
    p.add_argument("--no-progress", action="store_true")


def _batch_setup(a: argparse.Namespace) -> tuple[PolicyBook, list[ServedModel]]:
    policy = load_policy_book(a.policy)
    models, _ = load_served_models(a.risks.split(",") if a.risks else None, a.alias)  # logs the missing
    if not models:
        raise SystemExit(f"no model registered under @{a.alias}")
    return policy, models


def _batch_command(a: argparse.Namespace) -> int:
    from policy.lists import load_lists

    policy, models = _batch_setup(a)
    summary = run_batch(a.data, a.out, models, policy, as_of=a.as_of, chunk=a.chunk, explain=a.explain,
                        record_url=a.record_url, progress=not a.no_progress, lists=load_lists(a.policy))
    print(json.dumps(summary.as_dict(), ensure_ascii=False))
    return 0


def _worklist_command(a: argparse.Namespace) -> int:
    from domain.advice import Advisor

    policy, models = _batch_setup(a)
    city = CityTables.read(a.data, policy=policy)  # once, for the batch and the worklist
    advisor = Advisor.load(a.policy, policy=policy)
    summary = run_batch(city, a.out, models, policy, as_of=a.as_of, chunk=a.chunk, explain="flagged",
                        record_url=a.record_url, progress=not a.no_progress, lists=advisor.lists)
    capacity = float(a.capacity) if float(a.capacity) < 1 else int(float(a.capacity))
    files = write_worklist(summary, city, a.out, capacity, advisor, progress=not a.no_progress)
    print(json.dumps({"batch": summary.as_dict(), "excel": str(files.excel),
                      "csv": {t: str(p) for t, p in files.csv.items()}, "listed": files.listed}, ensure_ascii=False))
    return 0


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``relief-risk batch``: score the whole city with the served models."""
    p = subparsers.add_parser("batch", help="score every household with every served model (nightly batch)")
    _batch_arguments(p)
    p.set_defaults(func=_batch_command)
    return p


def add_worklist_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``relief-risk worklist``: the batch, then each town's ranked visit list (CSV and Excel)."""
    p = subparsers.add_parser("worklist", help="run the batch, then write each town's visit list (CSV, Excel)")
    _batch_arguments(p)
    p.add_argument("--capacity", default="0.02",
                   help="per town: a share of its households (below 1, e.g. 0.02) or a number of households")
    p.set_defaults(func=_worklist_command)
    return p
