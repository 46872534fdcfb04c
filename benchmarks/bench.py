"""``make bench``: side-by-side measurements on this machine, in one run, written to
``benchmarks/results/latest.json`` and rendered as the README's benchmark table.

    .venv/bin/python benchmarks/bench.py                      # 500k households, ~10 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --households 50000   # smaller city, quicker
    .venv/bin/python benchmarks/bench.py --render-only        # README table from latest.json

Each stage runs in its own process (``bench.py _stage NAME``), so the peak memory it reports is its
own: ``VmHWM`` (peak resident set) is reset through ``/proc/self/clear_refs`` before each measured
operation and read after it. Servers' peak memory is read from ``/proc/<pid>/status`` of the server
and its workers before they stop. Nothing here asserts a target: the figures and ratios are printed,
stored and compared with the targets in the README; the test suite only checks that the README's
table is the rendering of the stored JSON.

Stages:
  setup     a training city (20k households) with every risk trained and registered in a temporary
            MLflow store, and the whole city (``--households``) as Parquet
  features  reading the whole city's raw tables and building features for every household
  batch     the whole-city nightly batch (features, every risk's score, exact explanations of the
            flagged, Parquet out) through ``relief_risk.nightly.run_batch``
  predict   batch scoring (``RiskModel.predict_frame``: schema check, predict, calibrate, band)
            against raw ``Booster.predict`` on the same matrix
  explain   exact explanations: ours against ``pred_contrib`` and ``shap.TreeExplainer`` on the
            same rows, with the largest difference
  train     ``training.fit.fit_risk_model`` against raw ``lightgbm.train`` on the same matrix with
            the same parameters and early stopping
  api       ``POST /v1/score`` (features + score + exact explanation + audit write) at 1 and 2 workers
            against ``mlflow models serve`` of the same registered model answering score-only; same
            client, same households
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
RISKS = ("illness_poverty", "disability_poverty", "unemployment_poverty", "elderly_care_need", "child_in_difficulty")
TRAIN_HOUSEHOLDS = 20_000


# ---- memory -----------------------------------------------------------------------------------------
def reset_peak() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _status_kb(pid: int | str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_mb(pid: int | str = "self") -> float:
    kb = _status_kb(pid, "VmHWM") or (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if pid == "self" else 0)
    return round(kb / 1024, 1)


def tree_peak_mb(pid: int) -> float:
    """The peak resident memory of a process and all its descendants (summed)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += peak_mb(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return round(total, 1)


def measured(fn, repeat: int = 1) -> tuple[Any, float, float]:
    """(result, best seconds over ``repeat`` runs, peak MB of the operation)."""
    reset_peak()
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, min(times), peak_mb()


# ---- stages (each in its own process) ------------------------------------------------------------------
def _env(work: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow' / 'mlflow.db'}",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def stage_setup(work: Path, households: int) -> dict[str, Any]:
    cli = [sys.executable, "-m", "relief_risk.cli"]
    env = _env(work)
    (work / "mlflow").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([*cli, "generate", "--households", str(TRAIN_HOUSEHOLDS), "--seed", "7", "--out",
                    str(work / "train_city")], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "train", "--data", str(work / "train_city"), "--risk", "all"], check=True, env=env,
                   cwd=work, stdout=subprocess.DEVNULL)
    trained = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([*cli, "generate", "--households", str(households), "--seed", "3", "--out", str(work / "city")],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return {"train_city_households": TRAIN_HOUSEHOLDS, "train_all_risks_s": round(trained, 1),
            "generate_city_s": round(time.perf_counter() - t0, 1)}


def _city_features(work: Path):
    from features.build import build_features
    from features.city import CityTables
    from features.io import load_policy_book, read_tables

    policy = load_policy_book()
    tables = read_tables(work / "city", policy=policy)
    as_of = CityTables.from_tables(tables).last_income_day()
    return build_features(tables, as_of, policy), as_of


def stage_features(work: Path) -> dict[str, Any]:
    from features.build import build_features
    from features.city import CityTables
    from features.io import load_policy_book, read_tables

    policy = load_policy_book()
    tables, read_s, read_mb = measured(lambda: read_tables(work / "city", policy=policy))
    as_of = CityTables.from_tables(tables).last_income_day()
    feats, build_s, build_mb = measured(lambda: build_features(tables, as_of, policy), repeat=2)
    n = len(feats)
    return {"households": n, "persons": len(tables.persons), "read_s": round(read_s, 2), "read_peak_mb": read_mb,
            "build_s": round(build_s, 2), "build_peak_mb": build_mb, "households_per_s": round(n / build_s)}


def stage_batch(work: Path) -> dict[str, Any]:
    from batch import run_batch
    from domain.loader import load_served
    from features.io import load_policy_book

    os.environ.update(_env(work))
    models, missing = load_served(warm=False)  # explainers built in the batch, as the command line does
    out = work / "batch"
    shutil.rmtree(out, ignore_errors=True)
    summary, seconds, peak = measured(lambda: run_batch(work / "city", out, models, load_policy_book(),
                                                        progress=False))
    s = summary if isinstance(summary, dict) else getattr(summary, "__dict__", {})
    flagged = s.get("flagged") or {}
    return {"households": s.get("households"), "risks": [m.name for m in models], "seconds": round(seconds, 1),
            "peak_mb": peak, "flagged": flagged, "target_s": 120}


def stage_predict(work: Path) -> dict[str, Any]:
    import numpy as np

    from models.pyfunc import load_risk_model

    os.environ.update(_env(work))
    feats, _ = _city_features(work)
    model, _ = load_risk_model("models:/illness_poverty@champion")
    x = np.ascontiguousarray(feats[model.schema.ids].to_numpy(dtype="float64"))
    n = len(x)
    raw, raw_s, raw_mb = measured(lambda: model.booster.predict(x, raw_score=True, num_threads=2), repeat=3)
    ours, ours_s, ours_mb = measured(lambda: model.predict_frame(feats), repeat=3)
    assert np.array_equal(ours["raw_score"].to_numpy(), raw)
    return {"rows": n, "trees": model.booster.num_trees(), "raw_rows_per_s": round(n / raw_s),
            "raw_peak_mb": raw_mb, "ours_rows_per_s": round(n / ours_s), "ours_peak_mb": ours_mb,
            "ratio": round(raw_s / ours_s, 3), "target_ratio": 0.8}


def stage_explain(work: Path, rows: int) -> dict[str, Any]:
    import numpy as np
    import shap

    from models.pyfunc import load_risk_model

    os.environ.update(_env(work))
    feats, _ = _city_features(work)
    model, _ = load_risk_model("models:/illness_poverty@champion")
    x = np.ascontiguousarray(feats[model.schema.ids].to_numpy(dtype="float64")[:rows])
    booster = model.booster
    ref, ref_s, ref_mb = measured(lambda: booster.predict(x, pred_contrib=True, num_threads=2), repeat=2)
    explainer = shap.TreeExplainer(booster)
    sh, sh_s, sh_mb = measured(lambda: explainer.shap_values(x), repeat=1)
    model.explainer()  # built once at model load in the service: not part of the per-row cost
    ours, ours_s, ours_mb = measured(lambda: model.contributions(x), repeat=3)
    sh = np.asarray(sh[1] if isinstance(sh, list) else sh)
    return {"rows": len(x), "trees": booster.num_trees(), "max_depth": model.meta.get("max_depth"),
            "pred_contrib_rows_per_s": round(len(x) / ref_s), "pred_contrib_peak_mb": ref_mb,
            "shap_rows_per_s": round(len(x) / sh_s), "shap_peak_mb": sh_mb,
            "ours_rows_per_s": round(len(x) / ours_s), "ours_peak_mb": ours_mb,
            "ratio_vs_pred_contrib": round(ref_s / ours_s, 2), "ratio_vs_shap": round(sh_s / ours_s, 2),
            "max_abs_diff_vs_pred_contrib": float(np.max(np.abs(ours - ref))),
            "max_abs_diff_vs_shap": float(np.max(np.abs(ours[:, :-1] - sh))), "target_ratio": 2.0}


def stage_train(work: Path) -> dict[str, Any]:
    import lightgbm as lgb

    from features.io import load_policy_book, read_frame, read_tables
    from models.schema import FeatureSchema
    from training.dataset import build_snapshots, data_span, plan_split
    from training.fit import fit_risk_model

    policy = load_policy_book()
    tables = read_tables(work / "train_city", policy=policy)
    truth = read_frame(work / "train_city", "truth")
    split = plan_split(*data_span(tables))
    snaps = build_snapshots(tables, [*split.train, split.validation], policy, "illness_poverty", truth,
                            progress=False)
    train_df = snaps.loc[snaps["as_of"].isin(split.train)]
    val_df = snaps.loc[snaps["as_of"] == split.validation]
    schema = FeatureSchema.for_risk("illness_poverty")
    (model, facts), ours_s, ours_mb = measured(lambda: fit_risk_model(
        "illness_poverty", schema, train_df, val_df, capacity=0.02, seed=0, num_boost_round=1000,
        early_stopping_rounds=50, params={}))
    params = {**facts["params"]}

    def raw_train():
        dtrain = lgb.Dataset(train_df[schema.ids].to_numpy("float64"), train_df["label"].to_numpy(),
                             feature_name=schema.ids)
        dval = lgb.Dataset(val_df[schema.ids].to_numpy("float64"), val_df["label"].to_numpy(), reference=dtrain)
        return lgb.train(params, dtrain, num_boost_round=1000, valid_sets=[dval],
                         callbacks=[lgb.early_stopping(50, verbose=False)])

    booster, raw_s, raw_mb = measured(raw_train)
    return {"rows": len(train_df), "features": len(schema.ids), "ours_s": round(ours_s, 2), "ours_peak_mb": ours_mb,
            "raw_s": round(raw_s, 2), "raw_peak_mb": raw_mb, "ours_trees": model.booster.num_trees(),
            "raw_trees": booster.num_trees(), "overhead_ratio": round(ours_s / raw_s, 2)}


# ---- the API -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, probe) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if probe(url):
                return
        time.sleep(0.3)
    raise RuntimeError(f"server not ready: {log.read_text()[-2000:]}")


async def _load(url: str, bodies: list[bytes], headers: dict[str, str], n: int, concurrency: int
                ) -> tuple[list[float], float, int]:
    """``n`` requests from ``concurrency`` keep-alive clients; (latencies s, wall s, non-200 count)."""
    import httpx

    lat: list[float] = []
    bad = 0
    counter = iter(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal bad
        for i in counter:
            t0 = time.perf_counter()
            r = await client.post(url, content=bodies[i % len(bodies)], headers=headers)
            lat.append(time.perf_counter() - t0)
            bad += r.status_code != 200

    t0 = time.perf_counter()
    clients = [httpx.AsyncClient(timeout=60) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    return lat, time.perf_counter() - t0, bad


def _figures(url: str, bodies: list[bytes], headers: dict[str, str], requests: int) -> dict[str, Any]:
    asyncio.run(_load(url, bodies, headers, 50, 2))  # warm-up
    lat1, _, bad1 = asyncio.run(_load(url, bodies, headers, requests // 2, 1))
    lat8, wall8, bad8 = asyncio.run(_load(url, bodies, headers, requests, 8))
    q = statistics.quantiles(sorted(lat1), n=100)
    q8 = statistics.quantiles(sorted(lat8), n=100)
    return {"p50_ms_1_client": round(statistics.median(lat1) * 1000, 2), "p99_ms_1_client": round(q[98] * 1000, 2),
            "rps_8_clients": round(len(lat8) / wall8, 1), "p50_ms_8_clients": round(statistics.median(lat8) * 1000, 2),
            "p99_ms_8_clients": round(q8[98] * 1000, 2), "non_200": bad1 + bad8}


def stage_api(work: Path, requests: int, households: int = 300) -> dict[str, Any]:
    import httpx
    import mlflow

    from features.build import build_features
    from features.city import CityTables
    from features.io import load_policy_book, read_tables
    from features.tables import bundle_from_tables, tables_from_bundle

    env = _env(work)
    os.environ.update(env)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    policy = load_policy_book()
    tables = read_tables(work / "train_city", policy=policy)
    as_of = str(CityTables.from_tables(tables).last_income_day())
    ids = list(tables.households["household_id"].iloc[:households])
    bundles = [bundle_from_tables(tables, h, as_of) for h in ids]
    ours_bodies = [json.dumps(b).encode() for b in bundles]
    from models.pyfunc import load_risk_model

    model, _ = load_risk_model("models:/illness_poverty@champion")
    rows = [build_features(tables_from_bundle(b), as_of, policy)[model.schema.ids] for b in bundles]
    mlflow_bodies = [json.dumps({"dataframe_split": r.reset_index(drop=True).to_dict(orient="split")}).encode()
                     for r in rows]
    key = "platform-bench-" + os.urandom(8).hex()
    results: dict[str, Any] = {"households": len(bundles), "requests": requests}
    configs = [("relief_risk_1_worker", "ours", 1, ["illness_poverty"]),
               ("relief_risk_2_workers", "ours", 2, ["illness_poverty"]),
               ("relief_risk_all_risks_1_worker", "ours", 1, list(RISKS)),
               ("mlflow_serve_1_worker", "mlflow", 1, None), ("mlflow_serve_2_workers", "mlflow", 2, None)]
    for name, kind, workers, risks in configs:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / f"{name}.log"
        run_dir = work / name
        run_dir.mkdir(exist_ok=True)
        if kind == "ours":
            cmd = [sys.executable, "-m", "relief_risk.cli", "serve", "--port", str(port), "--workers", str(workers)]
            penv = {**env, "RELIEF_RISK_API_KEYS": f"platform:{key}", "RELIEF_RISK_RISKS": json.dumps(risks),
                    "RELIEF_RISK_AUDIT_URL": f"sqlite:///{run_dir / 'audit.db'}"}
            probe = lambda u: httpx.get(u + "/readyz", timeout=2).status_code == 200  # noqa: E731
            target, bodies = url + "/v1/score", ours_bodies
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        else:
            cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/illness_poverty@champion",
                   "-p", str(port), "-h", "127.0.0.1", "--env-manager", "local", "-w", str(workers)]
            penv = env
            probe = lambda u: httpx.get(u + "/ping", timeout=2).status_code == 200  # noqa: E731
            target, bodies = url + "/invocations", mlflow_bodies
            headers = {"Content-Type": "application/json"}
        with log.open("w") as out:
            proc = subprocess.Popen(cmd, env=penv, cwd=run_dir, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(url, proc, log, probe)
            figures = _figures(target, bodies, headers, requests)
            if figures["non_200"]:  # a refused request is fast: its timing would flatter the server
                raise RuntimeError(f"{name}: {figures['non_200']} requests were not answered 200 "
                                   f"(see {log}); its figures would not measure scoring")
            figures["peak_mb"] = tree_peak_mb(proc.pid)
            results[name] = {"workers": workers, "risks": risks or ["illness_poverty"],
                             "answers": "features + score + exact explanation + lists + audit write" if kind == "ours"
                             else "score only (features given)", **figures}
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()
    for w in ("1_worker", "2_workers"):
        ours, theirs = results[f"relief_risk_{w}"], results[f"mlflow_serve_{w}"]
        results[f"rps_ratio_{w}"] = round(ours["rps_8_clients"] / theirs["rps_8_clients"], 2)
    results["targets"] = {"p50_ms_1_worker": 10, "rps_ratio": 2.0}
    return results


STAGES = {"setup": stage_setup, "features": stage_features, "batch": stage_batch, "predict": stage_predict,
          "explain": stage_explain, "train": stage_train, "api": stage_api}


def run_stage(name: str, work: Path, extra: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "_stage", name, "--workdir", str(work), *extra],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:500]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stage_s"] = round(time.perf_counter() - t0, 1)
    return result


# ---- the README table ------------------------------------------------------------------------------
def _f(v: Any, fmt: str = "{:,}") -> str:
    return "—" if v is None else fmt.format(v)


def render(res: dict[str, Any]) -> str:
    """The README's table: one line per measurement, ours beside the reference, the ratio and the target."""
    m = res.get("machine", {})
    lines = [f"Measured by `make bench` on {res.get('date', '?')}: {m.get('cpus', '?')} cores, "
             f"{m.get('python', '?')}, LightGBM {m.get('lightgbm', '?')}; whole city "
             f"{_f(res.get('households'))} households. Figures from `benchmarks/results/latest.json`.", "",
             "| measurement | ours | reference | ratio | target |", "| --- | --- | --- | --- | --- |"]
    api = res.get("api", {})
    for w, label in (("1_worker", "1 worker"), ("2_workers", "2 workers")):
        o, t = api.get(f"relief_risk_{w}", {}), api.get(f"mlflow_serve_{w}", {})
        if o and t:
            lines.append(f"| `/v1/score` req/s, 8 clients, {label} (ours: features + score + explanation + audit; "
                         f"mlflow: score only) | {_f(o['rps_8_clients'])} | {_f(t['rps_8_clients'])} "
                         f"| {api.get(f'rps_ratio_{w}')}× | ≥ 2× |")
            lines.append(f"| `/v1/score` latency p50 / p99 ms, 1 client, {label} | {o['p50_ms_1_client']} / "
                         f"{o['p99_ms_1_client']} | {t['p50_ms_1_client']} / {t['p99_ms_1_client']} | | "
                         f"{'p50 ≤ 10 ms' if w == '1_worker' else ''} |")
            lines.append(f"| server peak memory MB, {label} | {_f(o.get('peak_mb'))} | {_f(t.get('peak_mb'))} | | |")
    a = api.get("relief_risk_all_risks_1_worker")
    if a:
        lines.append(f"| `/v1/score` with all five risks, 1 worker: req/s / p50 ms | {a['rps_8_clients']} / "
                     f"{a['p50_ms_1_client']} | | | |")
    p = res.get("predict", {})
    if "ratio" in p:
        lines.append(f"| batch scoring rows/s ({_f(p['rows'])} rows, {p['trees']} trees) vs raw `Booster.predict` "
                     f"| {_f(p['ours_rows_per_s'])} | {_f(p['raw_rows_per_s'])} | {p['ratio']}× | ≥ 0.8× |")
    e = res.get("explain", {})
    if "ratio_vs_pred_contrib" in e:
        lines.append(f"| exact explanations rows/s ({_f(e['rows'])} rows) vs `pred_contrib` | "
                     f"{_f(e['ours_rows_per_s'])} | {_f(e['pred_contrib_rows_per_s'])} | "
                     f"{e['ratio_vs_pred_contrib']}× | ≥ 2× |")
        lines.append(f"| exact explanations rows/s vs `shap.TreeExplainer` (max difference "
                     f"{e['max_abs_diff_vs_pred_contrib']:.1e}) | {_f(e['ours_rows_per_s'])} | "
                     f"{_f(e['shap_rows_per_s'])} | {e['ratio_vs_shap']}× | |")
        lines.append(f"| explanation peak memory MB: ours / `pred_contrib` / shap | {e['ours_peak_mb']} | "
                     f"{e['pred_contrib_peak_mb']} / {e['shap_peak_mb']} | | |")
    fe = res.get("features", {})
    if "build_s" in fe:
        lines.append(f"| whole-city features: {_f(fe['households'])} households, {_f(fe['persons'])} persons, "
                     f"36 months (s; peak MB) | {fe['build_s']} s; {fe['build_peak_mb']} MB | read "
                     f"{fe['read_s']} s; {fe['read_peak_mb']} MB | | |")
    b = res.get("batch", {})
    if "seconds" in b:
        lines.append(f"| whole-city nightly batch, {len(b.get('risks', []))} risks, explanations of the flagged "
                     f"(s; peak MB) | {b['seconds']} s; {_f(b['peak_mb'])} MB | | | ≤ 120 s, ≤ 24 GiB |")
    t = res.get("train", {})
    if "ours_s" in t:
        lines.append(f"| training ({_f(t['rows'])} rows × {t['features']}) vs raw `lightgbm.train` (s; peak MB) | "
                     f"{t['ours_s']} s; {t['ours_peak_mb']} MB | {t['raw_s']} s; {t['raw_peak_mb']} MB | "
                     f"{t['overhead_ratio']}× the time | |")
    errors = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["", "Stages that failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items())]
    return "\n".join(lines)


def write_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} … {END} block")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")


def machine() -> dict[str, Any]:
    import lightgbm

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "lightgbm": lightgbm.__version__,
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_stage":
        p = argparse.ArgumentParser()
        p.add_argument("name")
        p.add_argument("--workdir", type=Path, required=True)
        p.add_argument("--households", type=int, default=500_000)
        p.add_argument("--rows", type=int, default=20_000)
        p.add_argument("--requests", type=int, default=1000)
        a = p.parse_args(argv[1:])
        kwargs = {"setup": {"households": a.households}, "explain": {"rows": a.rows},
                  "api": {"requests": a.requests}}.get(a.name, {})
        result = STAGES[a.name](a.workdir, **kwargs)
        print(json.dumps(result, default=float))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--households", type=int, default=500_000, help="whole-city size (default 500k)")
    p.add_argument("--rows", type=int, default=20_000, help="rows explained in the explanation stage")
    p.add_argument("--requests", type=int, default=1000, help="requests per server at 8 clients")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    p.add_argument("--workdir", type=Path, default=None, help="keep the city and models here (default: temporary)")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--render-only", action="store_true", help="rewrite the README table from --out and stop")
    p.add_argument("--merge", action="store_true", help="re-run --stages and keep the other stages' figures "
                   "from --out (same --households and --workdir)")
    a = p.parse_args(argv)
    if a.render_only:
        write_readme(a.readme, render(json.loads(a.out.read_text())))
        return 0
    work = a.workdir or Path(tempfile.mkdtemp(prefix="relief-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    import datetime as dt

    res: dict[str, Any] = json.loads(a.out.read_text()) if a.merge and a.out.exists() else {}
    if a.merge and res.get("households") not in (None, a.households):
        raise SystemExit(f"--merge: {a.out} was measured on {res['households']} households, not {a.households}")
    res |= {"date": dt.date.today().isoformat(), "households": a.households, "machine": machine()}
    extra = ["--households", str(a.households), "--rows", str(a.rows), "--requests", str(a.requests)]
    try:
        for name in a.stages.split(","):
            print(f"== {name}", flush=True)
            res[name] = run_stage(name, work, extra)
            print(json.dumps(res[name], ensure_ascii=False), flush=True)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    table = render(res)
    print(table)
    write_readme(a.readme, table)
    return 1 if any(isinstance(v, dict) and "error" in v for v in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
