"""Exact explanations from LightGBM's own TreeSHAP (``pred_contrib``) and reasons a caseworker reads.

Contributions are in the raw (log-odds) scale: ``base_value + sum(contributions) = raw score``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from models.schema import FeatureSchema

TOP_REASONS = 5  # contract: at most 5; Regulation B's experience says more than four rarely helps


@dataclass(frozen=True)
class Explanation:
    base_value: float
    raw_score: float
    contributions: dict[str, float]


def contributions(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """``(n, n_features + 1)``: per-feature contributions, base value in the last column."""
    return np.asarray(booster.predict(x, pred_contrib=True), dtype="float64")


def explain_rows(booster: lgb.Booster, schema: FeatureSchema, x: np.ndarray) -> list[Explanation]:
    contrib = contributions(booster, x)
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
    ranked = sorted(range(len(schema.entries)),
                    key=lambda j: (-abs(explanation.contributions[schema.entries[j].id]), j))
    out = []
    for j in ranked[:k]:
        e = schema.entries[j]
        c = explanation.contributions[e.id]
        if c == 0.0 and out:
            break
        v = float(values[j])
        out.append({
            "feature": e.id, "label": e.label_zh,
            "value": None if math.isnan(v) else v,
            "display": f"{e.label_zh}：{format_value(v, e.unit)}",
            "contribution": c,
            "direction": "raises" if c > 0 else ("lowers" if c < 0 else "none"),
        })
    return out
