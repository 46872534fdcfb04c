"""LightGBM settings. ``max_depth`` is capped: TreeSHAP costs grow with depth squared
(../shared/perf_notes.md), so depth is a speed parameter as well as a quality one."""

from __future__ import annotations

from typing import Any

from models.schema import FeatureSchema

DEFAULTS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": 6,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "monotone_constraints_method": "advanced",
    "verbosity": -1,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
}


def lgbm_params(schema: FeatureSchema, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Parameters with the schema's policy directions as monotone constraints."""
    return {**DEFAULTS, "monotone_constraints": schema.monotone_constraints, "seed": seed, **overrides}
