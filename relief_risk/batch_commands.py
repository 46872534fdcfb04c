"""``relief-risk batch`` and ``relief-risk worklist``: the nightly batch (:mod:`batch.run`) and the
towns' visit lists (:mod:`batch.worklist`) from the command line, with the served models.

    relief-risk batch --data data/city --out out/2026-10-31
    relief-risk worklist --data data/city --out out/2026-10-31 --capacity 0.02
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from batch.run import EXPLAIN_MODES, run_batch
from batch.worklist import write_worklist
from features.city import CityTables
from features.io import load_policy_book
from features.policy import PolicyBook

if TYPE_CHECKING:
    from domain.loader import LoadedModel


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


def _batch_setup(a: argparse.Namespace) -> tuple[PolicyBook, list[LoadedModel]]:
    from domain.loader import NoModels, load_served

    policy = load_policy_book(a.policy)
    try:  # logs the risks without a model; their explainers are built when the batch first explains
        models, _ = load_served(a.risks.split(",") if a.risks else None, a.alias, warm=False)
    except NoModels:
        raise SystemExit(f"no model registered under @{a.alias}") from None
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
