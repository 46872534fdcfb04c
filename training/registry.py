"""Logging a trained model and its evidence to MLflow, and registering it under an alias.

The model is logged "from code" (``models/pyfunc_entry.py``) with ``models/`` and ``features/``
as its code paths, so the artifact holds LightGBM's text model, JSON metadata and source: no pickle.
Its requirements are what that source imports, pinned (``training/requirements.py``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from features.cells import neutralise_frame
from models import run_artifacts as artifacts
from models.pyfunc import ARTIFACT_KEY
from models.risk_model import RiskModel
from training.report import RULE_LABELS, Report
from training.requirements import pip_requirements

ROOT = Path(__file__).resolve().parents[1]
# The source that travels with the model; its imports are the model's requirements.
CODE_PATHS = (ROOT / "models", ROOT / "features")


def log_evidence(report: Report, *, schema_json: str, policy_text: str, snapshot: dict[str, Any]) -> None:
    """Metrics, the feature schema, the policy file, the data snapshot, tables and plots of the run."""
    mlflow.log_metrics(report.metrics)
    mlflow.log_text(schema_json, "feature_schema.json")
    mlflow.log_text(policy_text, "policy_parameters.toml")
    mlflow.log_dict(snapshot, "data_snapshot.json")
    # the tables are CSV an auditor may open in Excel: text that would compute is written as text
    mlflow.log_text(neutralise_frame(report.comparison, index=True).to_csv(), artifacts.MODEL_VS_RULES)
    if report.truth_comparison is not None:
        mlflow.log_text(neutralise_frame(report.truth_comparison, index=True).to_csv(),
                        artifacts.MODEL_VS_RULES_TRUTH)
    mlflow.log_dict(RULE_LABELS, artifacts.RULES)
    mlflow.log_text(neutralise_frame(report.calibration).to_csv(index=False), artifacts.CALIBRATION)
    mlflow.log_dict(report.importance, artifacts.GLOBAL_IMPORTANCE)
    for path, fig in report.figures.items():
        mlflow.log_figure(fig, path)
        plt.close(fig)


def log_and_register(model: RiskModel, example: pd.DataFrame, *, alias: str | None, description: str) -> str | None:
    """Logs the pyfunc in the active run; registers it as ``model.risk`` with ``alias`` (unless None)."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = model.save(Path(tmp) / "risk_model")
        example = example.reset_index(drop=True)
        signature = infer_signature(example, model.predict_frame(example).reset_index(drop=True),
                                    params={"explain": False})
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(ROOT / "models" / "pyfunc_entry.py"),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            code_paths=[str(p) for p in CODE_PATHS],
            signature=signature, input_example=example, pip_requirements=pip_requirements(CODE_PATHS),
            registered_model_name=model.risk if alias is not None else None,
        )
    if alias is None:
        return None
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(model.risk, alias, version)
    client.update_model_version(model.risk, version, description=description)
    return version
