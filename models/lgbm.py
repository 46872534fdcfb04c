"""LightGBM settings. ``max_depth`` is capped: TreeSHAP costs grow with depth squared
(TreeSHAP costs grow with depth squared), so depth is a speed parameter as well as a quality one.

Monotone constraints come from the schema: the catalog's policy directions and, for a risk's
schema, the risk's own (``features.catalog.RISK_DIRECTIONS``). They are enforced with the
``intermediate`` method: LightGBM 4.7's ``advanced`` method can break them (an illness model trained
with it lowered its score as ``oop_3m`` rose; LightGBM issues #5358 and #6155 report the same), and the
constraints are what the twins tests (tests/test_risks.py) and the service's promise rest on.

Missing values: the illness model learns where a missing value goes at each split (LightGBM's
default). The other risks' models read a missing value as 0 (``use_missing=False``: LightGBM maps
NaN to 0 in training and prediction alike, and so does ``models.fast_shap``): the NaN that matters
there is the income of a household with no income row in 12 months, and "no income reported" must
count as no income for the monotone constraints to hold: a twin whose earners lost everything must
never look better off than its twin with wages, whatever the training data had to say about NaN.
"""

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
    "monotone_constraints_method": "intermediate",
    "verbosity": -1,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
}


# Per risk, on top of DEFAULTS (a schema without a risk gets DEFAULTS alone).
RISK_PARAMS: dict[str, dict[str, Any]] = {
    "illness_poverty": {},
    # the rarest finding (≈70 in a 20k city's training snapshots, nearly all where the rule fires):
    # smaller steps and more trees order the tail of the ranking, beyond the rule's households, more finely
    "disability_poverty": {"use_missing": False, "learning_rate": 0.02},
    # With few findings the recent-income features crowd out the employment status in every tree;
    # half the features per tree spreads the weight over both traces of a job loss.
    "unemployment_poverty": {"use_missing": False, "feature_fraction": 0.5},
    "elderly_care_need": {"use_missing": False},
    "child_in_difficulty": {"use_missing": False},
}


def lgbm_params(schema: FeatureSchema, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Parameters with the schema's directions as monotone constraints and its risk's settings."""
    return {**DEFAULTS, **RISK_PARAMS.get(schema.risk or "", {}), "monotone_constraints": schema.monotone_constraints,
            "seed": seed, **overrides}
