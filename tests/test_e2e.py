"""End to end: a real uvicorn process on loopback, the contract check (checks/contract_check.py) against it, and
MLflow's own client loading the registered champion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest

from domain.bundle import CONTRACT_EXAMPLE
from tests.conftest import CONTRACT_CHECK, KEYS, auth, start_server

pytestmark = pytest.mark.slow


def test_contract_check_passes_against_the_live_server(live_server):
    if not CONTRACT_CHECK.exists():
        pytest.fail(f"{CONTRACT_CHECK} is missing: the project ships its contract check there")
    out = subprocess.run([sys.executable, str(CONTRACT_CHECK), "--url", live_server["url"],
                          "--platform-key", KEYS["platform"], "--auditor-key", KEYS["auditor"]],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failed" in out.stdout


def test_malformed_requests_never_5xx_and_leave_the_server_healthy(live_server):
    url = live_server["url"]
    h = {**auth("platform"), "Content-Type": "application/json"}
    bodies = [b"", b"{", b"[]", b"nul", b"\xff\xfe", b'{"as_of": "2026-06-30"}', b'{"household": 1}',
              b'{"as_of": 20260630, "household": {}, "members": []}', b'{"items": "x"}',
              ("{" * 5000 + "}" * 5000).encode()]
    with httpx.Client(timeout=30) as c:
        for path in ("/v1/score", "/v1/score/batch"):
            for body in bodies:
                r = c.post(url + path, content=body, headers=h)
                assert 400 <= r.status_code < 500, (path, body[:40], r.status_code, r.text[:200])
        r = c.post(url + "/v1/score", content=b"{}", headers={**auth("platform"), "Content-Type": "text/plain"})
        assert 400 <= r.status_code < 500
        assert c.get(url + "/healthz").status_code == 200
        assert c.get(url + "/readyz").status_code == 200
        assert c.post(url + "/v1/score", json=CONTRACT_EXAMPLE, headers=auth("platform")).status_code == 200
    assert live_server["proc"].poll() is None
    log = live_server["log"].read_text()
    assert "H000123" not in log and "P0001" not in log, "identifiers must not reach the logs"


def test_mlflow_loads_the_champion_and_predicts_on_its_input_example(trained):
    from mlflow.models import Model

    uri = "models:/illness_poverty@champion"
    pyfunc = mlflow.pyfunc.load_model(uri)
    example = Model.load(uri).load_input_example(mlflow.artifacts.download_artifacts(uri))
    out = pyfunc.predict(pd.DataFrame(example))
    assert list(out.columns[:4]) == ["probability", "raw_score", "band", "flagged"]
    assert out["probability"].between(0, 1).all() and len(out) == len(example)
    explained = pyfunc.predict(pd.DataFrame(example), params={"explain": True})
    contrib = explained.filter(like="contrib__").sum(axis=1) + explained["base_value"]
    assert (contrib - explained["raw_score"]).abs().max() < 1e-6


def test_registered_model_logs_its_schema_policy_and_evaluation(trained):
    client = mlflow.tracking.MlflowClient()
    run = client.get_run(trained.run_id)
    files = {f.path for f in client.list_artifacts(trained.run_id)}
    assert {"feature_schema.json", "policy_parameters.toml", "data_snapshot.json", "plots", "evaluation"} <= files
    plots = {f.path for f in client.list_artifacts(trained.run_id, "plots")}
    assert {"plots/calibration.png", "plots/recall_at_capacity.png", "plots/global_importance.png"} <= plots
    assert run.data.metrics["test_model_roc_auc"] > 0.7
    assert "test_rule_xian_recall" in run.data.metrics
    mv = client.get_model_version_by_alias("illness_poverty", "champion")
    assert str(mv.version) == trained.version


def test_mlflow_models_serve_answers(trained, tmp_path):
    """`mlflow models serve` can serve the registered model (score only)."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve",
                             "-m", "models:/illness_poverty@champion",
                             "-p", str(port), "-h", "127.0.0.1", "--env-manager", "local", "-w", "1"],
                            stdout=(tmp_path / "serve.log").open("w"), stderr=subprocess.STDOUT, cwd=tmp_path,
                            env={**os.environ,  # mlflow starts `uvicorn` from PATH: this environment's
                                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    try:
        from mlflow.models import Model
        uri = "models:/illness_poverty@champion"
        example = Model.load(uri).load_input_example(mlflow.artifacts.download_artifacts(uri))
        payload = {"dataframe_split": pd.DataFrame(example).to_dict(orient="split")}
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/invocations", json=payload, timeout=10)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("mlflow models serve did not start: " + (tmp_path / "serve.log").read_text()[-2000:])
                time.sleep(0.5)
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert len(preds) == len(example) and 0 <= preds[0]["probability"] <= 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_verify_and_reproduce_from_the_command_line(live_server, mlflow_uri):
    url = live_server["url"]
    r = httpx.post(url + "/v1/score", json=CONTRACT_EXAMPLE, headers=auth("platform"), timeout=30)
    rid = r.json()["request_id"]
    audit_url = f"sqlite:///{live_server['log'].parent / 'audit.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "RELIEF_RISK_AUDIT_URL": audit_url}
    cli = [sys.executable, "-m", "relief_risk.cli"]
    ok = subprocess.run([*cli, "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: "), ok.stdout + ok.stderr
    same = subprocess.run([*cli, "reproduce", rid], env=env, capture_output=True, text=True, timeout=300)
    assert same.returncode == 0 and same.stdout.startswith("IDENTICAL"), same.stdout + same.stderr

    from sqlalchemy import text

    from store.audit import AuditStore
    store = AuditStore(audit_url)
    with store.engine.begin() as conn:  # an auditor's worst case: someone edits a stored response
        conn.execute(text("UPDATE audit_records SET response = '{}' WHERE request_id = :r"), {"r": rid})
    store.dispose()
    broken = subprocess.run([*cli, "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and rid in broken.stderr and "edited" in broken.stderr


def _workers(pid: int) -> list[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_two_workers_share_the_connections_and_a_dead_worker_is_replaced(trained, mlflow_uri, tmp_path):
    """``serve --workers 2``: each worker its own SO_REUSEPORT socket, so connections opened together
    reach both; a worker that dies is started again; SIGTERM stops them all."""
    import signal
    import time

    proc, url, _ = start_server(tmp_path, mlflow_uri, "--workers", "2", timeout=180)
    try:
        time.sleep(5)  # the second worker loads its models too
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        before = {w: _cpu_s(w) for w in workers}
        clients = [httpx.Client(timeout=60) for _ in range(16)]  # 16 connections, opened together
        try:
            for _ in range(5):
                for c in clients:
                    assert c.post(url + "/v1/score", json=CONTRACT_EXAMPLE, headers=auth("platform")).status_code == 200
        finally:
            for c in clients:
                c.close()
        used = {w: _cpu_s(w) - before[w] for w in workers}
        assert sum(u > 0.05 for u in used.values()) >= 2, f"one worker served every connection: {used}"
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (victim in _workers(proc.pid) or len(_workers(proc.pid)) < 2):
            time.sleep(0.5)
        assert victim not in _workers(proc.pid) and len(_workers(proc.pid)) == 2
        for _ in range(10):  # whichever worker answers, every answer is a score
            assert httpx.post(url + "/v1/score", json=CONTRACT_EXAMPLE, headers=auth("platform"),
                              timeout=60).status_code == 200
        store = __import__("store.audit", fromlist=["AuditStore"]).AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
        assert store.verify() == (90, None)  # both workers appended to one chain
        store.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_the_score_stage_loads_the_registered_version_it_names(trained, city_dir, tmp_path, capsys):
    from features.build import build_features
    from features.io import load_policy_book, read_tables
    from models.pyfunc import load_risk_model
    from relief_risk.cli import main

    out = tmp_path / "scores.parquet"
    assert main(["score", "--data", str(city_dir), "--as-of", "2026-03-31", "--out", str(out)]) == 0
    said = __import__("json").loads(capsys.readouterr().out.strip().splitlines()[-1])
    scores = pd.read_parquet(out)
    version = str(mlflow.MlflowClient().get_model_version_by_alias("illness_poverty", "champion").version)
    assert said["model"] == {"name": "illness_poverty", "version": version}
    assert set(scores["model_version"]) == {version}
    policy = load_policy_book()
    model, _ = load_risk_model(f"models:/illness_poverty/{version}")
    expected = model.predict_frame(build_features(read_tables(city_dir, policy=policy), "2026-03-31", policy))
    assert said["flagged"] == int(expected["flagged"].sum()) == int(scores["flagged"].sum())
