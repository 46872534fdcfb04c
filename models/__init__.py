"""What a model is: feature schema, LightGBM settings, calibration, exact explanations and the
MLflow pyfunc that bundles them."""

from models.calibration import PlattCalibrator
from models.explain import Explanation, explain_rows, top_reasons
from models.lgbm import lgbm_params
from models.risk_model import RiskModel, Thresholds
from models.schema import FeatureSchema, FeatureSchemaError

__all__ = [
    "Explanation", "FeatureSchema", "FeatureSchemaError", "PlattCalibrator", "RiskModel", "Thresholds",
    "explain_rows", "lgbm_params", "top_reasons",
]
