"""experiments/propensity.py's parts on the tests' small city: the visit-propensity model, its
weights, the visited-only weighted fit and the paired bootstrap."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import propensity as exp  # noqa: E402

RISK = "illness_poverty"


@pytest.fixture(scope="module")
def city(city_dir, policy):
    return exp.load_city(city_dir, policy)


@pytest.fixture(scope="module")
def fitted(city):
    train, val, test = exp.parts(city, RISK)
    prop = exp.fit_propensity(exp.propensity_matrix(train), train["visited"].to_numpy(),
                              exp.propensity_matrix(val), val["visited"].to_numpy(), num_boost_round=200)
    return train, val, test, prop


def test_the_propensity_model_ranks_its_own_training_visits_better_than_chance(fitted):
    train, _, _, prop = fitted
    v = train["visited"].to_numpy()
    assert 0 < v.sum() < len(v)
    assert roc_auc_score(v, prop.raw(exp.propensity_matrix(train))) > 0.5
    assert prop.facts["auc_train"] > 0.5
    e = prop.predict(exp.propensity_matrix(train))
    assert e.min() >= exp.FLOOR and e.max() <= 1.0


def test_weights_are_at_least_one_finite_and_bounded_by_the_floor(fitted):
    train, _, _, prop = fitted
    w = exp.ipw_weights(prop.predict(exp.propensity_matrix(train)))
    assert np.isfinite(w).all() and (w >= 1.0).all() and (w <= 1 / exp.FLOOR + 1e-9).all()
    edge = exp.ipw_weights(np.array([0.0, 1e-9, exp.FLOOR, 0.5, 1.0, 1.5]))
    assert np.isfinite(edge).all() and (edge >= 1.0).all()
    assert edge[0] == edge[1] == edge[2] == pytest.approx(1 / exp.FLOOR)
    assert exp.effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert exp.effective_sample_size(w) <= len(w)


def test_the_ipw_fit_trains_on_visited_rows_only(fitted):
    """Its training rows are the visited ones, and what the unvisited rows hold (features and
    propensity) changes nothing in the model."""
    train, val, test, prop = fitted
    schema = exp.FeatureSchema.for_risk(RISK)
    e_train = prop.predict(exp.propensity_matrix(train))
    e_val = prop.predict(exp.propensity_matrix(val))
    kw = {"num_boost_round": 60, "early_stopping_rounds": 60}
    model, facts = exp.fit_visited_model(RISK, schema, train, val, e_train, e_val, **kw)
    visited = train["visited"].to_numpy() == 1
    assert facts["train_rows"] == visited.sum() < len(train)
    assert facts["train_index"].equals(train.index[visited])
    assert len(facts["weights"]) == visited.sum() and facts["weights"].mean() == pytest.approx(1.0)

    rng = np.random.default_rng(0)
    scrambled, e_scrambled = train.copy(), e_train.copy()
    for c in schema.ids:  # unvisited rows get another unvisited row's value
        col = scrambled[c].to_numpy().copy()
        col[~visited] = rng.permutation(col[~visited])
        scrambled[c] = col
    e_scrambled[~visited] = rng.uniform(exp.FLOOR, 1.0, (~visited).sum())
    again, _ = exp.fit_visited_model(RISK, schema, scrambled, val, e_scrambled, e_val, **kw)
    x = model.matrix(test[schema.ids])
    np.testing.assert_array_equal(model.raw_score(x), again.raw_score(x))

    unweighted, _ = exp.fit_visited_model(RISK, schema, train, val, None, None, **kw)
    assert not np.array_equal(model.raw_score(x), unweighted.raw_score(x))  # the weights do something


def test_the_bootstrap_interval_contains_the_point_estimate(fitted):
    _, _, test, _ = fitted
    y = test["truth"].to_numpy().astype(int)
    assert y.sum() > 0
    score = test["oop_12m"].fillna(0).to_numpy()
    chosen = exp.top_k_mask(score, 0.05)
    point = exp.recall(y, chosen)
    counts = exp.bootstrap_counts(y, 300, seed=1)
    draws = exp.boot_found(counts, y, chosen) / counts.sum(axis=1)
    lo, hi = exp.interval(draws)
    assert lo <= point <= hi and lo < hi
    assert (counts.sum(axis=1) > 0).all()
    # paired: a scorer against itself differs by exactly 0 on every resample
    assert (exp.boot_found(counts, y, chosen) - exp.boot_found(counts, y, chosen.copy()) == 0).all()
