"""The evaluation of one trained model on the later (test) period, as figures and as plots.

Against the observed labels (visits that found the need) and, where the synthetic city's latent
truth is at hand, against that truth too: observed labels are biased toward what today's rules
already find, and the figures say how much (``visited_share_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.policy import PolicyBook
from models import run_artifacts as artifacts
from models.bands import visit_order
from models.risk_model import RiskModel
from training import evaluate as ev
from training.rules import FIRED, RULES_BY_RISK, rule_scores


def _share(mask: np.ndarray, within: np.ndarray) -> float:
    return float(mask[within].mean()) if within.any() else float("nan")


@dataclass
class Report:
    metrics: dict[str, float]
    comparison: pd.DataFrame
    truth_comparison: pd.DataFrame | None
    calibration: pd.DataFrame
    importance: dict[str, float]
    figures: dict = field(default_factory=dict)

    @property
    def best_rule(self) -> str:
        return str(self.comparison.drop(index="model")["recall"].astype(float).idxmax())


def _flatten(prefix: str, table: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, float]:
    return {f"{prefix}_{scorer.replace('rule:', 'rule_')}_{m}": float(row[m])
            for scorer, row in table.iterrows() for m in columns}


def evaluate_period(model: RiskModel, test: pd.DataFrame, as_of: pd.Timestamp, policy: PolicyBook,
                    capacity: float, seed: int = 0) -> Report:
    """``test`` holds the schema's features, ``label``, ``visited`` and optionally ``truth``."""
    ids = model.schema.ids
    x = model.matrix(test[ids])
    p = model.calibrator.transform(model.raw_score(x))
    rank = visit_order(p, model.cause_present(x))  # as a visit list takes them (RiskModel.priority)
    y = test["label"].to_numpy()
    rules = rule_scores(test[ids], as_of, policy, model.risk)
    comparison = ev.compare(y, rank, rules, capacity)
    metrics = {
        "test_brier": ev.brier(y, p), "test_ece": float(ev.expected_calibration_error(y, p)),
        "test_positives": float(y.sum()), "test_households": float(len(y)),
        **_flatten("test", comparison, ("roc_auc", "pr_auc", "recall", "precision", "found")),
    }
    visited = test["visited"].to_numpy() == 1
    fired = (rules.to_numpy() >= FIRED).any(axis=1)
    metrics |= {"test_visited_share": float(visited.mean()),
                "test_visited_share_rule_fired": _share(visited, fired),
                "test_visited_share_rule_silent": _share(visited, ~fired)}
    truth_cmp = None
    if "truth" in test:
        yt = test["truth"].to_numpy()
        truth_cmp = ev.compare(yt, rank, rules, capacity)
        metrics |= _flatten("truth", truth_cmp, ("roc_auc", "recall", "precision"))
        metrics |= {"truth_positives": float(yt.sum()), "truth_share_visited": _share(visited, yt == 1)}

    report = Report(metrics=metrics, comparison=comparison, truth_comparison=truth_cmp,
                    calibration=ev.calibration_table(y, p), importance={})
    metrics["test_recall_gain_over_best_rule"] = float(
        comparison.loc["model", "recall"] - comparison.loc[report.best_rule, "recall"])

    sample = test[ids].sample(n=min(5000, len(test)), random_state=seed)
    contrib = np.asarray(model.booster.predict(model.schema.validate(sample), pred_contrib=True))[:, :-1]
    importance = np.abs(contrib).mean(axis=0)
    report.importance = dict(zip(ids, importance.tolist(), strict=True))
    report.figures = {
        artifacts.PLOT_CALIBRATION: ev.plot_calibration(report.calibration, f"{model.risk} 校准曲线（{as_of.date()}）"),
        artifacts.PLOT_RECALL_AT_CAPACITY: ev.plot_recall_at_capacity(
            y, {"模型": rank, **{f"规则 {c}": rules[c].to_numpy() for c in rules}},
            np.linspace(0.005, 0.1, 20), f"{model.risk}：同等走访能力下的发现率"),
        artifacts.PLOT_GLOBAL_IMPORTANCE: ev.plot_importance(
            [model.schema.labels[i] for i in ids], importance, f"{model.risk} 全局重要性（平均 |SHAP|）"),
    }
    return report


RULE_LABELS = {r.name: r.label_zh for rules in RULES_BY_RISK.values() for r in rules}
