"""The promotion gate: a worse challenger and an unfair one are refused with the reason in words; a
fair rival's decision is reported either way; every registered version carries its model card."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.io import read_frame
from training.dataset import build_snapshots, data_span, plan_split
from training.promote import Bounds, Evidence, gate, load_bounds

RISK = "illness_poverty"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def snapshots(city_tables, city_dir, policy, trained) -> pd.DataFrame:
    split = plan_split(*data_span(city_tables))
    return build_snapshots(city_tables, [*split.train, split.validation, split.test], policy, RISK,
                           read_frame(city_dir, "truth"), progress=False)


@pytest.fixture(scope="module")
def evidence(snapshots, trained) -> Evidence:
    as_of = pd.Timestamp(mlflow.get_run(trained.run_id).data.params["test_as_of"])
    return Evidence(frame=snapshots.loc[snapshots["as_of"] == as_of], as_of=as_of, capacity=0.03)


@pytest.fixture(scope="module")
def worse(trained, city_dir):
    """A one-tree model through the whole pipeline: registered as challenger, the gate decides."""
    from training.pipeline import TrainConfig, train

    return train(TrainConfig(data_dir=str(city_dir), capacity=0.03, num_boost_round=1, progress=False))


def test_first_version_becomes_champion_without_a_comparison(trained):
    assert trained.decision is not None and trained.decision.promote
    assert trained.decision.reasons[0].startswith("PASS: no champion exists")
    mv = mlflow.tracking.MlflowClient().get_model_version_by_alias(RISK, "champion")
    assert str(mv.version) == trained.version and mv.tags["promotion"] == "promoted"


def test_pipeline_refuses_a_worse_challenger_and_keeps_the_champion(worse, trained):
    client = mlflow.tracking.MlflowClient()
    assert not worse.decision.promote
    assert any(r.startswith("FAIL: does not beat the champion on the later period") for r in worse.decision.reasons)
    assert str(client.get_model_version_by_alias(RISK, "champion").version) == trained.version
    mv = client.get_model_version_by_alias(RISK, "challenger")
    assert str(mv.version) == worse.version and mv.tags["promotion"] == "refused"
    assert "does not beat the champion" in mv.tags["promotion_reasons"]
    logged = mlflow.artifacts.load_dict(f"runs:/{worse.run_id}/promotion_decision.json")
    assert logged["promote"] is False and logged["champion_before"] == trained.version
    assert logged["figures"]["challenger_pr_auc"] < logged["figures"]["champion_pr_auc"]


@dataclasses.dataclass
class Blinded:
    """The champion with one town's scores cut to a hundredth: a deliberately unfair challenger."""

    model: object
    households: frozenset

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        out = self.model.predict_frame(features)
        out.loc[out.index.isin(self.households), "probability"] *= 0.01
        out["flagged"] = out["probability"] >= self.model.thresholds.flag
        return out

    def priority(self, features: pd.DataFrame) -> np.ndarray:
        out = self.model.priority(features)
        return np.where(features.index.isin(self.households), out * 0.01, out)


def test_gate_refuses_a_challenger_that_fails_one_town(champion, evidence):
    frame = evidence.frame
    town = frame.loc[frame["label"] == 1, "group_town"].value_counts().index[0]  # the town with most findings
    # flags at 3% of households, as a city of this size needs to tell one town's TPR from noise
    wide = copy.copy(champion)
    p = champion.predict_frame(frame[champion.schema.ids])["probability"].to_numpy()
    wide.thresholds = dataclasses.replace(champion.thresholds, flag=float(np.quantile(p, 0.97)))
    unfair = Blinded(wide, frozenset(frame.index[frame["group_town"] == town]))
    decision = gate(unfair, wide, evidence)
    assert not decision.promote
    reason = next(r for r in decision.reasons if r.startswith("FAIL: equal-opportunity gap for town"))
    assert f"TPR 0.00 [0.00–0.00] in {town}" in reason and "beyond sampling noise" in reason


def test_a_rival_with_another_seed_is_decided_with_reasons_and_tight_bounds_refuse_it(champion, evidence, snapshots):
    from training.fit import fit_risk_model

    dates = sorted(snapshots["as_of"].unique())
    train_df = snapshots.loc[snapshots["as_of"].isin(dates[:-2])]
    rival, _ = fit_risk_model(RISK, champion.schema, train_df, snapshots.loc[snapshots["as_of"] == dates[-2]],
                              seed=1, num_boost_round=300)
    rival.meta["test_as_of"] = str(evidence.as_of.date())
    decision = gate(rival, champion, evidence)
    beat = [r for r in decision.reasons if "beats the champion" in r or "beat the champion" in r]
    assert len(beat) == 1 and beat[0].startswith("PASS: beats" if decision.promote else "FAIL: does not beat")
    assert "recall at 3% capacity" in beat[0] and "PR-AUC" in beat[0]
    assert sum("equal-opportunity gap for" in r for r in decision.reasons) == 5
    tight = gate(rival, champion, evidence, Bounds(max_eo_gap=0.01, max_calibration_gap=1e-5, beyond_noise_only=False))
    assert not tight.promote
    assert any(r.startswith("FAIL: equal-opportunity gap for head_sex") and "above the bound 0.01" in r
               for r in tight.reasons)
    assert any(r.startswith("FAIL: largest calibration gap for") for r in tight.reasons)


def test_gate_refuses_to_compare_on_a_period_a_model_has_already_seen(champion, evidence):
    early = dataclasses.replace(evidence, as_of=evidence.as_of - pd.DateOffset(months=6))
    decision = gate(champion, champion, early)
    assert not decision.promote
    assert any("later than the evidence snapshot" in r for r in decision.reasons)


def test_promote_command_refuses_the_worse_version_with_exit_code_1(worse, trained, city_dir, capsys):
    from relief_risk.cli import main

    code = main(["promote", "--risk", RISK, "--version", worse.version, "--data", str(city_dir), "--capacity", "0.03",
                 "--gate", str(ROOT / "experiments" / "gate.toml")])
    err = capsys.readouterr().err
    assert code == 1 and f"REFUSED: {RISK} version {worse.version}" in err and "does not beat the champion" in err
    client = mlflow.tracking.MlflowClient()
    assert str(client.get_model_version_by_alias(RISK, "champion").version) == trained.version
    assert any(f.path.startswith("promotion/decision-") for f in client.list_artifacts(worse.run_id, "promotion"))


def test_every_registered_version_has_its_model_card(worse):
    client = mlflow.tracking.MlflowClient()
    versions = client.search_model_versions(f"name='{RISK}'")
    assert len(versions) >= 2
    for mv in versions:
        md = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/model_card.md")
        for heading in ("用途 Intended use", "数据与时间跨度 Data and time span", "标签定义与选择偏差",
                        "与现行规则对比", "校准 Calibration", "公平性 Fairness", "登记与晋升", "局限 Limitations"):
            assert f"## {heading}" in md, (mv.version, heading)
        assert f"v{mv.version}" in md and "Never an automatic denial" in md and "test_visited_share" not in md
        assert "where a rule of today fired" in md and "latest known status" in md
        page = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/model_card.html")
        assert page.startswith("<!DOCTYPE html>") and "<h2>公平性 Fairness</h2>" in page and "<table>" in page
        assert mv.tags["model_card"] == f"runs:/{mv.run_id}/model_card.md"


def test_gate_bounds_file_matches_the_defaults_and_rejects_unknown_settings(tmp_path):
    assert load_bounds(ROOT / "experiments" / "gate.toml") == Bounds()
    bad = tmp_path / "gate.toml"
    bad.write_text("[gate]\nmax_eo_gapp = 0.1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown gate settings \['max_eo_gapp'\]"):
        load_bounds(bad)
