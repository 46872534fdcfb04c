"""Exact explanations: LightGBM's pred_contrib against an independent brute-force Shapley
computation on a tiny model, and against shap.TreeExplainer (which, on LightGBM, delegates to
pred_contrib, so only the brute force is an independent check)."""

from __future__ import annotations

import itertools
import math

import lightgbm as lgb
import numpy as np
import pytest

from models.explain import Explanation, format_value, top_reasons
from models.schema import FeatureSchema


def _tiny_model(n_features: int = 5, seed: int = 0) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, n_features))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the default branch
    logit = 1.5 * np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2]) + 0.5 * (x[:, 3] > 0)
    y = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "max_depth": 3, "verbosity": -1, "seed": seed},
                        lgb.Dataset(x, y), num_boost_round=15)
    return booster, x


def _expected_value(node: dict, x: np.ndarray, known: set[int]) -> float:
    """E[tree(x) | x_S] with the tree's own cover weights: TreeSHAP's path-dependent value function."""
    if "leaf_value" in node:
        return node["leaf_value"]
    f = node["split_feature"]
    left, right = node["left_child"], node["right_child"]
    if f in known:
        v = x[f]
        go_left = node["default_left"] if math.isnan(v) else v <= node["threshold"]
        return _expected_value(left if go_left else right, x, known)
    def cover(n: dict) -> float:
        return n["leaf_count"] if "leaf_value" in n else n["internal_count"]
    cl, cr = cover(left), cover(right)
    return (cl * _expected_value(left, x, known) + cr * _expected_value(right, x, known)) / (cl + cr)


def _brute_force_shapley(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    trees = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    m = len(x)
    def value(subset: frozenset[int]) -> float:
        return sum(_expected_value(t, x, set(subset)) for t in trees)
    phi = np.zeros(m + 1)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for r in range(m):
            for s in itertools.combinations(others, r):
                w = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
                phi[i] += w * (value(frozenset(s) | {i}) - value(frozenset(s)))
    phi[m] = value(frozenset())
    return phi


def test_pred_contrib_equals_brute_force_shapley_values():
    booster, x = _tiny_model()
    rows = x[:8]
    contrib = booster.predict(rows, pred_contrib=True)
    for row, got in zip(rows, contrib, strict=True):
        np.testing.assert_allclose(got, _brute_force_shapley(booster, row), atol=1e-9)


def test_contributions_add_up_to_the_raw_score():
    booster, x = _tiny_model(seed=1)
    contrib = booster.predict(x[:200], pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), booster.predict(x[:200], raw_score=True), atol=1e-9)


def test_shap_tree_explainer_agrees_with_pred_contrib():
    shap = pytest.importorskip("shap")
    booster, x = _tiny_model(seed=2)
    explainer = shap.TreeExplainer(booster)
    sv = explainer.shap_values(x[:50])
    sv = sv[1] if isinstance(sv, list) else sv
    contrib = booster.predict(x[:50], pred_contrib=True)
    np.testing.assert_allclose(sv, contrib[:, :-1], atol=1e-9)
    np.testing.assert_allclose(np.ravel(explainer.expected_value)[-1], contrib[0, -1], atol=1e-9)


def test_top_reasons_are_ordered_by_absolute_contribution_and_in_chinese():
    schema = FeatureSchema.from_catalog(("oop_12m", "income_12m_per_capita_month", "n_members", "on_dibao",
                                         "oop_12m_to_income", "head_age"))
    e = Explanation(base_value=-3.0, raw_score=0.0, contributions={
        "oop_12m": 1.2, "income_12m_per_capita_month": -2.0, "n_members": 0.0, "on_dibao": 0.3,
        "oop_12m_to_income": 0.9, "head_age": -0.1})
    values = np.array([38200.0, np.nan, 2.0, 1.0, 1.27, 61.0])
    reasons = top_reasons(e, schema, values)
    assert [r["feature"] for r in reasons] == ["income_12m_per_capita_month", "oop_12m", "oop_12m_to_income",
                                               "on_dibao", "head_age"]
    assert reasons[0]["value"] is None and reasons[0]["display"] == "近12个月家庭人均月收入：未报告"
    assert reasons[1]["display"] == "近12个月自付医疗费用：38,200 元"
    assert reasons[3]["display"] == "正在享受低保：是"
    assert [r["direction"] for r in reasons] == ["lowers", "raises", "raises", "raises", "lowers"]


def test_an_income_of_0_that_stands_for_nothing_reported_is_shown_as_such():
    schema = FeatureSchema.from_catalog(("income_12m_per_capita_month", "no_income_reported_12m", "oop_12m"))
    e = Explanation(base_value=-3.0, raw_score=0.0, contributions={
        "income_12m_per_capita_month": 0.8, "no_income_reported_12m": 0.5, "oop_12m": 0.1})
    unreported = top_reasons(e, schema, np.array([0.0, 1.0, 100.0]))
    assert unreported[0]["value"] == 0.0
    assert unreported[0]["display"] == "近12个月家庭人均月收入：无收入记录（按 0 计）"
    assert unreported[1]["display"] == "近12个月无任何收入记录：是"
    reported = top_reasons(e, schema, np.array([0.0, 0.0, 100.0]))  # rows of amount 0: an income of 0
    assert reported[0]["display"] == "近12个月家庭人均月收入：0 元/人·月"


def test_format_value_units():
    assert format_value(1.2749, "比值") == "1.27"
    assert format_value(0.0, "是否") == "否"
    assert format_value(12.0, "天") == "12 天"
    assert format_value(1400.0, "元/人·月") == "1,400 元/人·月"


def test_served_explanations_are_pred_contrib_to_1e9(champion, city_tables, policy):
    """The service explains with models.fast_shap: on the real champion and real households, the
    same values as LightGBM's own pred_contrib (the reference) to 1e-9, base value included."""
    import numpy as np

    from features.build import build_features

    assert champion.explainer() is not None, "our models have no categorical splits: the fast path applies"
    feats = build_features(city_tables, "2026-06-30", policy).head(3000)
    x = champion.matrix(feats)
    ours = champion.contributions(x)
    ref = champion.booster.predict(x, pred_contrib=True)
    assert np.max(np.abs(ours - ref)) < 1e-9
    rows = champion.score_rows(feats.head(50))
    for row, c in zip(rows, ref[:50], strict=True):
        assert abs(row["base_value"] - c[-1]) < 1e-9
        assert abs(row["raw_score"] - c.sum()) < 1e-9
