"""Session fixtures: one small synthetic city, one seconds-long model trained into a temporary
MLflow store (a real SQLite-backed tracking store and registry), and the app on top of them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_CHECK = ROOT / "checks" / "contract_check.py"
TEST_HOUSEHOLDS = int(os.environ.get("RELIEF_RISK_TEST_HOUSEHOLDS", "20000"))
KEYS = {"platform": "platform-key-0123456789", "auditor": "auditor-key-0123456789", "admin": "admin-key-0123456789"}
KEYS_ENV = ",".join(f"{r}:{k}" for r, k in KEYS.items())


@pytest.fixture(scope="session")
def policy():
    from features.io import load_policy_book

    return load_policy_book()


@pytest.fixture(scope="session")
def city_dir(tmp_path_factory) -> Path:
    from features.io import write_tables
    from synthcity import generate_city

    out = tmp_path_factory.mktemp("city")
    city = generate_city(TEST_HOUSEHOLDS, seed=7)
    write_tables({**city.tables(), "truth": city.truth}, out)
    return out


@pytest.fixture(scope="session")
def city_tables(city_dir, policy):
    from features.io import read_tables

    return read_tables(city_dir, policy=policy)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    store = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri() if os.environ.get("MLFLOW_TRACKING_URI") else None
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    # artifacts in the temporary folder too, not in ./mlruns of wherever pytest was started
    mlflow.create_experiment("relief-risk", artifact_location=(store / "artifacts").as_uri())
    yield uri
    if previous:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    else:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def trained(city_dir, mlflow_uri):
    from training.pipeline import TrainConfig, train

    return train(TrainConfig(data_dir=str(city_dir), capacity=0.03, num_boost_round=300, progress=False))


@contextlib.contextmanager
def tracking_uri(uri: str):
    """MLflow pointed at ``uri`` (the environment too: ``MlflowClient()`` reads it) for the block."""
    before_env, before = os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri()
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        if before_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before_env
        mlflow.set_tracking_uri(before)


@pytest.fixture(scope="session")
def risks_mlflow_uri(tmp_path_factory, mlflow_uri) -> str:
    """A store of its own for the other four risks' models, so that the apps and servers the other
    tests start (which serve every registered risk) see the same registry whatever the test order."""
    store = tmp_path_factory.mktemp("mlflow_risks")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    with tracking_uri(uri):
        mlflow.create_experiment("relief-risk", artifact_location=(store / "artifacts").as_uri())
    return uri


@pytest.fixture(scope="session")
def trained_risks(city_dir, risks_mlflow_uri):
    """The other four findings' models, trained on the same city at 2% capacity (one read of the data,
    one set of snapshots) and registered as champions in ``risks_mlflow_uri``: {risk: TrainResult}."""
    from training.pipeline import RISKS, TrainConfig, train_all

    with tracking_uri(risks_mlflow_uri):
        outcome = train_all(TrainConfig(data_dir=str(city_dir), num_boost_round=300, progress=False),
                            [r for r in RISKS if r != "illness_poverty"])
    assert not outcome.skipped, outcome.skipped
    return outcome.results


@pytest.fixture(scope="session")
def risk_champions(champion, trained_risks, risks_mlflow_uri):
    """All five champions, loaded from their registries: {risk: RiskModel}."""
    from models.pyfunc import load_risk_model

    with tracking_uri(risks_mlflow_uri):
        others = {r: load_risk_model(f"models:/{r}@champion")[0] for r in trained_risks}
    return {"illness_poverty": champion, **others}


@pytest.fixture(scope="session")
def champion(trained):
    from models.pyfunc import load_risk_model

    model, _ = load_risk_model("models:/illness_poverty@champion")
    return model


@pytest.fixture(scope="session")
def settings(trained, mlflow_uri, tmp_path_factory):
    from serving.settings import Settings

    audit = tmp_path_factory.mktemp("audit") / "audit.db"
    # funnel_ttl=0: the pages' tests read the funnel right after recording the help they count
    return Settings(api_keys=KEYS_ENV, audit_url=f"sqlite:///{audit}", mlflow_tracking_uri=mlflow_uri, funnel_ttl=0)


@pytest.fixture(scope="session")
def client(settings):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Until ``/readyz`` answers 200; the server's log in the error if it exits or never gets there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server not ready: {log.read_text()[-3000:]}")


def start_server(workdir: Path, mlflow_uri: str, *args: str, timeout: float = 120
                 ) -> tuple[subprocess.Popen, str, Path]:
    """``relief-risk serve`` (plus ``args``) started by the CLI as an operator would, on a free loopback
    port, with the test keys, ``mlflow_uri`` and an audit store in ``workdir``; returns (the process,
    its URL, its log) once ``/readyz`` answers 200. The caller stops the process."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "RELIEF_RISK_LOG_FORMAT")}
    env |= {"RELIEF_RISK_API_KEYS": KEYS_ENV, "MLFLOW_TRACKING_URI": mlflow_uri,
            "RELIEF_RISK_AUDIT_URL": f"sqlite:///{workdir / 'audit.db'}"}
    log = workdir / "server.log"
    with log.open("w") as out:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "relief_risk.cli", "serve", "--port", str(port), *args],
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log, timeout=timeout)
    return proc, url, log


@pytest.fixture(scope="session")
def live_server(trained, mlflow_uri, tmp_path_factory):
    """A real uvicorn process on loopback, started by the CLI as an operator would."""
    proc, url, log = start_server(tmp_path_factory.mktemp("server"), mlflow_uri)
    yield {"url": url, "proc": proc, "log": log}
    proc.terminate()
    proc.wait(timeout=30)
