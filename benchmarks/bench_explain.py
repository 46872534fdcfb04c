"""Explanation benchmark: LightGBM ``pred_contrib`` vs ``shap.TreeExplainer`` vs ``models.fast_shap``.

Not a test: prints a table and writes the figures to ``--out`` (default
``benchmarks/results/explain.json``). About 3 minutes on 2 idle cores, most of it training;
``--cache-dir`` keeps the trained boosters for the next run:

    .venv/bin/python benchmarks/bench_explain.py
    .venv/bin/python benchmarks/bench_explain.py --cache-dir /tmp/bench_models --out /tmp/explain.json

Data: synthetic, ``--features`` numeric columns (5% NaN in a third of them, exact zeros in
another few), ``--positive-rate`` positives from a logistic model with interactions; monotone
constraints on the first 10 features. Models (``models.lgbm.DEFAULTS``, 2 threads):

- ours: num_leaves 15, max_depth 6, 500 rounds; the 200-round model is its first 200 iterations
  (``num_iteration=200``, identical to training 200 rounds);
- reference: num_leaves 31, max_depth -1, 200 rounds;
- a 1000-round model on a subset, for the build time and table memory of the largest models.

Per model: rows/s of ``pred_contrib`` (num_threads 2), ``shap.TreeExplainer(booster,
feature_perturbation="tree_path_dependent").shap_values`` (delegates to ``pred_contrib``), and
``FastTreeShap.contributions`` on 2 and 1 numba threads (best of ``--repeats``; the slow methods on
``--slow-rows`` rows); single-row latency p50/p90 (µs) for ``pred_contrib`` and FastTreeShap, one
row called ``--single-repeats`` times after a warm-up; max |difference| from ``pred_contrib`` over
all the rows both computed, including the base column; build time and table memory (with the
default table depth: leaves with more unique path features are computed on the fly). Batch
figures come as wall rows/s and rows per process-CPU-second: on a shared machine the wall figures
(and whether 2 threads beat 1) depend on the other load, the CPU figures much less; the load
average is recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightgbm as lgb  # noqa: E402
import numba  # noqa: E402
import shap  # noqa: E402

from models.fast_shap import FastTreeShap  # noqa: E402
from models.lgbm import DEFAULTS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "explain.json"


def make_data(n: int, n_features: int, positive_rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    x[:, 1::4] = np.round(np.abs(x[:, 1::4]) * 3)  # count-like columns with many exact zeros
    logit = (0.8 * x[:, 0] - 0.6 * x[:, 2] + 0.5 * x[:, 1] * (x[:, 3] > 0) + 0.4 * np.sin(2 * x[:, 4])
             + 0.3 * x[:, 5:15].sum(axis=1) / 3 + 0.7 * (x[:, 6] > 1) * (x[:, 7] < 0))
    # intercept for the wanted positive rate
    lo, hi = -20.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(logit + mid)))).mean() > positive_rate:
            hi = mid
        else:
            lo = mid
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit + lo)))).astype(np.int32)
    nan_cols = np.arange(0, n_features, 3)
    mask = rng.random((n, len(nan_cols))) < 0.05
    sub = x[:, nan_cols]
    sub[mask] = np.nan
    x[:, nan_cols] = sub
    return x, y


def train(x: np.ndarray, y: np.ndarray, rounds: int, cache: Path | None = None, **overrides: Any) -> lgb.Booster:
    """``models.lgbm.DEFAULTS`` with monotone constraints; with ``cache``, a booster trained
    earlier on the same data and parameters is loaded instead of trained again."""
    mono = [1] * 5 + [-1] * 5 + [0] * (x.shape[1] - 10)
    params = {**DEFAULTS, "monotone_constraints": mono, "seed": 0, **overrides}
    path = None
    if cache is not None:
        key = hashlib.sha256(json.dumps([params, rounds, list(x.shape)], sort_keys=True).encode()
                             + x.tobytes() + y.tobytes()).hexdigest()[:16]
        path = cache / f"booster_{key}.txt"
        if path.exists():
            return lgb.Booster(model_file=str(path))
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(path))
    return booster


def best_time(fn, repeats: int) -> tuple[float, float]:
    """Best wall and best process CPU seconds (all threads) of ``repeats`` calls. On a shared
    machine wall time suffers from other load; CPU time much less."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return best, best_cpu


def rates(n: int, fn, repeats: int) -> dict[str, float]:
    wall, cpu = best_time(fn, repeats)
    return {"rows_s": n / wall, "rows_per_cpu_s": n / cpu}


def latency_us(fn, repeats: int, budget_s: float) -> dict[str, float]:
    for _ in range(5):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if t0 - start > budget_s:
            break
    t = np.array(times) * 1e6
    return {"p50_us": float(np.percentile(t, 50)), "p90_us": float(np.percentile(t, 90)), "calls": len(times)}


def bench_model(name: str, booster: lgb.Booster, num_iteration: int, x: np.ndarray, args: argparse.Namespace) -> dict:
    slow = x[: args.slow_rows]
    res: dict[str, Any] = {"model": name, "trees": num_iteration, "rows": len(x), "slow_rows": len(slow)}

    res["build_s"], _ = best_time(lambda: FastTreeShap.from_booster(booster, num_iteration=num_iteration), 3)
    fast = FastTreeShap.from_booster(booster, num_iteration=num_iteration)
    res.update({f"fast_{k}": v for k, v in fast.summary().items()})

    def pred_contrib(rows: np.ndarray) -> np.ndarray:
        return booster.predict(rows, pred_contrib=True, num_iteration=num_iteration, num_threads=2)

    ref = pred_contrib(slow)
    res["pred_contrib"] = rates(len(slow), lambda: pred_contrib(slow), 1)

    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sv = explainer.shap_values(slow, tree_limit=num_iteration)
        res["shap"] = rates(len(slow), lambda: explainer.shap_values(slow, tree_limit=num_iteration,
                                                                      check_additivity=False), 1)
    sv = sv[1] if isinstance(sv, list) else sv
    res["shap_max_abs_diff"] = float(np.abs(np.asarray(sv) - ref[:, :-1]).max())

    fast.contributions(x[:100])  # warm (JIT / cache load)
    got = fast.contributions(x)
    res["fast_max_abs_diff"] = float(np.abs(got[: len(slow)] - ref).max())
    res["fast_additivity_max_abs"] = float(np.abs(got.sum(axis=1) - booster.predict(
        x, raw_score=True, num_iteration=num_iteration, num_threads=2)).max())
    res["fast"] = rates(len(x), lambda: fast.contributions(x, n_threads=2), args.repeats)
    res["fast_1thread"] = rates(len(x), lambda: fast.contributions(x, n_threads=1), args.repeats)

    one = x[7:8].copy()
    res["pred_contrib_single"] = latency_us(  # the booster's own num_threads (DEFAULTS: 2), as explain.py calls it
        lambda: booster.predict(one, pred_contrib=True, num_iteration=num_iteration), args.single_repeats, 3.0)
    res["pred_contrib_single_1thread"] = latency_us(
        lambda: booster.predict(one, pred_contrib=True, num_iteration=num_iteration, num_threads=1),
        args.single_repeats, 3.0)
    res["fast_single"] = latency_us(lambda: fast.contributions(one), args.single_repeats, 3.0)
    res["predict_single"] = latency_us(
        lambda: booster.predict(one, raw_score=True, num_iteration=num_iteration), args.single_repeats, 1.0)

    res["ratio_fast_vs_pred_contrib"] = res["fast"]["rows_s"] / res["pred_contrib"]["rows_s"]
    res["ratio_fast_vs_pred_contrib_cpu"] = res["fast"]["rows_per_cpu_s"] / res["pred_contrib"]["rows_per_cpu_s"]
    res["ratio_fast_vs_shap"] = res["fast"]["rows_s"] / res["shap"]["rows_s"]
    res["ratio_single_p50"] = res["pred_contrib_single"]["p50_us"] / res["fast_single"]["p50_us"]
    res["ratio_single_p50_vs_1thread"] = res["pred_contrib_single_1thread"]["p50_us"] / res["fast_single"]["p50_us"]
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=60)
    p.add_argument("--positive-rate", type=float, default=0.03)
    p.add_argument("--rows", type=int, default=20_000, help="rows explained by FastTreeShap")
    p.add_argument("--slow-rows", type=int, default=2_000, help="rows for pred_contrib and shap")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--single-repeats", type=int, default=2000)
    p.add_argument("--build-trees", type=int, default=1000, help="trees of the build-time model (0 to skip)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="keep trained boosters here and reuse them on the next run")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    wall0 = time.perf_counter()

    x, y = make_data(args.train_rows + args.rows, args.features, args.positive_rate, seed=0)
    x_train, y_train, x_test = x[: args.train_rows], y[: args.train_rows], x[args.train_rows:]

    t0 = time.perf_counter()
    load_start = os.getloadavg()
    ours = train(x_train, y_train, 500, args.cache_dir)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref31 = train(x_train, y_train, 200, args.cache_dir, num_leaves=31, max_depth=-1)
    t_ref = time.perf_counter() - t0
    print(f"trained: ours 500 rounds {t_ours:.1f}s, num_leaves 31 200 rounds {t_ref:.1f}s", flush=True)

    t0 = time.perf_counter()  # numba: load the cached machine code (or compile it, the first time)
    warm = FastTreeShap.from_booster(ours, num_iteration=5)
    for rows in (x_test[:1], x_test[:100]):
        warm.contributions(rows)
    warm.contributions(x_test[:100], n_threads=1)
    t_jit = time.perf_counter() - t0
    print(f"numba kernels ready in {t_jit:.2f}s", flush=True)

    results = []
    for name, booster, iters in (("leaves15_depth6", ours, 200), ("leaves15_depth6", ours, 500),
                                 ("leaves31_depth-1", ref31, 200)):
        r = bench_model(name, booster, iters, x_test, args)
        results.append(r)
        print(f"  {name} {iters} trees done ({time.perf_counter() - wall0:.0f}s)", flush=True)

    build = None
    if args.build_trees:
        sub = min(len(x_train), 20_000)
        t0 = time.perf_counter()
        big = train(x_train[:sub], y_train[:sub], args.build_trees, args.cache_dir, min_data_in_leaf=20)
        t_big = time.perf_counter() - t0
        t_dump, _ = best_time(big.model_to_string, 3)
        text = big.model_to_string()
        t_tables, _ = best_time(lambda: FastTreeShap.from_model_string(text), 3)
        t_total, _ = best_time(lambda: FastTreeShap.from_booster(big), 3)
        fast = FastTreeShap.from_booster(big)
        few = x_test[:200]
        diff = float(np.abs(fast.contributions(few) - big.predict(few, pred_contrib=True)).max())
        build = {"trees": big.num_trees(), "train_s": t_big, "model_to_string_s": t_dump,
                 "build_from_string_s": t_tables, "from_booster_s": t_total, "max_abs_diff_200_rows": diff,
                 **fast.summary()}

    # ---- report -------------------------------------------------------------------------------
    print()
    head = (f"{'model':<17}{'trees':>6}{'pred_contrib':>13}{'shap':>8}{'fast 2thr':>11}{'fast 1thr':>11}"
            f"{'x wall':>8}{'x cpu':>7}{'1row pc µs':>12}{'(1 thr)':>9}{'1row fast µs':>14}{'x':>5}{'max|diff|':>10}"
            f"{'table MiB':>10}{'d max/tbl':>10}{'build s':>8}")
    print("batch rows/s (wall) and single-row p50; 'x cpu' = ratio of rows per CPU-second (all threads)")
    print(head)
    for r in results:
        print(f"{r['model']:<17}{r['trees']:>6}{r['pred_contrib']['rows_s']:>13,.0f}{r['shap']['rows_s']:>8,.0f}"
              f"{r['fast']['rows_s']:>11,.0f}{r['fast_1thread']['rows_s']:>11,.0f}"
              f"{r['ratio_fast_vs_pred_contrib']:>8.1f}{r['ratio_fast_vs_pred_contrib_cpu']:>7.1f}"
              f"{r['pred_contrib_single']['p50_us']:>12,.0f}{r['pred_contrib_single_1thread']['p50_us']:>9,.0f}"
              f"{r['fast_single']['p50_us']:>14,.1f}"
              f"{r['ratio_single_p50']:>5.0f}{r['fast_max_abs_diff']:>10.1e}{r['fast_table_bytes'] / 2**20:>10.2f}"
              f"{r['fast_max_path_features']:>6}/{r['fast_table_depth']:<3}{r['build_s']:>8.3f}")
    if build:
        print(f"\nbuild, {build['trees']} trees: model_to_string {build['model_to_string_s']:.2f}s + parse and tables "
              f"{build['build_from_string_s']:.2f}s (from_booster {build['from_booster_s']:.2f}s); tables "
              f"{build['table_bytes'] / 2**20:.1f} MiB, all arrays {build['total_bytes'] / 2**20:.1f} MiB; "
              f"max path features {build['max_path_features']} (mean {build['mean_path_features']:.2f}); "
              f"max|diff| {build['max_abs_diff_200_rows']:.1e}")
    wall = time.perf_counter() - wall0
    load_end = os.getloadavg()
    print(f"\nwall {wall:.0f}s; load average (1 min) {load_start[0]:.1f} at start, {load_end[0]:.1f} at end "
          f"on {os.cpu_count()} CPUs")

    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "lightgbm": lgb.__version__, "numba": numba.__version__, "shap": shap.__version__,
                    "numpy": np.__version__, "numba_threading_layer": numba.threading_layer(),
                    "numba_threads": numba.config.NUMBA_NUM_THREADS},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "training_s": {"leaves15_depth6_500": t_ours, "leaves31_200": t_ref}, "numba_ready_s": t_jit,
        "models": results, "build_1000": build, "wall_s": wall,
        "loadavg_start": load_start, "loadavg_end": load_end,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
