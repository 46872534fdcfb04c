"""What ``band`` and ``flagged`` mean (models/bands.py): the policy file's ``[bands]`` rule, the lines it
sets on known probabilities, and the hard rule beside the model: a household without a risk's cause
(no minor, no one of 60 or more, no disabled member) is never flagged for it nor banded above low,
through the model, the scoring domain (the API's path), the warm list and a saved model."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from domain.advice import Advisor
from domain.loader import LoadedModel
from domain.scoring import Scored, Scorer
from features.catalog import FEATURE_IDS
from features.risks import RISK_CAUSES, RISKS
from models.bands import BandRule, Cause, bands_of
from models.risk_model import RiskModel, Thresholds
from tests.factories import bundle, member, monthly_income, months_back

AS_OF = "2026-03-31"


# ---- the rule, as data -------------------------------------------------------------------------
def test_the_packaged_rule_shares_the_worklists_capacity_among_the_risks():
    rule = BandRule.load()
    assert set(rule.share) == set(RISKS)
    assert sum(rule.share.values()) == pytest.approx(rule.capacity)
    assert rule.share["illness_poverty"] == max(rule.share.values())  # the service's first concern
    assert 0 < rule.medium_min_probability <= rule.high_min_probability


@pytest.mark.parametrize(("text", "message"), [
    ("capacity = 0.02\nhigh_min_probability = 0.05\nmedium_min_probability = 0.01\n[bands.share]\n"
     + "".join(f"{r} = 0.01\n" for r in RISKS), "add up to 0.05, not to capacity 0.02"),
    ("capacity = 0.02\nhigh_min_probability = 0.01\nmedium_min_probability = 0.05\n[bands.share]\n"
     + "".join(f"{r} = 0.004\n" for r in RISKS), "medium_min_probability ≤ high_min_probability"),
    ("capacity = 0.02\nhigh_min_probability = 0.05\nmedium_min_probability = 0.01\n[bands.share]\n"
     "illness_poverty = 0.02\n", "must name exactly the risks"),
    ("capacity = 0.02\nhigh_min_probability = 0.05\n[bands.share]\n"
     + "".join(f"{r} = 0.004\n" for r in RISKS), "missing field 'medium_min_probability'"),
    ("capacity = 0.02\nflag_share = 0.1\n", "unknown field(s) ['flag_share']"),
])
def test_a_rule_that_cannot_hold_is_refused_with_its_reason(tmp_path, text, message):
    path = tmp_path / "policy.toml"
    path.write_text("[bands]\n" + text, encoding="utf-8")
    with pytest.raises(ValueError, match="bands") as e:
        BandRule.load(str(path))
    assert message in str(e.value)


def _rule(share: float = 0.01, high: float = 0.0, medium: float = 0.0) -> BandRule:
    return BandRule(capacity=share * len(RISKS), high_min_probability=high, medium_min_probability=medium,
                    share=dict.fromkeys(RISKS, share))


def test_the_lines_are_where_the_top_share_and_the_next_two_shares_start():
    p = np.linspace(0.0, 0.999, 1000)[::-1]           # 0.999, 0.998, …, 0.0
    flag, medium = _rule(share=0.01).lines("child_in_difficulty", p)
    assert flag == pytest.approx(0.990)                 # the 10th highest of 1,000
    assert medium == pytest.approx(0.970)               # the 30th highest
    assert (p >= flag).sum() == 10 and (p >= medium).sum() == 30


def test_the_lines_count_only_households_with_the_cause():
    p = np.linspace(0.0, 0.999, 1000)[::-1]
    present = np.ones(1000, dtype=bool)
    present[:5] = False                                 # the five highest lack the cause
    flag, _ = _rule(share=0.01).lines("child_in_difficulty", p, present)
    assert flag == pytest.approx(0.985)                 # still ten flagged, all with the cause
    assert ((p >= flag) & present).sum() == 10


def test_no_household_is_high_or_medium_below_the_floors():
    p = np.linspace(0.0, 0.02, 1000)                    # a rare risk: nobody above 2%
    flag, medium = _rule(share=0.01, high=0.05, medium=0.01).lines("child_in_difficulty", p)
    assert (flag, medium) == (0.05, pytest.approx(0.0194, abs=1e-3))
    band = bands_of(p, flag, medium)
    assert "high" not in set(band) and (p[band == "medium"] >= 0.01).all()


def test_bands_are_low_wherever_the_cause_is_absent():
    p = np.array([0.9, 0.9, 0.3, 0.3, 0.01])
    present = np.array([True, False, True, False, True])
    assert list(bands_of(p, 0.5, 0.2, present)) == ["high", "low", "medium", "low", "low"]
    t = Thresholds(flag=0.5, medium=0.2, capacity=0.004)
    assert list(t.flagged(p, present)) == [True, False, False, False, False]


def test_each_gated_risk_names_a_count_of_the_catalogue_and_only_a_known_absence_closes_it():
    for risk, entry in RISK_CAUSES.items():
        cause = Cause.of(risk)
        assert (cause is None) == (entry is None)
        if cause is not None:
            assert cause.feature in FEATURE_IDS and cause.absent_label.startswith("家中无")
            assert list(cause.present(np.array([0.0, 1.0, 3.0, np.nan]))) == [False, True, True, True]
    assert {r for r, e in RISK_CAUSES.items() if e} == {"child_in_difficulty", "elderly_care_need",
                                                          "disability_poverty"}


# ---- trained models (the test city) ---------------------------------------------------------------
def _everyone_above_the_lines(model: RiskModel) -> RiskModel:
    """The model with both lines at 0: every household with the cause is high."""
    m = copy.copy(model)
    m.thresholds = dataclasses.replace(model.thresholds, flag=0.0, medium=0.0)
    return m


@pytest.mark.slow
@pytest.mark.parametrize("risk", ["child_in_difficulty", "elderly_care_need", "disability_poverty"])
def test_a_trained_model_carries_its_cause_and_never_flags_without_it(risk_champions, city_tables, policy, risk):
    from features.build import build_features

    model = risk_champions[risk]
    assert model.cause == Cause.of(risk)
    x = model.matrix(build_features(city_tables, AS_OF, policy).head(400))
    j = model.schema.ids.index(model.cause.feature)
    without = x.copy()
    without[:, j] = 0.0
    eager = _everyone_above_the_lines(model)
    s_with, s_without = eager.score_matrix(x), eager.score_matrix(without)
    assert s_with.flagged[x[:, j] >= 1].all()
    assert not s_without.flagged.any() and set(s_without.band) == {"low"}
    assert not s_without.cause_present.any()
    # the probability and its explanation are the model's own, gate or not
    np.testing.assert_allclose(s_without.probability, model.calibrator.transform(model.raw_score(without)))
    frame = eager.predict_frame(pd.DataFrame(without, columns=model.schema.ids))
    assert not frame["flagged"].any() and set(frame["band"]) == {"low"}
    assert (eager.priority(without) == -1.0).all()


@pytest.mark.slow
def test_the_lines_fit_the_worklists_and_no_high_is_below_the_floor(risk_champions):
    rule = BandRule.load()
    for risk, model in risk_champions.items():
        if risk == "illness_poverty":
            continue  # the shared illness champion is trained at the tests' own capacity
        t = model.thresholds
        assert t.capacity == rule.share[risk]
        assert t.flag >= rule.high_min_probability and rule.medium_min_probability <= t.medium <= t.flag
        assert model.meta["bands"]["share"] == rule.share[risk]


@pytest.mark.slow
def test_a_saved_model_keeps_its_cause_and_one_saved_before_the_gate_loads_without_it(risk_champions, tmp_path):
    model = risk_champions["child_in_difficulty"]
    back = RiskModel.load(model.save(tmp_path / "now"))
    assert back.cause == model.cause and back.thresholds == model.thresholds
    old = model.save(tmp_path / "old")
    meta = json.loads((old / "model_meta.json").read_text(encoding="utf-8"))
    del meta["cause"]
    (old / "model_meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert RiskModel.load(old).cause is None  # an old record is reproduced under the rule it was given under


def _young_adults_only() -> dict:
    """The issue's household: flagged 困境儿童 by probability, though its "child" was born in 2003."""
    months = months_back(AS_OF, 12)
    return bundle("HGATE", as_of=AS_OF, members=[
        member("P1", "head", "1978-05-02", employment="unemployed", disability_grade=0),
        member("P2", "child", "2003-09-01", employment="unemployed", disability_grade=0)],
        income=monthly_income(months[:3], 400.0), claims=[])


@pytest.mark.slow
def test_the_api_path_answers_cause_absent_and_the_warm_list_proposes_nothing_for_it(risk_champions, policy):
    models = [LoadedModel(name=r, version="1", aliases=("champion",), model=_everyone_above_the_lines(m),
                          uri=f"models:/{r}/1") for r, m in risk_champions.items()]
    scorer = Scorer(models=models, policy=policy, advisor=Advisor.load(policy=policy))
    scored = scorer.score(_young_adults_only())
    assert isinstance(scored, Scored)
    by_risk = {s["risk"]: s for s in scored.response["scores"]}
    for risk in ("child_in_difficulty", "elderly_care_need", "disability_poverty"):
        assert by_risk[risk]["cause_present"] is False, risk
        assert (by_risk[risk]["flagged"], by_risk[risk]["band"]) == (False, "low"), risk
    for risk in ("illness_poverty", "unemployment_poverty"):  # no gate: the model speaks
        assert by_risk[risk]["cause_present"] is None and by_risk[risk]["flagged"] is True
    warm = json.dumps(scored.response.get("warm_list", []), ensure_ascii=False)
    assert "困境儿童" not in warm and "child_in_difficulty" not in warm
    # the same household with a real child: the gate opens
    with_child = _young_adults_only()
    with_child["members"][1]["birth_date"] = "2015-09-01"
    again = scorer.score(with_child)
    child = next(s for s in again.response["scores"] if s["risk"] == "child_in_difficulty")
    assert child["cause_present"] is True and child["flagged"] is True
