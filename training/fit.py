"""Fitting one risk model: LightGBM with policy's monotone constraints and early stopping on the
validation snapshot, Platt calibration on that same held-out snapshot, thresholds from capacity."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.calibration import PlattCalibrator
from models.lgbm import lgbm_params
from models.risk_model import RiskModel, Thresholds
from models.schema import FeatureSchema


def thresholds_for(p: np.ndarray, capacity: float) -> Thresholds:
    """The probabilities at which the top ``capacity`` (high) and next ``2 × capacity`` (medium)
    of the calibration period's households start."""
    flag = float(np.quantile(p, 1.0 - capacity))
    medium = float(np.quantile(p, max(0.0, 1.0 - 3.0 * capacity)))
    return Thresholds(flag=flag, medium=min(medium, flag), capacity=capacity)


def fit_risk_model(risk: str, schema: FeatureSchema, train: pd.DataFrame, validation: pd.DataFrame, *,
                   capacity: float, seed: int = 0, num_boost_round: int = 1000, early_stopping_rounds: int = 50,
                   params: dict | None = None) -> tuple[RiskModel, dict]:
    """``train`` and ``validation`` carry the schema's feature columns and ``label``."""
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
    raw_val = np.asarray(booster.predict(x_val, raw_score=True))
    calibrator = PlattCalibrator().fit(raw_val, validation["label"].to_numpy())
    model = RiskModel(risk=risk, booster=booster, schema=schema, calibrator=calibrator,
                      thresholds=thresholds_for(calibrator.transform(raw_val), capacity))
    facts = {"best_iteration": booster.best_iteration, "num_trees": booster.num_trees(),
             "params": p, "validation_curve": {k: v[: booster.best_iteration] for k, v in evals["validation"].items()}}
    return model, facts
