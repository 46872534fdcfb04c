"""`mlflow run` drives the stages as MLproject entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_mlflow_run_generate_entry_point(tmp_path, mlflow_uri):
    out = tmp_path / "city"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = subprocess.run([sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "generate", "--env-manager", "local",
                        "-P", "households=200", "-P", "months=24", "-P", f"out={out}"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    households = pd.read_parquet(out / "households.parquet")
    assert len(households) == 200
    assert {p.stem for p in out.glob("*.parquet")} >= {"households", "persons", "income", "claims", "assistance",
                                                       "verifications"}
