"""Exact explanations (path-dependent TreeSHAP: ``models.fast_shap``, or LightGBM's own
``pred_contrib`` where the fast path does not apply; the same values) and reasons a caseworker reads.

Contributions are in the raw (log-odds) scale: ``base_value + sum(contributions) = raw score``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from models.fast_shap import FastTreeShap
from models.schema import FeatureSchema

log = logging.getLogger(__name__)

TOP_REASONS = 5  # contract: at most 5; Regulation B's experience says more than four rarely helps


@dataclass(frozen=True)
class Explanation:
    base_value: float
    raw_score: float
    contributions: dict[str, float]


def explainer_for(booster: lgb.Booster) -> FastTreeShap | None:
    """The fast exact explainer of ``booster`` (built once, at model load), warmed up so that the
    first request does not pay numba's compilation; None where it does not apply (categorical
    splits, linear trees, …): then LightGBM's own ``pred_contrib`` explains."""
    try:
        explainer = FastTreeShap.from_booster(booster)
    except ValueError as exc:
        log.info("fast TreeSHAP does not apply (%s): explanations use pred_contrib", exc)
        return None
    explainer.contributions(np.zeros((1, booster.num_feature())))
    return explainer


def contributions(booster: lgb.Booster, x: np.ndarray, explainer: FastTreeShap | None = None) -> np.ndarray:
    """``(n, n_features + 1)``: per-feature contributions, base value in the last column. The same
    values (to ~1e-15) whether ``explainer`` (the fast path, ``models.fast_shap``) or LightGBM's
    ``pred_contrib`` computes them."""
    if explainer is not None:
        return explainer.contributions(x)
    return np.asarray(booster.predict(x, pred_contrib=True), dtype="float64")


def explain_rows(booster: lgb.Booster, schema: FeatureSchema, x: np.ndarray,
                 explainer: FastTreeShap | None = None) -> list[Explanation]:
    contrib = contributions(booster, x, explainer)
    ids = schema.ids
    out = []
    for row in contrib:
        base = float(row[-1])
        parts = {fid: float(v) for fid, v in zip(ids, row[:-1], strict=True)}
        out.append(Explanation(base_value=base, raw_score=base + float(row[:-1].sum()), contributions=parts))
    return out


def format_value(value: float, unit: str) -> str:
    """The household's own value as a caseworker reads it (``20,300 元``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "未报告"
    if unit == "是否":
        return "是" if value >= 0.5 else "否"
    if unit in ("元", "元/人·月"):
        return f"{value:,.0f} {unit}"
    if unit == "比值":
        return f"{value:.2f}"
    return f"{value:,.0f} {unit}"


def top_reasons(explanation: Explanation, schema: FeatureSchema, values: np.ndarray,
                k: int = TOP_REASONS) -> list[dict]:
    """The k features with the largest absolute contribution, largest first, in Chinese.

    A feature that contributed exactly nothing is no reason, so fewer than k may come back.
    """
    row = np.array([explanation.contributions[e.id] for e in schema.entries])
    return reasons_from(row, np.asarray(values, dtype="float64"), schema, k)


def reasons_from(contributions: np.ndarray, values: np.ndarray, schema: FeatureSchema,
                 k: int = TOP_REASONS) -> list[dict]:
    """:func:`top_reasons` from one row of contributions (schema order, without the base value) and
    the household's feature values (schema order): ties in size go to the feature listed first."""
    order = np.argsort(-np.abs(contributions), kind="stable")[:k].tolist()
    picked = contributions[order].tolist()
    shown = values[order].tolist()
    out = []
    unreported = schema.unreported
    for j, c, v in zip(order, picked, shown, strict=True):
        if c == 0.0 and out:
            break
        e = schema.entries[j]
        # an income of 0 that stands for nothing reported is shown as such, not as an income of 0
        said = "无收入记录（按 0 计）" if j in unreported and values[unreported[j]] >= 0.5 else format_value(v, e.unit)
        out.append({
            "feature": e.id, "label": e.label_zh,
            "value": None if math.isnan(v) else v,
            "display": f"{e.label_zh}：{said}",
            "contribution": c,
            "direction": "raises" if c > 0 else ("lowers" if c < 0 else "none"),
        })
    return out
