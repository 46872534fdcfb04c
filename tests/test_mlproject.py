"""`mlflow run` drives the stages as MLproject entry points, as the README gives it: the virtualenv's
`mlflow` called by its path, with neither it nor `relief-risk` on the PATH, into a fresh tracking store;
and which run training logs into, inside `mlflow run` and outside (``training_run``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient, fluent

from tests.conftest import ROOT, tracking_uri
from training.pipeline import _parent_run, training_run

VENV_BIN = Path(sys.executable).parent
CLEAN_PATH = os.pathsep.join(("/usr/local/bin", "/usr/bin", "/bin"))  # the virtualenv's bin is not on it


@pytest.fixture(scope="module")
def small_city(tmp_path_factory) -> Path:
    """3,000 households: enough illness_poverty findings to train on, a fit of seconds."""
    from features.io import write_tables
    from synthcity import generate_city

    out = tmp_path_factory.mktemp("small_city")
    city = generate_city(3000, seed=7)
    write_tables({**city.tables(), "truth": city.truth}, out)
    return out


def mlflow_run(cwd: Path, entry_point: str, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """``<venv>/bin/mlflow run <project> -e <entry_point> --env-manager local ARGS`` in a clean
    environment (a minimal PATH, a SQLite tracking store in ``cwd``), from ``cwd``."""
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    env = {"HOME": os.environ.get("HOME", str(cwd)), "PATH": CLEAN_PATH, "MLFLOW_TRACKING_URI": uri,
           "PYTHONPATH": str(ROOT),  # this checkout, whichever one the virtualenv has installed
           "LANG": "C.UTF-8"}
    r = subprocess.run([str(VENV_BIN / "mlflow"), "run", str(ROOT), "-e", entry_point, "--env-manager", "local",
                        *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r, uri


@pytest.mark.slow
@pytest.mark.parametrize("experiment", [None, "relief-risk-project"], ids=["plain", "experiment-name"])
def test_mlflow_run_train_entry_point(tmp_path, small_city, experiment):
    named = ["--experiment-name", experiment] if experiment else []
    _, uri = mlflow_run(tmp_path, "train", *named, "-P", f"data={small_city}", "-P", "capacity=0.03")

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment or "Default")
    (run,) = client.search_runs([exp.experiment_id])  # the run `mlflow run` opened, and no other
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.data.tags["risk"] == "illness_poverty"
    assert run.data.params["capacity"] == "0.03"
    assert {"test_model_recall", "test_model_roc_auc", "validation_auc"} <= run.data.metrics.keys()
    assert 0.5 < run.data.metrics["test_model_roc_auc"] <= 1
    others = [e.name for e in client.search_experiments() if e.experiment_id != exp.experiment_id
              and client.search_runs([e.experiment_id])]
    assert others == []  # nothing logged into an experiment of its own

    version = client.get_model_version_by_alias("illness_poverty", "champion")
    assert (str(version.version), version.run_id) == ("1", run.info.run_id)
    assert (tmp_path / "mlruns").is_dir()  # the artifacts beside the store, not in the project folder


@pytest.mark.slow
def test_mlflow_run_generate_entry_point(tmp_path):
    out = tmp_path / "city"
    mlflow_run(tmp_path, "generate", "-P", "households=200", "-P", "months=24", "-P", f"out={out}")
    households = pd.read_parquet(out / "households.parquet")
    assert len(households) == 200
    assert {p.stem for p in out.glob("*.parquet")} >= {"households", "persons", "income", "claims", "assistance",
                                                       "verifications"}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh tracking store, no project run in the environment, MLflow's active experiment restored after."""
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)
    with tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}"):
        yield MlflowClient()


def project_run(client: MlflowClient, monkeypatch) -> tuple[str, str]:
    """What `mlflow run` does before the entry point: a run in its experiment, named by MLFLOW_RUN_ID."""
    experiment_id = client.create_experiment("project")
    run_id = client.create_run(experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    return experiment_id, run_id


def test_training_run_outside_mlflow_run_is_a_new_run_in_its_experiment(store):
    with training_run("relief-risk", "illness_poverty-2026-04-30") as run:
        pass
    assert store.get_experiment_by_name("relief-risk").experiment_id == run.info.experiment_id
    assert run.info.run_name == "illness_poverty-2026-04-30"
    assert store.get_run(run.info.run_id).info.status == "FINISHED"


def test_training_run_in_mlflow_run_logs_into_its_run_and_experiment(store, monkeypatch):
    experiment_id, run_id = project_run(store, monkeypatch)
    with training_run("relief-risk", "illness_poverty-2026-04-30") as run:
        mlflow.log_metric("m", 1.0)
    assert (run.info.run_id, run.info.experiment_id) == (run_id, experiment_id)
    assert store.get_run(run_id).data.metrics == {"m": 1.0}
    assert store.get_experiment_by_name("relief-risk") is None  # no experiment of its own
    assert "MLFLOW_RUN_ID" not in os.environ  # consumed: a later run is a new one


def test_several_risks_in_mlflow_run_are_children_of_its_run(store, monkeypatch):
    experiment_id, run_id = project_run(store, monkeypatch)
    children = []
    with _parent_run(["illness_poverty", "elderly_care_need"]):
        for risk in ("illness_poverty", "elderly_care_need"):
            with training_run("relief-risk", risk) as run:
                children.append(run.info.run_id)
    assert len(set(children)) == 2 and run_id not in children
    for child in map(store.get_run, children):
        assert (child.info.experiment_id, child.data.tags["mlflow.parentRunId"]) == (experiment_id, run_id)
    assert store.get_run(run_id).data.tags["risks"] == "illness_poverty,elderly_care_need"
    assert store.get_experiment_by_name("relief-risk") is None
