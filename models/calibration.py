"""Platt calibration of the booster's raw score (log-odds).

Platt scaling is a strictly increasing map, so calibrated probabilities keep the booster's order
(and its monotone constraints) exactly; isotonic regression would flatten ties into plateaus where
an ill household and its healthy twin could get the same probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression


@dataclass
class PlattCalibrator:
    """``p = sigmoid(slope * raw + intercept)``; fitted on held-out data, never the training rows.

    Follows scikit-learn's habits: ``__init__`` stores parameters, ``fit`` learns ``slope_`` and
    ``intercept_`` and returns self.
    """

    C: float = 1e6

    def fit(self, raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        lr = LogisticRegression(C=self.C, solver="lbfgs")
        lr.fit(np.asarray(raw, dtype="float64").reshape(-1, 1), np.asarray(y, dtype=int))
        self.slope_ = float(lr.coef_[0, 0])
        self.intercept_ = float(lr.intercept_[0])
        if not self.slope_ > 0:
            raise ValueError("calibration slope is not positive: the model ranks worse than chance on the "
                             "calibration data")
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        z = self.slope_ * np.asarray(raw, dtype="float64") + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, float | str]:
        return {"method": "platt", "slope": self.slope_, "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, d: dict) -> PlattCalibrator:
        if d.get("method") != "platt":
            raise ValueError(f"unknown calibration method {d.get('method')!r}")
        c = cls()
        c.slope_, c.intercept_ = float(d["slope"]), float(d["intercept"])
        return c
