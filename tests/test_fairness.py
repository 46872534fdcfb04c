"""Fairness by group: known answers on a hand-made example, and what training logs for the champion."""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.groups import GROUP_COLUMNS
from training.fairness import RATES, fairness_table


def _tiny() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Town A: 4 positives, 3 flagged, and 1 of 6 negatives flagged. Town B: 4 positives, 1 flagged,
    no negative flagged. Town C: 1 positive, flagged, 4 negatives. Flagged = probability 0.9."""
    rows = ([("A", 1, 0.9)] * 3 + [("A", 1, 0.1)] + [("A", 0, 0.9)] + [("A", 0, 0.1)] * 5
            + [("B", 1, 0.9)] + [("B", 1, 0.1)] * 3 + [("B", 0, 0.1)] * 6
            + [("C", 1, 0.9)] + [("C", 0, 0.1)] * 4)
    town, y, p = (np.array(c) for c in zip(*rows, strict=True))
    # a second column in which group "none" has no positives at all
    kind = np.where((town == "B") & (y == 0), "none", "some")
    return y.astype(int), p.astype(float), pd.DataFrame({"town": town, "kind": kind})


def test_known_answers_on_a_hand_made_example():
    y, p, groups = _tiny()
    f = fairness_table(y, p, groups, threshold=0.5, n_boot=50, seed=1, min_positives=2, min_households=5)
    t = f.table.set_index(["column", "group"])
    a, b, c = t.loc[("town", "A")], t.loc[("town", "B")], t.loc[("town", "C")]
    assert (a["n"], a["positives"], a["tpr"], a["fpr"], a["precision"], a["selection_rate"]) == (10, 4, 0.75, 1 / 6,
                                                                                                  0.75, 0.4)
    assert a["mean_probability"] == pytest.approx(0.42) and a["calibration_gap"] == pytest.approx(0.02)
    assert (b["tpr"], b["fpr"], b["precision"]) == (0.25, 0.0, 1.0)
    assert b["calibration_gap"] == pytest.approx(0.18 - 0.4)
    assert c["tpr"] == 1.0 and not c["in_eo_gap"] and a["in_eo_gap"] and b["in_eo_gap"]
    # C (1 positive) is left out of the gap, and the gaps table says so; B is the worst calibrated
    g = f.gaps.set_index("column")
    assert g.loc["town", "eo_gap"] == pytest.approx(0.5) and f.summary["fairness_eo_gap_town"] == pytest.approx(0.5)
    assert g.loc["town", "left_out_of_eo_gap"] == "C (1 positives < 2)"
    assert (g.loc["town", "lowest_tpr_group"], g.loc["town", "highest_tpr_group"]) == ("B", "A")
    assert g.loc["town", "worst_calibrated_group"] == "B"
    assert f.summary["fairness_calibration_gap_max"] == pytest.approx(0.22)
    # a group without positives has no TPR (not 0), and so no gap can be measured in that column
    none = t.loc[("kind", "none")]
    assert np.isnan(none["tpr"]) and none["fpr"] == 0.0 and np.isnan(f.summary["fairness_eo_gap_kind"])


def test_a_household_without_the_risks_cause_is_never_counted_flagged():
    y, p, groups = _tiny()
    eligible = np.ones(len(y), dtype=bool)
    eligible[:2] = False  # two of town A's flagged positives lack the cause (as the served flag reads it)
    f = fairness_table(y, p, groups, threshold=0.5, n_boot=50, seed=1, min_positives=2, min_households=5,
                       flagged=(p >= 0.5) & eligible, truth=y)
    a = f.table.set_index(["column", "group"]).loc[("town", "A")]
    assert (a["tpr"], a["selection_rate"], a["truth_tpr"]) == (0.25, 0.2, 0.25)
    assert a["mean_probability"] == pytest.approx(0.42)  # the probability is the model's own, gate or not


def test_bootstrap_is_seeded_and_intervals_bracket_the_estimate():
    y, p, groups = _tiny()
    one = fairness_table(y, p, groups, threshold=0.5, n_boot=200, seed=3, min_positives=2)
    two = fairness_table(y, p, groups, threshold=0.5, n_boot=200, seed=3, min_positives=2)
    pd.testing.assert_frame_equal(one.table, two.table)
    for m in RATES:
        ok = one.table[[m, f"{m}_lo", f"{m}_hi"]].dropna()
        assert (ok[f"{m}_lo"] <= ok[m] + 1e-12).all() and (ok[m] <= ok[f"{m}_hi"] + 1e-12).all(), m


def test_training_logs_the_fairness_table_gaps_and_plot_for_every_group_column(trained):
    client = mlflow.tracking.MlflowClient()
    files = {f.path for f in client.list_artifacts(trained.run_id, "fairness")}
    assert {"fairness/groups.csv", "fairness/gaps.csv", "fairness/tpr_by_group.png"} <= files
    table = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{trained.run_id}/fairness/groups.csv")))
    assert set(table["column"]) == set(GROUP_COLUMNS)
    assert table.groupby("column")["n"].sum().eq(trained.metrics["test_households"]).all()
    for m in ("selection_rate", "tpr", "fpr", "precision", "calibration_gap"):
        ok = table[[m, f"{m}_lo", f"{m}_hi"]].dropna()
        assert len(ok) and (ok[f"{m}_lo"] <= ok[m] + 1e-12).all() and (ok[m] <= ok[f"{m}_hi"] + 1e-12).all(), m
    assert "truth_tpr" in table and "visited_share" in table  # the synthetic city's latent truth is at hand
    metrics = client.get_run(trained.run_id).data.metrics
    assert {f"fairness_eo_gap_{c}" for c in GROUP_COLUMNS} | {"fairness_calibration_gap_max"} <= set(metrics)
    gaps = trained.fairness.gaps.set_index("column")
    assert metrics["fairness_eo_gap_town"] == pytest.approx(gaps.loc["town", "eo_gap"])
