"""``make bench``: side-by-side measurements on this machine, in one run, written to
``benchmarks/results/latest.json`` and rendered as the README's benchmark table. One script of some
600 lines on purpose: every stage re-runs this very file in a process of its own (``bench.py _stage
NAME``), so the stages, their figures and the table they render stay together; the load generator
and the peer servers live beside it (``_load.py``, ``_peers.py``).

    .venv/bin/python benchmarks/bench.py                      # 500k households, ~25 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --households 50000   # smaller city, quicker
    .venv/bin/python benchmarks/bench.py --stages setup,floor,api --workdir /tmp/benchwork \
        --out /tmp/benchwork/dev.json --readme /tmp/benchwork/README.md   # a development run, repo untouched
    .venv/bin/python benchmarks/bench.py --render-only        # README table from latest.json

Each stage runs in its own process (``bench.py _stage NAME``), so the peak memory it reports is its
own: ``VmHWM`` (peak resident set) is reset through ``/proc/self/clear_refs`` before each measured
operation and read after it. Servers' peak memory is read from ``/proc/<pid>/status`` of the server
and its workers before they stop. Nothing here asserts a target: the figures and ratios are printed,
stored beside the issue's targets (``compare``) and rendered in the README; the test suite only
checks that the README's table is the rendering of the stored JSON.

Why one module of this size: every stage is a function that this same file runs in a child process,
and ``render`` must stay importable on its own (the test loads this file); what is not a stage moved
out: the load generator and the server-CPU meter to ``_load.py``, starting servers and the peers'
set-up (mlflow, MLServer) to ``_peers.py``. Both are imported inside the API stage only.

Stages:
  setup     a training city (20k households) with every risk trained and registered in a temporary
            MLflow store, and the whole city (``--households``) as Parquet
  features  reading the whole city's raw tables and building features for every household
  batch     the whole-city nightly batch (features, every risk's score, exact explanations of the
            flagged, Parquet out) through ``batch.run_batch``
  predict   batch scoring (``RiskModel.predict_frame``: schema check, predict, calibrate, band)
            against raw ``Booster.predict`` on the same matrix
  explain   exact explanations: ours against ``pred_contrib`` and ``shap.TreeExplainer`` on the
            same rows, with the largest difference
  train     ``training.fit.fit_risk_model`` against raw ``lightgbm.train`` on the same matrix with
            the same parameters and early stopping
  floor     in-process, per household of the API stage: tables from the bundle, features, and per
            risk the matrix, exact contributions and the calibrated probability (median and mean ms)
  api       ``POST /v1/score`` (features + five risks' scores and exact explanations + lists + audit
            write) at 1 and 2 workers, and one risk at 1 worker, against ``mlflow models serve`` of the
            illness champion (1 and 2 workers) and MLServer's LightGBM runtime on its ``booster.txt``
            (installed by the stage in ``<workdir>/mlserver-venv``), all answering score only; same
            households, same load generator; server CPU per request from ``/proc``; then
            ``POST /v1/score/batch`` with 1,000 households per request on the five-risk 1-worker server
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
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
    for stale in work.glob("bundles_*.json"):  # households of a previous training city
        stale.unlink()
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
        "illness_poverty", schema, train_df, val_df, seed=0, num_boost_round=1000,
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


# ---- the households, the floor and the API -------------------------------------------------------
API_HOUSEHOLDS = 300  # households that /v1/score, the peers and the floor cycle through
BATCH_SIZE = 1000  # households per /v1/score/batch request (the API's maximum)
CHAMPION = "models:/illness_poverty@champion"
FIVE_1W, FIVE_2W = "ours_5_risks_1_worker", "ours_5_risks_2_workers"


def _households(work: Path, n: int) -> list[dict[str, Any]]:
    """The first ``n`` households of the training city as API bodies, as of its last income day; made
    once and kept in the work folder, so the floor and the API stages score the same households."""
    for kept in work.glob("bundles_*.json"):
        if int(kept.stem.split("_")[1]) >= n:
            return json.loads(kept.read_text())[:n]
    from features.city import CityTables
    from features.io import load_policy_book, read_tables
    from features.tables import Tables, bundle_from_tables

    t = read_tables(work / "train_city", policy=load_policy_book())
    as_of = str(CityTables.from_tables(t).last_income_day())
    ids = t.households["household_id"].iloc[:n].tolist()
    bundles = []
    for i in range(0, len(ids), 100):  # bundle_from_tables scans whole tables: hand it 100 households at a time
        chunk = ids[i:i + 100]
        persons = t.persons.loc[t.persons["household_id"].isin(chunk)]
        part = Tables(t.households.loc[t.households["household_id"].isin(chunk)], persons,
                      t.income.loc[t.income["person_id"].isin(persons["person_id"])],
                      t.claims.loc[t.claims["person_id"].isin(persons["person_id"])],
                      t.assistance.loc[t.assistance["household_id"].isin(chunk)], t.verifications.iloc[:0])
        bundles += [bundle_from_tables(part, h, as_of) for h in chunk]
    (work / f"bundles_{n}.json").write_text(json.dumps(bundles))
    return bundles


def stage_floor(work: Path, households: int = API_HOUSEHOLDS) -> dict[str, Any]:
    """What one household costs in-process, with no server, by the very calls the service makes
    (``domain.scoring.Scorer.floor``): its tables from the bundle, its feature matrix, and per risk
    its exact contributions (base value last: the raw score is the row's sum) and calibrated
    probability; the same households as the API stage, the models loaded as the service loads them."""
    import numpy as np

    from domain.loader import load_served
    from domain.scoring import Scorer
    from features.build import feature_matrix
    from features.io import load_policy_book
    from features.tables import tables_from_bundles

    os.environ.update(_env(work))
    policy = load_policy_book()
    bundles = [json.loads(json.dumps(b)) for b in _households(work, households)]  # JSON values, as received
    models, _ = load_served(RISKS)
    scorer = Scorer(models=models, policy=policy)

    def one(bundle: dict[str, Any]) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        feature_matrix(tables_from_bundles([bundle]), bundle["as_of"], policy)  # the features alone, for the split
        c1, t1 = time.process_time(), time.perf_counter()
        scorer.floor(bundle)
        return t1 - t0, time.perf_counter() - t1, time.process_time() - c1

    for b in bundles[:20]:  # first calls (numba, pandas) are not a household's cost
        one(b)
    ms = np.array([one(b) for b in bundles]) * 1000  # per household: features alone; the floor (wall, CPU)
    wall, features = ms[:, 1], ms[:, 0]
    models = np.maximum(wall - features, 0.0)

    def stat(a: np.ndarray, f) -> float:
        return round(float(f(a)), 3)

    return {"households": len(bundles), "risks": list(RISKS), "median_ms": stat(wall, np.median),
            "mean_ms": stat(wall, np.mean), "p99_ms": stat(wall, lambda a: np.percentile(a, 99)),
            "cpu_median_ms": stat(ms[:, 2], np.median), "cpu_mean_ms": stat(ms[:, 2], np.mean),
            "features_median_ms": stat(features, np.median), "features_mean_ms": stat(features, np.mean),
            "models_median_ms": stat(models, np.median), "models_mean_ms": stat(models, np.mean)}


def _batch_figures(port: int, bundles: list[dict[str, Any]], headers: dict[str, str], n_requests: int,
                   proc) -> dict[str, Any]:
    """``n_requests`` sequential ``POST /v1/score/batch`` of 1,000 distinct households each; every
    result must be a score (an item's 422 would be cheap and flatter the figure)."""
    from _load import cpu_between, encode_posts, run_load, tree_cpu
    from _peers import HOST

    def posts(groups: list[list[dict[str, Any]]]) -> list[bytes]:
        return encode_posts(HOST, port, "/v1/score/batch", [json.dumps({"items": g}).encode() for g in groups],
                            headers)

    run_load(HOST, port, posts([bundles[-10:]]), 1, 1)  # the batch route's first call
    requests = posts([bundles[i * BATCH_SIZE:(i + 1) * BATCH_SIZE] for i in range(n_requests)])
    before = tree_cpu(proc.pid)
    run = run_load(HOST, port, requests, n_requests, 1, keep_bodies=True, timeout=1800)
    cpu, _ = cpu_between(before, tree_cpu(proc.pid))
    if run.non_200:
        raise RuntimeError(f"answers {dict(run.statuses)}: {run.bodies[0][:300]!r}")
    for body in run.bodies:
        results = json.loads(body)["results"]
        not_scored = [r for r in results if "scores" not in r]
        if len(results) != BATCH_SIZE or not_scored:
            raise RuntimeError(f"{len(results)} results, {len(not_scored)} not scores: {not_scored[:1]}")
    households = n_requests * BATCH_SIZE
    return {"requests": n_requests, "households_per_request": BATCH_SIZE,
            "households_per_s": round(households / run.wall_s, 1),
            "seconds_per_request": [round(s, 2) for s in run.latencies],
            "server_cpu_ms_per_household": round(cpu / households * 1000, 2),
            "request_mb": round(len(requests[0]) / 2**20, 1), "response_mb": round(len(run.bodies[0]) / 2**20, 1)}


def _error(e: Exception) -> dict[str, str]:
    return {"error": f"{type(e).__name__}: {e}"[:1000]}


def stage_api(work: Path, requests: int, households: int = API_HOUSEHOLDS, batch_requests: int = 3
              ) -> dict[str, Any]:
    """``/v1/score`` of all five risks at 1 and 2 workers (and one risk at 1 worker), ``mlflow models
    serve`` of the illness champion at 1 and 2 workers, MLServer on its booster; then
    ``/v1/score/batch`` on the five-risk 1-worker server. Same households, same load generator; a
    server that fails gets its error recorded and the others still run."""
    import mlflow
    from _load import encode_posts, loop_name
    from _peers import HOST, free_port, measure_server, mlflow_body, mlflow_serve_cmd, mlserver_peer

    from features.build import build_features
    from features.io import load_policy_book
    from features.tables import tables_from_bundle
    from models.pyfunc import load_risk_model

    env = _env(work)
    os.environ.update(env)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    policy = load_policy_book()
    bundles = _households(work, max(households, batch_requests * BATCH_SIZE))
    single = bundles[:households]
    model, _ = load_risk_model(CHAMPION)
    rows = [build_features(tables_from_bundle(b), b["as_of"], policy)[model.schema.ids] for b in single]
    key = "platform-bench-" + os.urandom(8).hex()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    servers: dict[str, Any] = {}
    results: dict[str, Any] = {"households": len(single), "requests": requests, "servers": servers,
                               "load_generator": f"asyncio streams ({loop_name()}), HTTP/1.1 keep-alive, "
                                                 "pre-encoded requests, one connection per client"}
    ours_bodies = [json.dumps(b).encode() for b in single]
    for name, workers, risks in ((FIVE_1W, 1, RISKS), (FIVE_2W, 2, RISKS), ("ours_1_risk_1_worker", 1, RISKS[:1])):
        port = free_port()
        penv = {**env, "RELIEF_RISK_API_KEYS": f"platform:{key}",
                "RELIEF_RISK_AUDIT_URL": f"sqlite:///{work / name / 'audit.db'}"}
        penv.pop("RELIEF_RISK_RISKS", None)  # five risks: the default when all five are registered
        if risks != RISKS:
            penv["RELIEF_RISK_RISKS"] = json.dumps(list(risks))

        def check(body: bytes, expect: tuple[str, ...] = risks) -> dict[str, Any]:
            scored = [s["risk"] for s in json.loads(body)["scores"]]
            if sorted(scored) != sorted(expect):
                raise RuntimeError(f"expected {list(expect)} scored, got {scored}")
            return {"risks_scored": scored}

        def batch(proc, port: int = port) -> dict[str, Any]:
            try:
                return {"batch": _batch_figures(port, bundles, headers, batch_requests, proc)}
            except Exception as e:  # noqa: BLE001 - the single-household figures still stand
                return {"batch": _error(e)}

        reqs = encode_posts(HOST, port, "/v1/score", ours_bodies, headers)
        cmd = [sys.executable, "-m", "relief_risk.cli", "serve", "--host", HOST, "--port", str(port),
               "--workers", str(workers)]
        try:
            servers[name] = {"workers": workers, "risks": list(risks),
                             "answers": "features + score + exact explanation per risk + lists + audit write",
                             **measure_server(cmd, penv, work / name, f"http://{HOST}:{port}/readyz", port, reqs,
                                              requests, check=(reqs[0], check),
                                              then=batch if name == FIVE_1W else None)}
        except Exception as e:  # noqa: BLE001
            servers[name] = _error(e)
        if "batch" in servers[name]:
            results["batch"] = servers[name].pop("batch")
    mlflow_bodies = [mlflow_body(r) for r in rows]
    for name, workers in (("mlflow_1_worker", 1), ("mlflow_2_workers", 2)):
        port = free_port()
        try:
            servers[name] = {"workers": workers, "answers": "score only (feature row given)", **measure_server(
                mlflow_serve_cmd(CHAMPION, port, workers), env, work / name, f"http://{HOST}:{port}/ping", port,
                encode_posts(HOST, port, "/invocations", mlflow_bodies, {"Content-Type": "application/json"}),
                requests)}
        except Exception as e:  # noqa: BLE001
            servers[name] = _error(e)
    try:
        x = [r.to_numpy(dtype="float64")[0] for r in rows]
        servers["mlserver"] = mlserver_peer(work, env, x, model.booster, CHAMPION, requests)
    except Exception as e:  # noqa: BLE001 - e.g. MLServer would not install: the rest of the bench goes on
        servers["mlserver"] = _error(e)
    return results

STAGES = {"setup": stage_setup, "features": stage_features, "batch": stage_batch, "predict": stage_predict,
          "explain": stage_explain, "train": stage_train, "floor": stage_floor, "api": stage_api}


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


# ---- targets and the README table ----------------------------------------------------------------------
# the targets: (what is compared, the direction the ratio should go, the bound)
TARGETS = {
    "rps_vs_mlflow": ("/v1/score req/s at 8 clients, five risks, 1 worker / mlflow serve 1 worker", ">=", 4.0),
    "rps_vs_mlserver": ("/v1/score req/s at 8 clients, five risks, 1 worker / MLServer (aim)", ">=", 0.5),
    "two_workers_vs_one": ("/v1/score req/s at 8 clients, five risks: 2 workers / 1 worker", ">=", 1.5),
    "server_cpu_vs_floor": ("server CPU ms per /v1/score (five risks, 1 worker) / in-process floor's mean CPU ms "
                            "per household", "<=", 2.0),
    "batch_vs_single": ("/v1/score/batch households/s / /v1/score req/s at 1 client (1 worker)", ">=", 20.0),
}


def compare(res: dict[str, Any]) -> dict[str, Any]:
    """Each target's two figures, their ratio and whether it is met (None when not measured)."""
    api = res.get("api", {})
    s = api.get("servers", {})

    def fig(server: str, key: str = "rps_8_clients") -> float | None:
        return s.get(server, {}).get(key)

    figures = {
        "rps_vs_mlflow": (fig(FIVE_1W), fig("mlflow_1_worker")),
        "rps_vs_mlserver": (fig(FIVE_1W), fig("mlserver")),
        "two_workers_vs_one": (fig(FIVE_2W), fig(FIVE_1W)),
        # CPU against CPU: on a busy machine the floor's wall time grows with others' work, not its own
        "server_cpu_vs_floor": (fig(FIVE_1W, "server_cpu_ms_per_request"), res.get("floor", {}).get("cpu_mean_ms")),
        "batch_vs_single": (api.get("batch", {}).get("households_per_s"), fig(FIVE_1W, "rps_1_client")),
    }
    out = {}
    for key, (ours, ref) in figures.items():
        what, op, bound = TARGETS[key]
        ratio = round(ours / ref, 2) if ours is not None and ref else None
        met = None if ratio is None else (ratio >= bound if op == ">=" else ratio <= bound)
        out[key] = {"what": what, "ours": ours, "reference": ref, "ratio": ratio, "target": f"{op} {bound}",
                    "met": met}
    return out


def _f(v: Any, fmt: str = "{:,}") -> str:
    return "—" if v is None else fmt.format(v)


def _server_cell(f: dict[str, Any]) -> str:
    if not f:
        return ""
    if "error" in f:
        return "failed (see JSON)"
    return (f"{_f(f.get('rps_8_clients'))} req/s; {f.get('p50_ms_1_client')} / {f.get('p99_ms_1_client')}; "
            f"{f.get('p50_ms_8_clients')} / {f.get('p99_ms_8_clients')}; {f.get('server_cpu_ms_per_request')} ms; "
            f"{_f(f.get('peak_mb'))} MB")


SERVER_ROWS = (  # (label, ours, reference): one line per configuration, ours left, the peer right
    ("`/v1/score`, five risks, 1 worker", FIVE_1W, None), ("`/v1/score`, five risks, 2 workers", FIVE_2W, None),
    ("`/v1/score`, one risk (illness_poverty), 1 worker", "ours_1_risk_1_worker", None),
    ("`mlflow models serve`, illness_poverty champion, 1 worker", None, "mlflow_1_worker"),
    ("`mlflow models serve`, 2 workers", None, "mlflow_2_workers"),
)


def render(res: dict[str, Any]) -> str:
    """The README's table: the issue's targets first (ours, reference, ratio, target), then each
    server's figures and the other stages, ours beside the reference."""
    m = res.get("machine", {})
    lines = [f"Measured by `make bench` on {res.get('date', '?')}: {m.get('cpus', '?')} cores, "
             f"{m.get('python', '?')}, LightGBM {m.get('lightgbm', '?')}; whole city "
             f"{_f(res.get('households'))} households. Figures from `benchmarks/results/latest.json`.", "",
             "| measurement | ours | reference | ratio | target |", "| --- | --- | --- | --- | --- |"]
    api, fl = res.get("api", {}), res.get("floor", {})
    servers = api.get("servers", {})
    ml = servers.get("mlserver", {})
    ml_name = f"MLServer {ml['versions']['mlserver']}" if "versions" in ml else "MLServer"
    t = compare(res)
    batch = api.get("batch", {})
    labels = {
        "rps_vs_mlflow": "`/v1/score` req/s, 8 clients, 1 worker (ours: features + five risks' scores + exact "
                         "explanations + lists + audit write) vs `mlflow models serve` (illness_poverty champion, "
                         "score only)",
        "rps_vs_mlserver": f"the same vs {ml_name}, LightGBM runtime (the champion's booster, score only, "
                           "`parallel_workers` at its default)",
        "two_workers_vs_one": "`/v1/score` req/s, 8 clients, five risks: 2 workers vs 1 worker",
        "server_cpu_vs_floor": "server CPU ms per `/v1/score` (five risks, 1 worker, 8 clients; all its processes) "
                               "vs the in-process floor's CPU ms per household (features + five scores + exact "
                               "explanations; mean" + (f"; its wall time median {fl['median_ms']} / mean "
                                                       f"{fl['mean_ms']} ms" if "mean_ms" in fl else "") + ")",
        "batch_vs_single": f"`/v1/score/batch` households/s ({batch.get('requests', 'a few')} requests of 1,000 "
                           "households, five risks, 1 worker) vs `/v1/score` req/s at 1 client",
    }
    for key, row in t.items():
        op = "≥" if row["target"].startswith(">=") else "≤"
        lines.append(f"| {labels[key]} | {_f(row['ours'])} | {_f(row['reference'])} | "
                     f"{_f(row['ratio'], '{}×')} | {op} {TARGETS[key][2]:g}× |")
    if servers:
        lines.append("| *per server: req/s at 8 clients; p50 / p99 ms at 1 client; p50 / p99 ms at 8 clients; "
                     "server CPU ms per request; peak memory* | | | | |")
        for label, ours, ref in (*SERVER_ROWS, (f"{ml_name}, LightGBM runtime, illness_poverty booster", None,
                                                "mlserver")):
            if servers.get(ours or ref):
                lines.append(f"| {label} | {_server_cell(servers.get(ours, {}))} | "
                             f"{_server_cell(servers.get(ref, {}))} | | |")
        own = {n: f.get("client_cpu_ms_per_request") for n, f in servers.items() if "error" not in f}
        lines.append(f"| load generator's own CPU ms per request, 8 clients: ours five risks 1 worker; "
                     f"mlflow 1 worker / MLServer | {_f(own.get(FIVE_1W))} | {_f(own.get('mlflow_1_worker'))} / "
                     f"{_f(own.get('mlserver'))} | | |")
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
    tr = res.get("train", {})
    if "ours_s" in tr:
        lines.append(f"| training ({_f(tr['rows'])} rows × {tr['features']}) vs raw `lightgbm.train` (s; peak MB) | "
                     f"{tr['ours_s']} s; {tr['ours_peak_mb']} MB | {tr['raw_s']} s; {tr['raw_peak_mb']} MB | "
                     f"{tr['overhead_ratio']}× the time | |")
    errors = failures(res)
    if errors:
        lines += ["", "Stages that failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items())]
    return "\n".join(lines)


def failures(res: dict[str, Any]) -> dict[str, str]:
    """Every stage, server or batch measurement that recorded an error, by name."""
    out = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}
    api = res.get("api", {})
    out |= {f"api {k}": v["error"] for k, v in api.get("servers", {}).items() if "error" in v}
    if "error" in api.get("batch", {}):
        out["api batch"] = api["batch"]["error"]
    return out


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
        p.add_argument("--api-households", type=int, default=API_HOUSEHOLDS)
        p.add_argument("--batch-requests", type=int, default=3)
        a = p.parse_args(argv[1:])
        kwargs = {"setup": {"households": a.households}, "explain": {"rows": a.rows},
                  "floor": {"households": a.api_households},
                  "api": {"requests": a.requests, "households": a.api_households,
                          "batch_requests": a.batch_requests}}.get(a.name, {})
        result = STAGES[a.name](a.workdir, **kwargs)
        print(json.dumps(result, default=float))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--households", type=int, default=500_000, help="whole-city size (default 500k)")
    p.add_argument("--rows", type=int, default=20_000, help="rows explained in the explanation stage")
    p.add_argument("--requests", type=int, default=1000, help="requests per server at 8 clients (half at 1 client)")
    p.add_argument("--api-households", type=int, default=API_HOUSEHOLDS,
                   help="households the API stage and the floor cycle through")
    p.add_argument("--batch-requests", type=int, default=3, help="/v1/score/batch requests of 1,000 households")
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
    extra = ["--households", str(a.households), "--rows", str(a.rows), "--requests", str(a.requests),
             "--api-households", str(a.api_households), "--batch-requests", str(a.batch_requests)]
    try:
        for name in a.stages.split(","):
            print(f"== {name}", flush=True)
            res[name] = run_stage(name, work, extra)
            print(json.dumps(res[name], ensure_ascii=False), flush=True)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    res["targets"] = compare(res)  # stored for readers of the JSON; render() recomputes the same
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    table = render(res)
    print(table)
    write_readme(a.readme, table)
    return 1 if failures(res) else 0


if __name__ == "__main__":
    sys.exit(main())
