"""The servers of the API stage (used by ``bench.py``; run as a script sibling, not a package):
start one, wait until it answers ready, stop it and everything it started; and the two peers'
set-up: ``mlflow models serve`` of the registered champion, and Seldon's MLServer with its LightGBM
runtime serving the champion's own ``booster.txt``, installed in a virtualenv of its own under the
bench's work folder (kept there, so later runs reuse it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _load import cpu_between, encode_posts, run_load, tree_cpu, tree_peak_mb

HOST = "127.0.0.1"  # every server listens on loopback only
# uvloop 0.22 made get_event_loop() raise without a running loop, and MLServer 1.7.1's inference
# pool workers call it at start (SeldonIO/MLServer#2286, fix not released): they die at birth.
MLSERVER_PACKAGES = ("mlserver", "mlserver-lightgbm", "uvloop<0.22")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running(cmd: Sequence[str], env: dict[str, str], cwd: Path, log: Path, ready_url: str,
            timeout: float = 240) -> Iterator[subprocess.Popen]:
    """A server started in a session of its own, yielded once ``ready_url`` answers 200; on exit its
    whole process group (workers, MLServer's inference pool, mlflow's uvicorn) is stopped."""
    with log.open("w") as out:
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not answers_200(ready_url):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
                break
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived its parent
            os.killpg(proc.pid, signal.SIGKILL)


def measure_server(cmd: Sequence[str], env: dict[str, str], cwd: Path, ready_url: str, port: int,
                   requests: Sequence[bytes], n: int, check: tuple[bytes, Callable[[bytes], Any]] | None = None,
                   then: Callable[[subprocess.Popen], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Start a server in a fresh ``cwd`` (log beside it), check one answer, warm it with 50 requests,
    then ``n // 2`` requests from 1 client and ``n`` from 8; its CPU is read around the 8-client run.
    ``check`` = (request bytes, fn(answer body) → facts, raising if wrong); ``then(proc)`` runs against
    the warm server before it stops. Figures of a server that answered anything but 200 are refused."""
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    log = cwd.with_suffix(".log")
    out: dict[str, Any] = {}
    with running(cmd, env, cwd, log, ready_url) as proc:
        if check:
            first = run_load(HOST, port, [check[0]], 1, 1, keep_bodies=True)
            if first.non_200:
                raise RuntimeError(f"check request answered {dict(first.statuses)}: {first.bodies[0][:300]!r}")
            out["checked"] = check[1](first.bodies[0])
        warm = run_load(HOST, port, requests, 50, 8)
        one = run_load(HOST, port, requests, n // 2, 1)
        before = tree_cpu(proc.pid)
        eight = run_load(HOST, port, requests, n, 8)
        cpu, per_process = cpu_between(before, tree_cpu(proc.pid))
        bad = warm.non_200 + one.non_200 + eight.non_200
        if bad:  # a refused request is fast: its timing would flatter the server
            raise RuntimeError(f"{bad} requests were not answered 200 (see {log}); its figures would not "
                               "measure scoring")
        answered = len(eight.latencies)
        out |= {**one.figures("1_client"), **eight.figures("8_clients"), "requests_8_clients": answered,
                "server_cpu_ms_per_request": round(cpu / answered * 1000, 2), "server_cpu_s_by_process": per_process,
                "client_cpu_ms_per_request": round(eight.client_cpu_s / answered * 1000, 3), "non_200": 0}
        if then:
            out |= then(proc)
        out["peak_mb"] = tree_peak_mb(proc.pid)
    return out


# ---- mlflow models serve ------------------------------------------------------------------------------
def mlflow_serve_cmd(model_uri: str, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "-p", str(port), "-h", "127.0.0.1",
            "--env-manager", "local", "-w", str(workers)]


def mlflow_body(row: Any) -> bytes:
    """One row of features (a one-row DataFrame in the model's feature order) as mlflow's
    ``dataframe_split`` JSON; missing values go as JSON null."""
    return json.dumps({"dataframe_split": row.reset_index(drop=True).to_dict(orient="split")}).encode()


# ---- MLServer ------------------------------------------------------------------------------------------
def _pip_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
    return " | ".join(lines[-6:])[-1500:] or "no message"


def mlserver_venv(work: Path) -> tuple[Path, dict[str, str]]:
    """MLServer's own virtualenv (``<work>/mlserver-venv``), installed on first use with ``pip install
    mlserver mlserver-lightgbm 'uvloop<0.22'`` from PyPI and kept for later runs (reinstalled when that
    list changes): (its bin folder, installed versions).
    Raises ``RuntimeError`` with pip's message when the install fails."""
    venv = work / "mlserver-venv"
    marker = venv / ".bench-installed"
    python = venv / "bin" / "python"
    wanted = " ".join(MLSERVER_PACKAGES)
    if not marker.exists() or marker.read_text().splitlines()[0] != wanted:
        made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True)
        if made.returncode:
            raise RuntimeError(f"python -m venv {venv} failed: {_pip_error(made.stderr)}")
        t0 = time.perf_counter()
        pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              *MLSERVER_PACKAGES], capture_output=True, text=True, timeout=1800)
        if pip.returncode:
            raise RuntimeError(f"pip install {wanted} failed: {_pip_error(pip.stderr)}")
        marker.write_text(f"{wanted}\ninstalled in {time.perf_counter() - t0:.0f} s\n")
    probe = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
             "('mlserver', 'mlserver-lightgbm', 'lightgbm', 'numpy', 'uvloop')}))")
    versions = json.loads(subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                                         check=True).stdout)
    return venv / "bin", versions


def champion_booster(model_uri: str, dst: Path) -> Path:
    """The ``booster.txt`` of a registered model, from its MLflow artifacts (folder ``risk_model``)."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    found = sorted(local.rglob("risk_model/booster.txt"))
    if not found:
        raise RuntimeError(f"no risk_model/booster.txt in the artifacts of {model_uri} ({local})")
    return found[0]


def mlserver_folder(folder: Path, booster: Path, name: str, port: int) -> dict[str, Any]:
    """``settings.json`` and ``model-settings.json`` for ``mlserver start <folder>``; returns the settings.

    Left at MLServer's defaults: ``parallel_workers`` (1 in MLServer 1.7: inference runs in one pool
    process beside the HTTP process), adaptive batching off, gzip, the Prometheus metrics server.
    Set: loopback only, free ports for HTTP, gRPC and metrics, and ``debug: false`` (its production
    setting; ``true``, its default, adds uvicorn's per-request access log).
    """
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"debug": False, "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
                "metrics_port": free_port()}
    model = {"name": name, "implementation": "mlserver_lightgbm.LightGBMModel",
             "parameters": {"uri": str(booster.resolve())}}
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(model, indent=2))
    return {**settings, "model": model}


def v2_body(row: Sequence[float]) -> bytes:
    """A V2 inference request for one household: one FP64 input of shape [1, n_features] in the
    booster's feature order. JSON has no NaN: a missing value goes as ``null``, which MLServer's NumPy
    codec turns back into NaN (``np.array([None], dtype=float64)``), as LightGBM expects for missing."""
    data = [None if math.isnan(v) else float(v) for v in row]
    return json.dumps({"inputs": [{"name": "features", "shape": [1, len(data)], "datatype": "FP64",
                                   "data": data}]}).encode()


def v2_prediction(body: bytes) -> float:
    """The one number of a V2 inference response (the LightGBM runtime's ``Booster.predict``)."""
    out = json.loads(body)["outputs"][0]
    return float(out["data"][0])


def mlserver_peer(work: Path, env: dict[str, str], rows: Any, booster: Any, model_uri: str, n: int
                  ) -> dict[str, Any]:
    """MLServer as a peer: its virtualenv, the registered model's ``booster.txt``, one V2 request per
    household (``rows``: an (n, n_features) float array in the booster's feature order). Before any
    timing, its answer for a row with missing values must equal ``booster.predict`` of that row."""
    import numpy as np

    bin_dir, versions = mlserver_venv(work)
    booster_file = champion_booster(model_uri, work / "champion_artifacts")
    name, port, folder = "illness_poverty", free_port(), work / "mlserver"
    settings = mlserver_folder(folder / "repository", booster_file, name, port)
    x = np.asarray(rows, dtype="float64")
    k = int(np.argmax(np.isnan(x).any(axis=1)))  # the first row with a missing value: the JSON null path

    def check(body: bytes) -> dict[str, Any]:
        theirs, ours = v2_prediction(body), float(booster.predict(x[k:k + 1])[0])
        if abs(theirs - ours) > 1e-12:
            raise RuntimeError(f"MLServer answered {theirs!r} for row {k}, Booster.predict {ours!r}")
        return {"row": k, "missing_values": int(np.isnan(x[k]).sum()), "mlserver": theirs, "booster_predict": ours}

    url, headers = f"/v2/models/{name}/infer", {"Content-Type": "application/json"}
    bodies = [v2_body(r) for r in x]
    penv = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
    penv.pop("VIRTUAL_ENV", None)
    figures = measure_server([str(bin_dir / "mlserver"), "start", str(folder / "repository")], penv, folder / "run",
                             f"http://{HOST}:{port}/v2/models/{name}/ready", port,
                             encode_posts(HOST, port, url, bodies, headers), n,
                             check=(encode_posts(HOST, port, url, [bodies[k]], headers)[0], check))
    return {"workers": "parallel_workers left at its default (1 in MLServer 1.7)", "versions": versions,
            "settings": settings, "booster": str(booster_file),
            "answers": "score only (feature row given): Booster.predict probability",
            "missing_values_sent_as": "JSON null, decoded to NaN by MLServer's NumPy codec", **figures}
