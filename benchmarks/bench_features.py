"""Feature-building benchmark: one household bundle (the API path) and a whole synthetic city.

Not a test: prints figures and writes them to ``benchmarks/results/features.json`` (merged with the
figures of earlier runs for other city sizes). "before" is the pandas implementation that the numpy
one replaced, frozen in ``tests/test_features_fast.py``; "after" is ``features`` as it is now.

    python benchmarks/bench_features.py 20000                # bundle + a 20k-household city
    python benchmarks/bench_features.py 200000 --skip-bundle
    python benchmarks/bench_features.py 500000 --skip-bundle --before-tables new

Bundle: p50 (and p90) over ``--runs`` runs of ``tables_from_bundle`` + ``build_features`` for the
contract's example household (``serving.app.CONTRACT_EXAMPLE``), in-process, after a warm-up; wall
time and this thread's CPU time.

City: ``synthcity.generate_city(N, seed)``, then for each implementation its own ``make_tables``
and ``build_features`` for one as-of date, each call in a forked child so that every measurement
starts from the same memory state ("before" builds the old tables in its child). Reported: wall
and CPU seconds of each call (best of ``--repeats`` for the new code); "peak allocated", the
tracemalloc peak of a separate traced call (numpy and pandas report their buffers to it); and "peak
extra RSS", the child's resident memory sampled every 2 ms by this process, minus its RSS when the
call began. RSS understates when the allocator reuses pages already resident, tracemalloc does
not, so the former is a floor and the latter is what the call asks of the allocator.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.build import build_features  # noqa: E402
from features.io import load_policy_book  # noqa: E402
from features.tables import make_tables, tables_from_bundle  # noqa: E402
from tests.test_features_fast import (  # noqa: E402
    legacy_build_features,
    legacy_make_tables,
    legacy_tables_from_bundle,
)

RESULTS = ROOT / "benchmarks" / "results" / "features.json"
IMPLEMENTATIONS = {
    "before": (legacy_tables_from_bundle, legacy_make_tables, legacy_build_features),
    "after": (tables_from_bundle, make_tables, build_features),
}


def _rss_kb(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError("VmRSS")


def _quantile(xs: list[float], p: int) -> float:
    return round(statistics.quantiles(xs, n=100)[p - 1], 4)


def bench_bundle(name: str, policy: Any, runs: int) -> dict[str, float]:
    from domain.bundle import CONTRACT_EXAMPLE as bundle

    make, _, build = IMPLEMENTATIONS[name]
    for _ in range(min(100, runs)):
        build(make(bundle), bundle["as_of"], policy)
    tables_ms, features_ms, total_ms, cpu_ms = [], [], [], []
    for _ in range(runs):
        c0, t0 = time.thread_time(), time.perf_counter()
        tables = make(bundle)
        t1 = time.perf_counter()
        build(tables, bundle["as_of"], policy)
        t2, c2 = time.perf_counter(), time.thread_time()
        tables_ms.append((t1 - t0) * 1e3)
        features_ms.append((t2 - t1) * 1e3)
        total_ms.append((t2 - t0) * 1e3)
        cpu_ms.append((c2 - c0) * 1e3)
    return {"p50_ms": _quantile(total_ms, 50), "p90_ms": _quantile(total_ms, 90), "cpu_p50_ms": _quantile(cpu_ms, 50),
            "tables_p50_ms": _quantile(tables_ms, 50), "features_p50_ms": _quantile(features_ms, 50)}


def _child(name: str, frames: dict[str, Any], tables: Any, as_of: str, policy: Any, trace: bool, conn: Any) -> None:
    _, make, build = IMPLEMENTATIONS[name]
    prepared: dict[str, Any] = {}
    if tables is None:
        t0 = time.perf_counter()
        tables = make(**frames)
        prepared = {"make_tables_s": time.perf_counter() - t0, "tables_rss_mb": _rss_kb() / 1024}
    gc.collect()
    conn.send(_rss_kb())
    if trace:
        tracemalloc.start()
    c0, t0 = time.process_time(), time.perf_counter()
    frame = build(tables, as_of, policy)
    out = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "rows": len(frame),
           **prepared}
    if trace:
        out["peak_allocated_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    conn.send(out)
    conn.close()


def _in_child(name: str, frames: dict[str, Any], tables: Any, as_of: str, policy: Any, trace: bool = False
              ) -> dict[str, Any]:
    """One ``build_features`` call in a forked child (``tables`` None: the child makes them first),
    its RSS sampled from here meanwhile (the kernel's VmHWM is not updated on every page fault)."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(name, frames, tables, as_of, policy, trace, child))
    proc.start()
    child.close()
    rss0 = parent.recv()
    peak = rss0
    while not parent.poll(0.002):
        try:
            peak = max(peak, _rss_kb(proc.pid))
        except (OSError, KeyError):
            break
    result = parent.recv()
    proc.join()
    return {**result, "peak_extra_rss_mb": (peak - rss0) / 1024}


def bench_city(n: int, seed: int, as_of: str, policy: Any, before: str | None, repeats: int) -> dict[str, Any]:
    """``before``: None (skip the old code), "old" (old tables, made in the child) or "new" (the old
    ``build_features`` on the new tables, for cities whose old tables would not fit in memory)."""
    from synthcity import generate_city

    t0 = time.perf_counter()
    city = generate_city(n, seed=seed)
    frames = city.tables()
    out: dict[str, Any] = {"households": n, "seed": seed, "as_of": as_of,
                           "rows": {k: len(v) for k, v in frames.items()},
                           "generate_city_s": round(time.perf_counter() - t0, 2)}
    del city
    if before == "old":  # the old tables exist only in the child: both sets at once may not fit
        runs = [_in_child("before", frames, None, as_of, policy)]
        traced = _in_child("before", frames, None, as_of, policy, trace=True)
        out["before"] = _summary(runs, traced)
        out["before"]["make_tables_s"] = round(runs[0]["make_tables_s"], 2)
        out["before"]["tables_rss_mb"] = round(runs[0]["tables_rss_mb"])
    rss0 = _rss_kb()
    t0 = time.perf_counter()
    tables = make_tables(**frames)
    make_tables_s = time.perf_counter() - t0
    gc.collect()
    runs = [_in_child("after", frames, tables, as_of, policy) for _ in range(repeats)]
    traced = _in_child("after", frames, tables, as_of, policy, trace=True)
    out["after"] = _summary(runs, traced)
    out["after"]["make_tables_s"] = round(make_tables_s, 2)
    out["after"]["tables_rss_mb"] = round(_rss_kb() / 1024)
    out["after"]["tables_extra_rss_mb"] = round((_rss_kb() - rss0) / 1024)
    if before == "new":
        out["before"] = _summary([_in_child("before", frames, tables, as_of, policy)],
                                 _in_child("before", frames, tables, as_of, policy, trace=True))
        out["before"]["on_new_tables"] = True
    if before:
        out["ratio_seconds"] = round(out["before"]["seconds"] / out["after"]["seconds"], 1)
        out["ratio_cpu_seconds"] = round(out["before"]["cpu_seconds"] / out["after"]["cpu_seconds"], 1)
        out["ratio_peak_allocated"] = round(out["before"]["peak_allocated_mb"]
                                            / max(out["after"]["peak_allocated_mb"], 1), 1)
    return out


def _summary(runs: list[dict[str, Any]], traced: dict[str, Any]) -> dict[str, Any]:
    return {"seconds": round(min(r["seconds"] for r in runs), 3),
            "seconds_runs": [round(r["seconds"], 3) for r in runs],
            "cpu_seconds": round(min(r["cpu_seconds"] for r in runs), 3),
            "peak_allocated_mb": round(traced["peak_allocated_mb"]),
            "peak_extra_rss_mb": round(max(r["peak_extra_rss_mb"] for r in runs))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("households", type=int, nargs="?", default=20_000, help="city size (0: no city)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--as-of", default="2026-04-30")
    ap.add_argument("--runs", type=int, default=1000, help="bundle runs for the p50")
    ap.add_argument("--repeats", type=int, default=3, help="city runs of the new code (the best is reported)")
    ap.add_argument("--skip-before", action="store_true", help="do not run the old implementation")
    ap.add_argument("--before-tables", choices=("old", "new"), default="old",
                    help="tables the old build_features runs on (new: when the old ones would not fit)")
    ap.add_argument("--skip-bundle", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    policy = load_policy_book()
    names = ["after"] if args.skip_before else ["before", "after"]
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_before": os.getloadavg(), "when": dt.datetime.now(dt.UTC).isoformat()}
    if not args.skip_bundle:
        b: dict[str, Any] = {"runs": args.runs, **{name: bench_bundle(name, policy, args.runs) for name in names}}
        print(f"one bundle (tables_from_bundle + build_features), over {args.runs} runs:")
        for name in names:
            r = b[name]
            print(f"  {name:6s} p50 {r['p50_ms']:8.3f} ms  p90 {r['p90_ms']:8.3f} ms  CPU p50 {r['cpu_p50_ms']:8.3f} ms"
                  f"  (tables {r['tables_p50_ms']:.3f} + features {r['features_p50_ms']:.3f})")
        if "before" in b:
            b["ratio_p50"] = round(b["before"]["p50_ms"] / b["after"]["p50_ms"], 1)
            print(f"  ratio  {b['ratio_p50']}x")
        results["bundle"] = b
    if args.households > 0:
        c = bench_city(args.households, args.seed, args.as_of, policy,
                       None if args.skip_before else args.before_tables, args.repeats)
        results.setdefault("city", {})[str(args.households)] = c
        rows = c["rows"]
        print(f"city of {args.households:,} households ({rows['persons']:,} persons, {rows['income']:,} income rows, "
              f"{rows['claims']:,} claims), as_of {args.as_of}:")
        for name in names:
            r = c[name]
            line = (f"  {name:6s} build_features {r['seconds']:7.2f} s (CPU {r['cpu_seconds']:6.2f} s)  "
                    f"peak allocated {r['peak_allocated_mb']:6,} MB  peak extra RSS {r['peak_extra_rss_mb']:6,} MB")
            if "make_tables_s" in r:
                line += f"  |  make_tables {r['make_tables_s']:6.1f} s, tables in RSS {r['tables_rss_mb']:6,} MB"
            print(line + ("  (on the new tables)" if r.get("on_new_tables") else ""))
        if "ratio_seconds" in c:
            print(f"  ratio  {c['ratio_seconds']}x faster ({c['ratio_cpu_seconds']}x in CPU), "
                  f"{c['ratio_peak_allocated']}x less peak allocation")
    results["machine"]["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
