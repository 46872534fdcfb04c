"""Model against today's rules at the same caseworker capacity, and calibration.

Capacity is the share of households caseworkers can visit in a 180-day window. At capacity c every
scorer (the model or a rule) visits its top ``ceil(c × n)`` households; recall and precision count
the findings among them.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score  # noqa: E402

from features.cjk_font import use_cjk_font  # noqa: E402


def top_k_mask(score: np.ndarray, capacity: float) -> np.ndarray:
    """The top ``ceil(capacity × n)`` rows by score; ties broken by position, deterministically."""
    k = max(1, math.ceil(capacity * len(score)))
    order = np.lexsort((np.arange(len(score)), -np.asarray(score, dtype="float64")))
    mask = np.zeros(len(score), dtype=bool)
    mask[order[:k]] = True
    return mask


def at_capacity(y: np.ndarray, score: np.ndarray, capacity: float) -> dict[str, float]:
    chosen = top_k_mask(score, capacity)
    found = int((y[chosen] == 1).sum())
    positives = int(y.sum())
    return {"found": found, "recall": found / positives if positives else float("nan"),
            "precision": found / int(chosen.sum())}


def ranking_metrics(y: np.ndarray, score: np.ndarray, capacity: float) -> dict[str, float]:
    both = len(np.unique(y)) == 2
    return {"roc_auc": roc_auc_score(y, score) if both else float("nan"),
            "pr_auc": average_precision_score(y, score) if both else float("nan"),
            **at_capacity(y, score, capacity)}


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(brier_score_loss(y, p))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate − mean probability| over equal-frequency bins."""
    order = np.argsort(p, kind="stable")
    err = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            err += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return err / len(p)


CALIBRATION_QUANTILES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0)


def calibration_table(y: np.ndarray, p: np.ndarray, quantiles=CALIBRATION_QUANTILES) -> pd.DataFrame:
    """Observed finding rate against mean probability in bins by rank; the bins narrow toward the
    top, where the rare positives and the caseworkers' attention are."""
    order = np.argsort(p, kind="stable")
    edges = sorted({int(round(q * len(p))) for q in quantiles})
    rows = [{"from_quantile": a / len(p), "mean_probability": float(p[order[a:b]].mean()),
             "observed_rate": float(y[order[a:b]].mean()), "n": b - a}
            for a, b in zip(edges, edges[1:], strict=False) if b > a]
    return pd.DataFrame(rows)


def compare(y: np.ndarray, model_p: np.ndarray, rules: pd.DataFrame, capacity: float) -> pd.DataFrame:
    """One row per scorer: ROC-AUC, PR-AUC, found, recall and precision at capacity."""
    rows = {"model": ranking_metrics(y, model_p, capacity)}
    for name in rules.columns:
        rows[f"rule:{name}"] = ranking_metrics(y, rules[name].to_numpy(), capacity)
    return pd.DataFrame(rows).T


def plot_calibration(table: pd.DataFrame, title: str):
    use_cjk_font()
    fig, ax = plt.subplots(figsize=(5, 5))
    lim = max(0.05, float(table[["mean_probability", "observed_rate"]].max().max()) * 1.1)
    ax.plot([0, lim], [0, lim], ls="--", c="grey", label="完美校准")
    ax.plot(table["mean_probability"], table["observed_rate"], marker="o", label="模型")
    ax.set_xlim(0, lim), ax.set_ylim(0, lim)
    ax.set_xlabel("预测概率（分组均值）"), ax.set_ylabel("核实发现比例")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_recall_at_capacity(y: np.ndarray, scorers: dict[str, np.ndarray], capacities: np.ndarray, title: str):
    use_cjk_font()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, s in scorers.items():
        ax.plot(capacities * 100, [at_capacity(y, s, c)["recall"] for c in capacities], label=name)
    ax.set_xlabel("走访能力（占全部家庭 %）"), ax.set_ylabel("发现率（召回）")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_importance(names: list[str], gains: np.ndarray, title: str, top: int = 20):
    use_cjk_font()
    order = np.argsort(gains)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([names[i] for i in order], gains[order])
    ax.set_xlabel("平均 |SHAP| （对数几率）"), ax.set_title(title)
    fig.tight_layout()
    return fig
