"""Fairness of one model's test-period predictions across the groups of ``features.groups``.

Per group value: households, positives (verified findings), selection rate (share flagged as the
service flags: at the model's own line ``thresholds.flag``, never without the risk's cause), TPR
(recall), FPR, precision, mean predicted probability against the observed rate (their difference is
the calibration gap), and where the synthetic city's latent truth is at hand, the TPR against that truth.

Point estimates come from Fairlearn's ``MetricFrame``. The 95% intervals are a percentile bootstrap
resampling households within each group (``n_boot`` draws, fixed seed), vectorised in NumPy:
``MetricFrame``'s own bootstrap re-runs the whole frame per draw, about half a second per draw and
group column on 20,000 households, which is minutes per model.

A metric is undefined (NaN) where its denominator is empty: TPR of a group without positives,
precision of a group nobody in which is flagged. The equal-opportunity gap of a column is the
largest minus the smallest TPR among its groups with at least ``min_positives`` positives; groups
with fewer are shown (``in_eo_gap`` false) but left out, because a TPR from 2 positives is 0, 0.5 or 1
by chance. The calibration gap counts groups of at least ``min_households`` households.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from features.cjk_font import use_cjk_font
from features.groups import GROUP_COLUMNS
from models.risk_model import RiskModel
from training.evaluate import plt

RATES = ("selection_rate", "tpr", "fpr", "precision", "mean_probability", "observed_rate", "calibration_gap")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype="float64"), np.asarray(den, dtype="float64")
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


def _rates(c: np.ndarray) -> dict[str, np.ndarray]:
    """Every rate from the sufficient counts ``[n, positives, flagged, true positives, sum of p]``
    (last axis), so the point estimates and each bootstrap draw share one definition."""
    n, pos, flagged, tp, sum_p = (c[..., i] for i in range(5))
    mean_p, observed = sum_p / n, pos / n
    return {"selection_rate": flagged / n, "tpr": _ratio(tp, pos), "fpr": _ratio(flagged - tp, n - pos),
            "precision": _ratio(tp, flagged), "mean_probability": mean_p, "observed_rate": observed,
            "calibration_gap": mean_p - observed}


def _counts(y: np.ndarray, p: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """The one metric handed to ``MetricFrame``: the counts behind every rate (``y_pred`` = probability)."""
    yes = y == 1
    return np.array([len(y), yes.sum(), flagged.sum(), (flagged & yes).sum(), p.sum()], dtype="float64")


def _bootstrap(y: np.ndarray, p: np.ndarray, flagged: np.ndarray, n_boot: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n_boot`` draws of every rate for one group, resampling its households with replacement."""
    draws = rng.integers(0, len(y), size=(n_boot, len(y)), dtype=np.int32)
    yb, pb, fb = y[draws] == 1, p[draws], flagged[draws]
    counts = np.column_stack([np.full(n_boot, len(y)), yb.sum(1), fb.sum(1), (yb & fb).sum(1), pb.sum(1)])
    return _rates(counts.astype("float64"))


@dataclass
class Fairness:
    """``table``: one row per (column, group); ``gaps``: one row per column; ``summary``: flat metrics."""

    table: pd.DataFrame
    gaps: pd.DataFrame
    summary: dict[str, float]
    threshold: float
    min_positives: int


def fairness_table(y: np.ndarray, p: np.ndarray, groups: pd.DataFrame, threshold: float, *,
                   truth: np.ndarray | None = None, visited: np.ndarray | None = None, n_boot: int = 200,
                   seed: int = 0, min_positives: int = 5, min_households: int = 100,
                   flagged: np.ndarray | None = None) -> Fairness:
    """``y`` observed labels (0/1), ``p`` calibrated probabilities, ``groups`` one column per group
    variable (row-aligned with ``y``), ``threshold`` the probability at which a household is flagged;
    ``flagged``: the flags as the service gives them, where a rule beside the probability decides too
    (``RiskModel.predict_frame``'s, with the cause gate); None: ``p ≥ threshold``."""
    y, p = np.asarray(y).astype("int8"), np.asarray(p, dtype="float64")
    flag = p >= threshold if flagged is None else np.asarray(flagged, dtype=bool)
    rng = np.random.default_rng(seed)
    rows = []
    for column in groups.columns:
        g = groups[column].astype(str).to_numpy()
        by_group = MetricFrame(metrics={"counts": _counts}, y_true=y, y_pred=p,
                               sensitive_features=pd.Series(g, name=column),
                               sample_params={"counts": {"flagged": flag}}).by_group["counts"]
        for value, counts in by_group.items():
            at = np.flatnonzero(g == value)
            point, draws = _rates(np.asarray(counts)), _bootstrap(y[at], p[at], flag[at], n_boot, rng)
            row = {"column": column, "group": str(value), "n": len(at), "positives": int(y[at].sum())}
            row["in_eo_gap"] = row["positives"] >= min_positives
            for m in RATES:
                lo, hi = (np.nanpercentile(draws[m], [2.5, 97.5]) if np.isfinite(draws[m]).any()
                          else (np.nan, np.nan))
                row |= {m: float(point[m]), f"{m}_lo": float(lo), f"{m}_hi": float(hi)}
            if visited is not None:
                row["visited_share"] = float(np.asarray(visited)[at].mean())
            if truth is not None:
                t = np.asarray(truth)[at] == 1
                row |= {"truth_positives": int(t.sum()),
                        "truth_tpr": float(_ratio(flag[at][t].sum(), t.sum()))}
            rows.append(row)
    table = pd.DataFrame(rows)
    gaps = pd.DataFrame([_column_gaps(c, table.loc[table["column"] == c], min_positives, min_households)
                         for c in groups.columns])
    summary: dict[str, float] = {}
    for r in gaps.itertuples():
        summary[f"fairness_eo_gap_{r.column}"] = r.eo_gap
        summary[f"fairness_calibration_gap_{r.column}"] = r.calibration_gap_max
        if "truth_eo_gap" in gaps:
            summary[f"fairness_truth_eo_gap_{r.column}"] = r.truth_eo_gap
    summary["fairness_eo_gap_max"] = float(gaps["eo_gap"].max())  # NaN-skipping
    summary["fairness_calibration_gap_max"] = float(gaps["calibration_gap_max"].max())
    summary["fairness_min_positives"] = float(min_positives)
    return Fairness(table=table, gaps=gaps, summary=summary, threshold=threshold, min_positives=min_positives)


def _column_gaps(column: str, rows: pd.DataFrame, min_positives: int, min_households: int) -> dict:
    """The equal-opportunity gap among groups with enough positives, and whether the two extreme
    groups' 95% intervals are apart (``eo_gap_beyond_noise``); the worst per-group calibration gap
    among groups of ``min_households`` or more, and whether its interval excludes zero."""
    eligible = rows.loc[rows["in_eo_gap"]]
    out: dict = {"column": column, "groups": len(rows), "groups_in_eo_gap": len(eligible),
                 "left_out_of_eo_gap": "; ".join(f"{r.group} ({r.positives} positives < {min_positives})"
                                                 for r in rows.loc[~rows["in_eo_gap"]].itertuples()),
                 "eo_gap": np.nan, "lowest_tpr_group": "", "highest_tpr_group": "", "eo_gap_beyond_noise": False}
    if len(eligible) >= 2:
        low, high = eligible.loc[eligible["tpr"].idxmin()], eligible.loc[eligible["tpr"].idxmax()]
        out |= {"eo_gap": float(high["tpr"] - low["tpr"]), "lowest_tpr_group": low["group"],
                "highest_tpr_group": high["group"], "eo_gap_beyond_noise": bool(low["tpr_hi"] < high["tpr_lo"])}
    sized = rows.loc[rows["n"] >= min_households]
    out |= {"calibration_gap_max": np.nan, "worst_calibrated_group": "", "calibration_gap_beyond_noise": False}
    if len(sized):
        worst = sized.loc[sized["calibration_gap"].abs().idxmax()]
        apart = worst["calibration_gap_lo"] > 0 or worst["calibration_gap_hi"] < 0
        out |= {"calibration_gap_max": float(abs(worst["calibration_gap"])), "worst_calibrated_group": worst["group"],
                "calibration_gap_beyond_noise": bool(apart)}
    if "truth_tpr" in rows:
        truth_ok = rows.loc[rows["truth_positives"] >= min_positives, "truth_tpr"]
        out["truth_eo_gap"] = float(truth_ok.max() - truth_ok.min()) if len(truth_ok) >= 2 else np.nan
    return out


def model_fairness(model: RiskModel, frame: pd.DataFrame, *, n_boot: int = 200, seed: int = 0,
                   min_positives: int = 5, min_households: int = 100) -> Fairness:
    """``frame``: a snapshot with the schema's features, ``label``, ``group_<column>`` for every
    column of ``GROUP_COLUMNS``, and optionally ``visited`` and ``truth``."""
    scored = model.predict_frame(frame[model.schema.ids])  # one validation; the flag as served (cause gate)
    groups = frame[[f"group_{c}" for c in GROUP_COLUMNS]].set_axis(list(GROUP_COLUMNS), axis=1)
    return fairness_table(frame["label"].to_numpy(), scored["probability"].to_numpy(), groups,
                          model.thresholds.flag, flagged=scored["flagged"].to_numpy(),
                          truth=frame["truth"].to_numpy() if "truth" in frame else None,
                          visited=frame["visited"].to_numpy() if "visited" in frame else None,
                          n_boot=n_boot, seed=seed, min_positives=min_positives, min_households=min_households)


def plot_tpr(fairness: Fairness, title: str):
    """TPR by group with 95% intervals, one panel per group column; grey where left out of the gap."""
    use_cjk_font()
    columns = list(dict.fromkeys(fairness.table["column"]))
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 4), sharey=True, squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        t = fairness.table.loc[fairness.table["column"] == column].reset_index(drop=True)
        err = np.nan_to_num(np.vstack([t["tpr"] - t["tpr_lo"], t["tpr_hi"] - t["tpr"]]).clip(0))
        for i, r in t.iterrows():
            ax.errorbar([i], [r["tpr"]], yerr=err[:, [i]], fmt="o", capsize=3,
                        color="tab:blue" if r["in_eo_gap"] else "grey")
        ax.set_xticks(range(len(t)), [f"{g}\n({n})" for g, n in zip(t["group"], t["positives"], strict=True)],
                      rotation=60 if len(t) > 4 else 0, fontsize=7)
        ax.set_xlim(-0.6, len(t) - 0.4)
        ax.set_title(column, fontsize=9)
        ax.set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("TPR 召回率（95% 区间）")
    fig.suptitle(f"{title}；灰色：正例少于 {fairness.min_positives}，不计入差距", fontsize=9)
    fig.tight_layout()
    return fig
