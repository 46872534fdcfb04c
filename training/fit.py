"""Fitting one risk model: LightGBM with policy's monotone constraints and early stopping on the
validation snapshot, Platt calibration on that same held-out snapshot, and the band lines of
``[bands]`` (models/bands.py) on it, with the risk's cause."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.bands import BandRule, Cause
from models.calibration import PlattCalibrator
from models.lgbm import lgbm_params
from models.risk_model import RiskModel, Thresholds
from models.schema import FeatureSchema


def calibrated_model(risk: str, booster: lgb.Booster, schema: FeatureSchema, x_val: np.ndarray, y_val: np.ndarray,
                     bands: BandRule | None = None) -> RiskModel:
    """The model of ``booster``: Platt calibration on the validation raw scores, the risk's cause
    (``features.risks.RISK_CAUSES``), and the band lines ``bands`` sets on the validation households
    (``BandRule.load()``, the packaged policy file's, by default)."""
    bands = bands or BandRule.load()
    raw_val = np.asarray(booster.predict(x_val, raw_score=True))
    calibrator = PlattCalibrator().fit(raw_val, y_val)
    cause = Cause.of(risk) if schema.risk == risk else None
    present = None if cause is None else cause.present_in(x_val, schema.ids)
    flag, medium = bands.lines(risk, calibrator.transform(raw_val), present)
    return RiskModel(risk=risk, booster=booster, schema=schema, calibrator=calibrator, cause=cause,
                     thresholds=Thresholds(flag=flag, medium=medium, capacity=bands.share[risk]),
                     meta={"bands": {"share": bands.share[risk], "capacity": bands.capacity,
                                     "high_min_probability": bands.high_min_probability,
                                     "medium_min_probability": bands.medium_min_probability}})


def fit_risk_model(risk: str, schema: FeatureSchema, train: pd.DataFrame, validation: pd.DataFrame, *,
                   bands: BandRule | None = None, seed: int = 0, num_boost_round: int = 1000,
                   early_stopping_rounds: int = 50, params: dict | None = None) -> tuple[RiskModel, dict]:
    """``train`` and ``validation`` carry the schema's feature columns and ``label``; ``bands``: the
    policy file's ``[bands]`` (the packaged file's by default)."""
    p = lgbm_params(schema, seed=seed, **(params or {}))
    x_train = schema.validate(train[schema.ids])
    x_val = schema.validate(validation[schema.ids])
    d_train = lgb.Dataset(x_train, label=train["label"].to_numpy(), feature_name=schema.ids, free_raw_data=True)
    d_val = lgb.Dataset(x_val, label=validation["label"].to_numpy(), reference=d_train)
    evals: dict = {}
    booster = lgb.train(
        {**p, "metric": ["binary_logloss", "auc"]}, d_train, num_boost_round=num_boost_round,
        valid_sets=[d_val], valid_names=["validation"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False),
                   lgb.record_evaluation(evals)],
    )
    booster.free_dataset()
    model = calibrated_model(risk, booster, schema, x_val, validation["label"].to_numpy(), bands)
    facts = {"best_iteration": booster.best_iteration, "num_trees": booster.num_trees(),
             "params": p, "validation_curve": {k: v[: booster.best_iteration] for k, v in evals["validation"].items()}}
    return model, facts
