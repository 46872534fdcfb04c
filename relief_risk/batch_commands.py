"""``relief-risk batch`` and ``relief-risk worklist``: the nightly batch (:mod:`batch.run`) and the
towns' visit lists (:mod:`batch.worklist`) from the command line, with the served models.

    relief-risk batch --data data/city --out out/2026-10-31
    relief-risk worklist --data data/city --out out/2026-10-31 --capacity 0.02
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch.list_changes import AUTO
from batch.run import EXPLAIN_MODES, BatchSummary, run_batch
from batch.worklist import WorklistFiles, write_worklist
from features.city import CityTables
from features.io import load_policy_book
from features.policy import PolicyBook
from features.risks import RISKS
from models.drift import Thresholds
from relief_risk.clihelp import MLFLOW_TRACKING_URI, Formatter, environment

if TYPE_CHECKING:
    from domain.loader import LoadedModel


def _batch_arguments(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--data", default="data/city", metavar="DIR", help="folder of the raw tables (parquet or CSV)")
    p.add_argument("--out", required=True, metavar="DIR", help=out_help)
    p.add_argument("--as-of", default=None, metavar="YYYY-MM-DD",
                   help="the date the households are scored as of (default: the last day of the latest income "
                        "month in the data)")
    p.add_argument("--chunk", type=int, default=50_000, help="households per chunk (0: the whole city at once)")
    p.add_argument("--explain", choices=EXPLAIN_MODES, default="flagged",
                   help="whose scores to explain exactly (explanations.parquet): flagged (each model's flagged "
                        "households), all, or none")
    p.add_argument("--record-url", default=os.environ.get("RELIEF_RISK_AUDIT_URL"), metavar="URL",
                   help="SQLAlchemy URL of the store to keep the run and each household's scores in, so the "
                        "service's household file shows them (default: RELIEF_RISK_AUDIT_URL, the service's store, "
                        "when set; otherwise none)")
    p.add_argument("--no-record", action="store_true",
                   help="keep nothing in a store, write the files only (default: off)")
    p.add_argument("--previous", default=AUTO, metavar="DIR|auto|none",
                   help="the earlier run to compare today's lists with, writing who entered and who left each list "
                        "(list_changes.parquet): auto (among --out and its sibling folders, the run with the latest "
                        "as-of date before this one's), none, or that run's folder")
    p.add_argument("--alias", default="champion", help="registered model alias to score with")
    p.add_argument("--risks", default=None,
                   help=f"comma-separated risks among {', '.join(RISKS)} (default: every risk with a model under "
                        "--alias)")
    p.add_argument("--policy", default=None, metavar="FILE", help="policy parameter file (default: the packaged one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true",
                   help="print the whole summary as one JSON object instead of a few lines")


def _batch_setup(a: argparse.Namespace) -> tuple[PolicyBook, list[LoadedModel]]:
    from domain.loader import NoModels, load_served

    policy = load_policy_book(a.policy)
    try:  # logs the risks without a model; their explainers are built when the batch first explains
        models, _ = load_served(a.risks.split(",") if a.risks else None, a.alias, warm=False)
    except NoModels:
        raise SystemExit(f"no model registered under @{a.alias}") from None
    return policy, models


def _files(out: Path, names: list[str]) -> str:
    """``out/{a, b, c}``, or ``out/a`` for one name."""
    return str(out / (names[0] if len(names) == 1 else f"{{{', '.join(names)}}}"))


def batch_lines(summary: BatchSummary) -> list[str]:
    """The batch in a few lines: households and models, flagged per risk, where the files are, time."""
    models = ", ".join(f"{m['name']} v{m['version']}" for m in summary.models)
    flagged = ", ".join(f"{risk} {n:,}" for risk, n in summary.flagged.items())
    kept = f"; scores kept in the audit store, batch run {summary.run_id}" if summary.run_id else ""
    return [f"batch as of {summary.as_of}: {summary.households:,} households scored by {models}",
            f"flagged: {flagged}; any risk {summary.flagged_any:,}; explained {sum(summary.explained.values()):,}",
            list_changes_line(summary),
            *([drift_line(summary.drift)] if summary.drift else []),
            f"files: {_files(Path(summary.out_dir), [Path(f).name for f in summary.files.values()])}{kept}",
            f"time: {summary.seconds.get('total', 0.0):.1f} s, peak memory {summary.peak_rss_mb:,.0f} MB"]


def list_changes_line(summary: BatchSummary) -> str:
    """Per list, how many entered and left since the previous run, or why nothing is compared."""
    if summary.previous is None or summary.list_changes is None:
        return "list changes: none counted, no previous run to compare with (a first run, or --previous none)"
    counts = ", ".join(f"{x} +{c['entered']:,} -{c['left']:,}" for x, c in summary.list_changes.items())
    return f"list changes since the run as of {summary.previous['as_of']} ({summary.previous['out_dir']}): {counts}"


def drift_line(drift: dict[str, dict]) -> str:
    """Per risk, the score's PSI against the model's training reference and the features to act on."""
    parts = [f"{risk} score PSI {d['score_psi']:.3f} ({d['status']})"
             + (f", act on {', '.join(d['act'])}" if d["act"] else "")
             + (f", watch {len(d['watch'])}" if d["watch"] else "")
             for risk, d in drift.items() if d["score_psi"] is not None]
    return "drift against training (drift.json): " + ("; ".join(parts) or "no households")


def worklist_lines(summary: BatchSummary, files: WorklistFiles, seconds: float) -> list[str]:
    """The batch's lines, then the worklist's: households listed in how many towns, its files, the time."""
    lines = batch_lines(summary)[:-1]
    towns = sorted(files.listed, key=lambda t: -files.listed[t])
    busiest = ", ".join(f"{t} {files.listed[t]}" for t in towns[:3])
    lines += [f"worklist: {sum(files.listed.values()):,} households to visit in {len(files.listed)} towns"
              + (f" (most: {busiest})" if busiest else ""),
              f"worklist files: {files.excel} and {files.excel.parent / 'worklist_<town>.csv'} ({len(files.csv)} "
              "towns, UTF-8 with BOM)",
              f"overdue plan measures: {files.overdue} and the sheet 逾期帮扶措施" if files.overdue else
              "overdue plan measures: skipped, no store given (--record-url or RELIEF_RISK_AUDIT_URL)",
              f"time: {seconds:.1f} s (batch {summary.seconds.get('total', 0.0):.1f} s), peak memory "
              f"{summary.peak_rss_mb:,.0f} MB"]
    return lines


def _batch_command(a: argparse.Namespace) -> int:
    from policy.lists import load_lists

    policy, models = _batch_setup(a)
    summary = run_batch(a.data, a.out, models, policy, as_of=a.as_of, chunk=a.chunk, explain=a.explain,
                        record_url=None if a.no_record else a.record_url, progress=not a.no_progress,
                        lists=load_lists(a.policy), previous=a.previous, monitoring=Thresholds.load(a.policy))
    print(json.dumps(summary.as_dict(), ensure_ascii=False) if a.json else "\n".join(batch_lines(summary)))
    return 0


def _worklist_command(a: argparse.Namespace) -> int:
    from domain.advice import Advisor

    t0 = time.perf_counter()
    policy, models = _batch_setup(a)
    city = CityTables.read(a.data, policy=policy)  # once, for the batch and the worklist
    advisor = Advisor.load(a.policy, policy=policy)
    summary = run_batch(city, a.out, models, policy, as_of=a.as_of, chunk=a.chunk, explain="flagged",
                        record_url=None if a.no_record else a.record_url, progress=not a.no_progress,
                        lists=advisor.lists, source=a.data, previous=a.previous,
                        monitoring=Thresholds.load(a.policy))
    capacity = float(a.capacity) if float(a.capacity) < 1 else int(float(a.capacity))
    # the overdue follow-ups are read from the store named, even with --no-record (which only keeps
    # this run out of it)
    files = write_worklist(summary, city, a.out, capacity, advisor, progress=not a.no_progress,
                           record_url=a.record_url)
    if a.json:
        print(json.dumps({"batch": summary.as_dict(), "excel": str(files.excel),
                          "overdue": str(files.overdue) if files.overdue else None,
                          "csv": {t: str(p) for t, p in files.csv.items()}, "listed": files.listed},
                         ensure_ascii=False))
    else:
        print("\n".join(worklist_lines(summary, files, time.perf_counter() - t0)))
    return 0


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``relief-risk batch``: score the whole city with the served models."""
    p = subparsers.add_parser(
        "batch", help="score every household with every served model (nightly batch)", formatter_class=Formatter,
        description="The nightly batch: scores every household of a data folder with each risk's model under "
                    "--alias, chunk by chunk, explains the flagged exactly, finds today's lists, and writes "
                    "Parquet files. Prints a few lines (households, flagged per risk, where the files are, time), "
                    "or the whole summary with --json.",
        epilog=environment(MLFLOW_TRACKING_URI))
    _batch_arguments(p, "folder for scores.parquet (every household's scores), explanations.parquet, "
                        "summary.json and list_changes.parquet (who entered and left each list since --previous); "
                        "made if missing. One folder per night under one root (out/2026-10-31) lets the next run "
                        "find this one")
    p.set_defaults(func=_batch_command)
    return p


def add_worklist_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``relief-risk worklist``: the batch, then each town's ranked visit list (CSV and Excel)."""
    p = subparsers.add_parser(
        "worklist", help="run the batch, then write each town's visit list (CSV, Excel)", formatter_class=Formatter,
        description="Runs the batch (explaining the flagged), then writes each town's visit list: the households "
                    "flagged for any risk, highest probability first, as many as the town's capacity, each with "
                    "its risks, top reasons, lists, likely programmes and warm-list measures. Prints a few lines, "
                    "or the whole summary with --json.",
        epilog=environment(MLFLOW_TRACKING_URI))
    _batch_arguments(p, "folder for the batch's files (scores.parquet, explanations.parquet, summary.json) and "
                        "the worklist: worklist_<town>.csv for each town (UTF-8 with BOM, so Excel reads the "
                        "Chinese) and worklist.xlsx (a sheet per town and a 汇总 summary sheet); made if missing")
    p.add_argument("--capacity", default="0.02",
                   help="households each town can visit: a share of its households (below 1, e.g. 0.02) or a "
                        "number of households (e.g. 40)")
    p.set_defaults(func=_worklist_command)
    return p
