"""What a risk model is: a LightGBM booster in its own text format, the feature schema, the
calibration, the band lines and the risk's cause, all in one self-describing folder.

    model_dir/
      booster.txt       LightGBM's own format
      model_meta.json   risk, schema, calibration, thresholds, cause, policy version, training facts

What ``band`` and ``flagged`` mean is models/bands.py's one rule.
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

from models.bands import BANDS, Cause, bands_of, visit_order
from models.calibration import PlattCalibrator
from models.explain import Explanation, contributions, explain_rows, explainer_for, reasons_from, top_reasons
from models.fast_shap import FastTreeShap
from models.schema import FeatureSchema, FeatureSchemaError

BOOSTER_FILE = "booster.txt"
META_FILE = "model_meta.json"
__all__ = ["BANDS", "MatrixScores", "RiskModel", "Thresholds"]


@dataclass(frozen=True)
class Thresholds:
    """The band lines (models/bands.py): ``flag`` = the probability from which a household with the
    risk's cause is high and flagged, ``medium`` = from which it is medium; ``capacity`` = the share
    of households the flag line was set to take (the risk's share of the worklists)."""

    flag: float
    medium: float
    capacity: float

    def band(self, p: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """``high`` / ``medium`` / ``low`` per probability; ``low`` wherever the cause is absent."""
        return bands_of(p, self.flag, self.medium, present)

    def flagged(self, p: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        out = p >= self.flag
        return out if present is None else out & present


@dataclass(frozen=True)
class MatrixScores:
    """Scores and exact explanations of the rows of a feature matrix (schema order)."""

    contributions: np.ndarray  # (n, n_features + 1), log-odds, base value last
    raw_score: np.ndarray      # base value + the sum of the contributions
    probability: np.ndarray    # calibrated
    band: np.ndarray           # "high" / "medium" / "low" (object array)
    flagged: np.ndarray        # bool: band == "high"
    cause_present: np.ndarray | None  # bool per row; None: the model has no cause gate


@dataclass
class RiskModel:
    risk: str
    booster: lgb.Booster
    schema: FeatureSchema
    calibrator: PlattCalibrator
    thresholds: Thresholds
    meta: dict[str, Any] = field(default_factory=dict)
    cause: Cause | None = None  # the hard rule beside the model (models/bands.py); None: no gate
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
            "cause": None if self.cause is None else self.cause.as_dict(),
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
        cause = Cause.from_dict(doc.pop("cause", None))  # absent in a model saved before the gate: none
        if cause is not None and cause.feature not in schema.ids:
            raise ValueError(f"{d}: the cause's feature {cause.feature!r} is not among the model's features")
        return cls(risk=doc.pop("risk"), booster=booster, schema=schema,
                   calibrator=PlattCalibrator.from_dict(doc.pop("calibration")),
                   thresholds=Thresholds(flag=t["flag"], medium=t["medium"], capacity=t["capacity"]), meta=doc,
                   cause=cause)

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

    def cause_present(self, x: np.ndarray) -> np.ndarray | None:
        """Per row of ``x`` (schema order): does the household have the risk's cause? None: no gate."""
        return None if self.cause is None else self.cause.present_in(x, self.schema.ids)

    def priority(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The order a visit list takes: the probability, and below everyone (-1) a household without
        the risk's cause. What training ranks the model by at capacity, as the worklist does.
        ``features``: a frame with the schema's columns, or a matrix in schema order already checked."""
        x = self.matrix(features) if isinstance(features, pd.DataFrame) else features
        return visit_order(self.calibrator.transform(self.raw_score(x)), self.cause_present(x))

    def score_matrix(self, x: np.ndarray) -> MatrixScores:
        """Scores and exact explanations of the rows of ``x`` (schema order, checked by the caller
        with ``schema.check_matrix`` or ``row_problems``). The raw score is the base value plus the
        contributions, as in :meth:`score_rows`: the explanation and the score are one computation."""
        contrib = self.contributions(np.ascontiguousarray(x, dtype="float64"))
        raw = contrib[:, -1] + contrib[:, :-1].sum(axis=1)
        p = self.calibrator.transform(raw)
        present = self.cause_present(x)
        return MatrixScores(contributions=contrib, raw_score=raw, probability=p, band=self.thresholds.band(p, present),
                            flagged=self.thresholds.flagged(p, present), cause_present=present)

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
        present = self.cause_present(x)
        return pd.DataFrame({"probability": p, "raw_score": raw, "band": self.thresholds.band(p, present),
                             "flagged": self.thresholds.flagged(p, present)}, index=features.index)

    def score_rows(self, features: pd.DataFrame) -> list[dict[str, Any]]:
        """Scores and exact explanations per row, as the API returns and the audit keeps them."""
        x = self.matrix(features)
        explanations: list[Explanation] = explain_rows(self.booster, self.schema, x, self.explainer())
        raw = np.array([e.raw_score for e in explanations])
        p = self.calibrator.transform(raw)
        present = self.cause_present(x)
        bands = self.thresholds.band(p, present)
        flagged = self.thresholds.flagged(p, present)
        return [{
            "probability": float(p[i]), "band": str(bands[i]), "flagged": bool(flagged[i]),
            "base_value": e.base_value, "raw_score": e.raw_score,
            "reasons": top_reasons(e, self.schema, x[i]), "contributions": e.contributions,
        } for i, e in enumerate(explanations)]
