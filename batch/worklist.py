"""The worklist (走访清单) caseworkers take out the morning after the batch: per town, the households
flagged for any risk, highest flagged probability first, as many as the town can visit, each with
its reasons, lists, likely programmes and warm-list measures; CSV per town and one Excel workbook.

    relief-risk worklist --data data/city --out out/2026-10-31 --capacity 0.02
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from batch.excel import write_workbook
from batch.followups import write_followups
from batch.run import EXPLANATIONS_FILE, SCORES_FILE, SUMMARY_FILE, BatchSummary
from features.build import build_features
from features.cells import neutralise_frame, unique_file_name
from features.city import CityTables
from features.labels import TOWNS
from features.policy import PolicyBook
from features.risks import risk_label
from features.tables import Tables

if TYPE_CHECKING:
    from domain.advice import Advisor

log = logging.getLogger(__name__)

# Chinese headers and Excel column widths (characters)
WORKLIST_COLUMNS: dict[str, float] = {
    "排名": 6, "户编号": 14, "市": 10, "镇（街道）": 14, "风险类型": 16, "风险概率": 20, "最高风险概率": 12,
    "主要原因": 56, "所属重点人群清单": 26, "可能符合的救助项目": 28, "暖心清单措施（提出依据）": 60,
}
WRAPPED = frozenset({"风险类型", "风险概率", "主要原因", "所属重点人群清单", "可能符合的救助项目",
                     "暖心清单措施（提出依据）"})
TRIGGERS_ZH = {"list": "名单", "program": "救助项目", "risk": "风险", "reason": "原因"}


@dataclass
class WorklistFiles:
    csv: dict[str, Path]     # per town code
    excel: Path
    listed: dict[str, int]   # households listed per town
    overdue: Path | None = None  # overdue_followups.csv (batch.followups); None when no store was given


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


def _worklist_row(rank: int, row: Any, city_name: str, town_name: str, risks: Sequence[str],
                  reasons: Mapping[tuple[str, str], list], advice: Any) -> dict[str, Any]:
    flagged = [r for r in risks if getattr(row, f"{r}__flagged")]
    why = []
    for r in flagged:
        items = reasons.get((row.household_id, r), [])
        why.append(f"【{risk_label(r)}】" + "；".join(i["display"] for i in items))
    warm = [f"{m['label']}（{_proposed_by(m['proposed_by'])}）" for m in advice.warm_list]
    return {
        "排名": rank, "户编号": row.household_id, "市": city_name, "镇（街道）": town_name,
        "风险类型": "、".join(risk_label(r) for r in flagged),
        "风险概率": "\n".join(f"{risk_label(r)} {getattr(row, f'{r}__probability'):.3f}" for r in flagged),
        "最高风险概率": round(float(row.top_probability), 4),
        "主要原因": "\n".join(why),
        "所属重点人群清单": "、".join(item["label"] for item in advice.lists),
        "可能符合的救助项目": "、".join(p["label"] for p in advice.eligibility["programs"] if p["eligible"]),
        "暖心清单措施（提出依据）": "\n".join(warm),
    }


def _towns(policy: PolicyBook, day: dt.date, scored: set[str]) -> list[str]:
    """The worklist's towns: every town, in force on ``day``, of each city with a household among
    the scored ones (a town with no one flagged still gets its, empty, list), the cities in the
    policy file's order (the home city first); then any other town the data holds, by code."""
    cities = {policy.city_of_town(t) for t in scored}
    known: list[str] = []
    for city in policy.city_ids:
        if city in cities:
            try:
                known += [t for t in policy.towns_of(city, day) if t not in known]
            except ValueError:  # no version of the city in force yet: its towns are listed as found
                continue
    return known + sorted(scored - set(known))


def _city_name(policy: PolicyBook, town: str) -> str:
    """The Chinese name of the town's city (empty for a town no city of the policy file knows)."""
    city = policy.city_of_town(town)
    return "" if city is None else policy.city(city).name_zh


def write_worklist(batch: BatchSummary | str | Path, tables: CityTables | Tables | str | Path, out_dir: str | Path,
                   capacity_per_town: float | int, advisor: Advisor, *, progress: bool = True,
                   record_url: str | None = None) -> WorklistFiles:
    """Tomorrow's visits: per town, the households flagged for any risk, highest flagged probability
    first, as many as the town's capacity (:func:`town_capacity`; fewer when fewer are flagged),
    for every town of each city the data holds (:func:`_towns`; each row names its city, 市);
    each once, with all its flagged risks, their probabilities, top reasons, today's lists, the
    programmes the policy calculator finds it likely eligible for and the warm list (measures and
    the rule that proposed each), from the households' own rows (a town's listed households advised
    at once, :meth:`domain.advice.Advisor.advise_matrix`). Writes ``worklist_<town>.csv`` (UTF-8 with
    BOM, so Excel reads the Chinese) per town and ``worklist.xlsx`` (a sheet per town and a 汇总
    summary sheet) into ``out_dir``. The town code in a file name and every text cell come from the
    data, so both are made safe first (:mod:`features.cells`): a name is one file in ``out_dir``
    (``files.csv`` says which, per town), a cell that Excel would run as a formula is text.

    ``batch``: a :class:`BatchSummary` or the folder :func:`run_batch` wrote; ``tables``: the same
    data the batch scored (a :class:`CityTables` avoids reading it again). ``record_url``: the store
    whose households' plans are read for the follow-ups past due (:mod:`batch.followups`: a CSV and a
    逾期帮扶措施 sheet); without it they are skipped, and the log says so.
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
    explanations = pq.read_table(batch_dir / EXPLANATIONS_FILE,
                                 columns=["household_id", "risk", "base_value", "reasons"],
                                 filters=[("flagged", "==", True)]).to_pandas()
    reasons = {(h, r): json.loads(text) for h, r, text in zip(explanations["household_id"], explanations["risk"],
                                                               explanations["reasons"], strict=True)}
    base_values = dict(zip(zip(explanations["household_id"], explanations["risk"], strict=True),
                           explanations["base_value"], strict=True))
    towns = _towns(advisor.policy, pd.Timestamp(as_of).date(), set(scores["town"].dropna()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sheets: dict[str, pd.DataFrame] = {}
    overview = []
    files: dict[str, Path] = {}
    names: set[str] = set()
    for town in tqdm(towns, desc="worklist", unit="镇", disable=not progress):
        city_name = _city_name(advisor.policy, town)
        in_town = scores.loc[scores["town"] == town]
        capacity = town_capacity(capacity_per_town, len(in_town))
        ranked = _ranked(in_town, risks)
        chosen = ranked.head(capacity)
        rows = []
        if len(chosen):
            codes = city.codes_of(chosen["household_id"])
            listed = city.take(codes)  # the chosen households' rows, in code order
            features = build_features(listed, as_of, advisor.policy)  # rows in code order too
            order = np.argsort(codes, kind="stable")  # rank order → code order
            publics = [[{"risk": r, "probability": float(getattr(row, f"{r}__probability")),
                         "band": getattr(row, f"{r}__band"), "flagged": bool(getattr(row, f"{r}__flagged")),
                         "model": {"name": m["name"], "version": m["version"]},
                         "base_value": base_values.get((row.household_id, r)),
                         "reasons": reasons.get((row.household_id, r), [])}
                        for r, m in zip(risks, models, strict=True)] for row in chosen.itertuples(index=False)]
            columns = {c: features[c].to_numpy(dtype="float64") for c in features.columns}
            advice = advisor.advise_matrix(listed, columns, as_of, [publics[k] for k in order.tolist()])
            by_rank = [None] * len(chosen)
            for k, a in zip(order.tolist(), advice, strict=True):
                by_rank[k] = a
            for rank, (row, a) in enumerate(zip(chosen.itertuples(index=False), by_rank, strict=True), start=1):
                rows.append(_worklist_row(rank, row, city_name, TOWNS.get(town, town), risks, reasons, a))
        frame = pd.DataFrame(rows, columns=list(WORKLIST_COLUMNS))
        files[town] = out / f"worklist_{unique_file_name(town, names)}.csv"
        neutralise_frame(frame).to_csv(files[town], index=False, encoding="utf-8-sig")
        sheets[town] = frame
        overview.append({"市": city_name, "镇（街道）": f"{TOWNS.get(town, town)} {town}", "户数": len(in_town),
                         "模型标记户数（任一风险）": len(ranked),
                         **{f"{risk_label(r)}标记户数": int(in_town[f"{r}__flagged"].sum()) for r in risks},
                         "走访容量": capacity, "清单户数": len(frame)})
    excel = out / "worklist.xlsx"
    write_workbook(excel, sheets, pd.DataFrame(overview), as_of, models, TOWNS, WORKLIST_COLUMNS, WRAPPED)
    log.info("worklist %s: %d households in %d towns", as_of, sum(len(f) for f in sheets.values()), len(sheets))
    overdue = write_followups(out, excel, as_of, record_url, advisor.measures)
    return WorklistFiles(csv=files, excel=excel, listed={t: len(f) for t, f in sheets.items()}, overdue=overdue)
