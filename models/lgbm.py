"""LightGBM settings. ``max_depth`` is capped: TreeSHAP costs grow with depth squared, so depth is
a speed parameter as well as a quality one.

Monotone constraints come from the schema: the catalog's policy directions and, for a risk's
schema, the risk's own (``features.catalog.RISK_DIRECTIONS``). They are enforced with the
``intermediate`` method: LightGBM 4.7's ``advanced`` method can break them (an illness model trained
with it lowered its score as ``oop_3m`` rose; LightGBM issues #5358 and #6155 report the same), and the
constraints are what the twins tests (tests/test_risks.py) and the service's promise rest on.

Missing values: every model learns where a missing value goes at each split (LightGBM's default).
A learned direction is no promise, so no twin pair may differ in what is missing: the one that did,
an income nobody reported, is said instead (``no_income_reported_12m`` / ``_3m``, which never lower
risk, and the income 0: features/income.py), and a twin whose earners lost everything never looks
better off than its twin with wages. ``use_missing=False`` (every NaN read as 0) is set for no risk;
``models.fast_shap`` still reads models that set it.
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
    "disability_poverty": {"learning_rate": 0.02},
    # With few findings the recent-income features crowd out the employment status in every tree;
    # half the features per tree spreads the weight over both traces of a job loss.
    "unemployment_poverty": {"feature_fraction": 0.5},
    "elderly_care_need": {},
    "child_in_difficulty": {},
}


def lgbm_params(schema: FeatureSchema, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Parameters with the schema's directions as monotone constraints and its risk's settings."""
    return {**DEFAULTS, **RISK_PARAMS.get(schema.risk or "", {}), "monotone_constraints": schema.monotone_constraints,
            "seed": seed, **overrides}
