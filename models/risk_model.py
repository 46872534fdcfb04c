"""What a risk model is: a LightGBM booster in its own text format, the feature schema, the
calibration and the capacity thresholds, all in one self-describing folder.

    model_dir/
      booster.txt       LightGBM's own format
      model_meta.json   risk, schema, calibration, thresholds, policy version, training facts
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.calibration import PlattCalibrator
from models.explain import Explanation, contributions, explain_rows, explainer_for, reasons_from, top_reasons
from models.fast_shap import FastTreeShap
from models.schema import FeatureSchema, FeatureSchemaError

BOOSTER_FILE = "booster.txt"
META_FILE = "model_meta.json"
BANDS = ("high", "medium", "low")
_BAND_NAMES = np.array(BANDS, dtype=object)


@dataclass(frozen=True)
class Thresholds:
    """Probability cut-offs from caseworker capacity: ``flag`` = the top ``capacity`` share of the
    calibration period's households; ``medium`` = the next ``2 × capacity``."""

    flag: float
    medium: float
    capacity: float

    def band(self, p: np.ndarray) -> np.ndarray:
        """``high`` / ``medium`` / ``low`` per probability, as Python strings (an object array: taking
        from it copies pointers, where ``np.where`` on strings would build fixed-width strings)."""
        return _BAND_NAMES[np.where(p >= self.flag, 0, np.where(p >= self.medium, 1, 2))]


@dataclass(frozen=True)
class MatrixScores:
    """Scores and exact explanations of the rows of a feature matrix (schema order)."""

    contributions: np.ndarray  # (n, n_features + 1), log-odds, base value last
    raw_score: np.ndarray      # base value + the sum of the contributions
    probability: np.ndarray    # calibrated
    band: np.ndarray           # "high" / "medium" / "low" (object array)
    flagged: np.ndarray        # bool


@dataclass
class RiskModel:
    risk: str
    booster: lgb.Booster
    schema: FeatureSchema
    calibrator: PlattCalibrator
    thresholds: Thresholds
    meta: dict[str, Any] = field(default_factory=dict)
    _explainer: Any = field(default=None, init=False, repr=False, compare=False)

    def explainer(self) -> FastTreeShap | None:
        """The fast exact explainer, built on first use (the service builds it at load)."""
        if self._explainer is None:
            self._explainer = explainer_for(self.booster) or False
        return self._explainer or None

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP, ``(n, n_features + 1)``, base value last."""
        return contributions(self.booster, x, self.explainer())

    # ---- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(d / BOOSTER_FILE))
        doc = {
            **self.meta, "risk": self.risk,
            "feature_schema": json.loads(self.schema.to_json()),
            "calibration": self.calibrator.to_dict(),
            "thresholds": {"flag": self.thresholds.flag, "medium": self.thresholds.medium,
                           "capacity": self.thresholds.capacity},
            "explanation": {"algorithm": "exact path-dependent TreeSHAP (models.fast_shap; equal to LightGBM "
                                         "pred_contrib to 1e-9)", "scale": "log-odds",
                            "top_reasons": 5},
        }
        (d / META_FILE).write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> RiskModel:
        d = Path(directory)
        doc = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        schema = FeatureSchema.from_json(json.dumps(doc.pop("feature_schema")))
        booster = lgb.Booster(model_file=str(d / BOOSTER_FILE))
        if booster.feature_name() != schema.ids:
            raise ValueError(f"{d}: the booster's features differ from its schema")
        t = doc.pop("thresholds")
        return cls(risk=doc.pop("risk"), booster=booster, schema=schema,
                   calibrator=PlattCalibrator.from_dict(doc.pop("calibration")),
                   thresholds=Thresholds(flag=t["flag"], medium=t["medium"], capacity=t["capacity"]), meta=doc)

    # ---- scoring ------------------------------------------------------------------------------
    def positions(self, feature_ids: Sequence[str]) -> np.ndarray:
        """Where each of this model's features sits among ``feature_ids`` (e.g. the catalogue's
        ``FEATURE_IDS``, the columns of :func:`features.build.feature_matrix`); cached per order."""
        key = tuple(feature_ids)
        cache = self.__dict__.setdefault("_positions", {})
        if key not in cache:
            where = {f: j for j, f in enumerate(key)}
            missing = [f for f in self.schema.ids if f not in where]
            if missing:
                raise FeatureSchemaError(f"the features lack {missing}, which the model of {self.risk} needs")
            cache[key] = np.array([where[f] for f in self.schema.ids], dtype=np.intp)
        return cache[key]

    def score_matrix(self, x: np.ndarray) -> MatrixScores:
        """Scores and exact explanations of the rows of ``x`` (schema order, checked by the caller
        with ``schema.check_matrix`` or ``row_problems``). The raw score is the base value plus the
        contributions, as in :meth:`score_rows`: the explanation and the score are one computation."""
        contrib = self.contributions(np.ascontiguousarray(x, dtype="float64"))
        raw = contrib[:, -1] + contrib[:, :-1].sum(axis=1)
        p = self.calibrator.transform(raw)
        return MatrixScores(contributions=contrib, raw_score=raw, probability=p, band=self.thresholds.band(p),
                            flagged=p >= self.thresholds.flag)

    def reasons(self, contributions: np.ndarray, values: np.ndarray) -> list[dict[str, Any]]:
        """The top reasons of one row of :attr:`MatrixScores.contributions` (base value last) and
        its feature values (schema order), as the API returns them."""
        return reasons_from(contributions[:-1], values, self.schema)

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        ids = self.schema.ids
        if list(features.columns) != ids and set(ids) <= set(features.columns):
            features = features.loc[:, ids]  # (a .loc on a one-row frame costs more than the model)
        return self.schema.validate(features)

    def raw_score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, raw_score=True), dtype="float64")

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Probability, raw score, band and flag per row; no explanations (the cheap path)."""
        x = self.matrix(features)
        raw = self.raw_score(x)
        p = self.calibrator.transform(raw)
        return pd.DataFrame({"probability": p, "raw_score": raw, "band": self.thresholds.band(p),
                             "flagged": p >= self.thresholds.flag}, index=features.index)

    def score_rows(self, features: pd.DataFrame) -> list[dict[str, Any]]:
        """Scores and exact explanations per row, as the API returns and the audit keeps them."""
        x = self.matrix(features)
        explanations: list[Explanation] = explain_rows(self.booster, self.schema, x, self.explainer())
        raw = np.array([e.raw_score for e in explanations])
        p = self.calibrator.transform(raw)
        bands = self.thresholds.band(p)
        return [{
            "probability": float(p[i]), "band": str(bands[i]), "flagged": bool(p[i] >= self.thresholds.flag),
            "base_value": e.base_value, "raw_score": e.raw_score,
            "reasons": top_reasons(e, self.schema, x[i]), "contributions": e.contributions,
        } for i, e in enumerate(explanations)]
