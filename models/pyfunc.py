"""The MLflow pyfunc that bundles a :class:`RiskModel`: the model folder is an MLflow artifact and
this package travels with it as code, so ``mlflow.pyfunc.load_model("models:/illness_poverty@champion")``
works anywhere the dependencies are installed, and ``mlflow models serve`` can serve it.

Input: a frame of features in schema order (``features.build_features`` output). Output: one row
per input row with ``probability``, ``raw_score``, ``band`` and ``flagged``. With
``params={"explain": True}`` it adds ``base_value`` and one ``contrib__<feature>`` column per feature.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from models.risk_model import RiskModel

ARTIFACT_KEY = "risk_model"


class RiskPyfunc(mlflow.pyfunc.PythonModel):
    """Holds no state until ``load_context``: everything comes from the logged artifact folder."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = RiskModel.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        frame = frame.astype("float64")
        out = self.model.predict_frame(frame)
        if params and params.get("explain"):
            rows = self.model.score_rows(frame)
            out["base_value"] = [r["base_value"] for r in rows]
            for fid in self.model.schema.ids:
                out[f"contrib__{fid}"] = [r["contributions"][fid] for r in rows]
        return out.reset_index(drop=True)


def load_risk_model(model_uri: str) -> tuple[RiskModel, dict[str, Any]]:
    """Loads a registered pyfunc and returns the :class:`RiskModel` inside it and its MLflow facts."""
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    inner = pyfunc.unwrap_python_model()
    meta = pyfunc.metadata
    return inner.model, {"run_id": meta.run_id, "model_uuid": meta.model_uuid}
