"""``models.fast_shap`` against LightGBM's ``pred_contrib`` and two independent references.

Over 400 lines because it carries those two references (brute-force Shapley values and a converter
of LightGBM's trees to shap's dict model) beside the comparisons.

``pred_contrib`` is the contract (same numbers, base column included, to 1e-9); as ``shap`` on a
LightGBM booster delegates to ``pred_contrib``, the independent checks are (1) brute-force Shapley
values of the path-dependent value function, walking each tree for every subset of features, and
(2) shap's own C++ TreeSHAP on the same trees handed over as a plain dict model.
"""

from __future__ import annotations

import itertools
import math
import warnings

import lightgbm as lgb
import numpy as np
import pytest

from models.fast_shap import KZERO, SERIAL_MAX_ROWS, FastTreeShap, ShapArrays
from models.lgbm import DEFAULTS

TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------------------------
def make_xy(n: int, n_features: int = 8, seed: int = 0, nan_rate: float = 0.08, zero_rate: float = 0.05):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    x[rng.random(x.shape) < zero_rate] = 0.0
    x[:, 3] = np.round(np.abs(x[:, 3]) * 2)  # count-like, many zeros
    x[:, -1] = 1.5  # never used: constant
    logit = (1.2 * np.nan_to_num(x[:, 0]) - 0.8 * np.nan_to_num(x[:, 1]) + np.sin(2 * np.nan_to_num(x[:, 2]))
             + 0.5 * x[:, 3] * (np.nan_to_num(x[:, 4]) > 0) + 1.5 * (np.abs(np.nan_to_num(x[:, 0])) < 0.4))
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit - 0.5)))).astype(np.int32)
    nan = rng.random(x.shape) < nan_rate
    nan[:, -1] = False
    x[nan] = np.nan
    return x, y


def train(x, y, rounds=30, **params):
    base = {"objective": "binary", "verbosity": -1, "deterministic": True, "seed": 0,
            "min_data_in_leaf": 10}
    return lgb.train({**base, **params, "num_threads": 1}, lgb.Dataset(x, y), num_boost_round=rounds)


def edge_rows(booster: lgb.Booster, x: np.ndarray, n: int = 60, seed: int = 1) -> np.ndarray:
    """Rows that sit on the thresholds, next to them, on zero, on +-kZeroThreshold, NaN, inf."""
    rng = np.random.default_rng(seed)
    specials = np.array([np.nan, 0.0, -0.0, 1e-36, -1e-36, KZERO, -KZERO, np.nextafter(KZERO, 1),
                         np.nextafter(-KZERO, -1), 1e-300, np.inf, -np.inf, 1e301, -1e301])
    thresholds: dict[int, list[float]] = {}

    def walk(node):
        if "split_feature" in node:
            thresholds.setdefault(node["split_feature"], []).append(node["threshold"])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    rows = x[rng.integers(0, len(x), n)].copy()
    for i in range(n):
        for f in range(x.shape[1]):
            u = rng.random()
            if u < 0.3 and f in thresholds:
                t = rng.choice(thresholds[f])
                rows[i, f] = rng.choice([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)])
            elif u < 0.5:
                rows[i, f] = rng.choice(specials)
    return rows


X, Y = make_xy(2000)
MONO = [1, -1, 0, 1, 0, 0, 0, 0]
X_TEST = make_xy(400, seed=5)[0]

CONFIGS = {
    # our production shape: models.lgbm.DEFAULTS with monotone constraints, bagging, feature_fraction
    "ours": dict(DEFAULTS, monotone_constraints=MONO, min_data_in_leaf=20),
    "stumps": dict(num_leaves=2, max_depth=1),
    "depth6": dict(num_leaves=15, max_depth=6, min_data_in_leaf=5),
    "deep_leafwise": dict(num_leaves=31, max_depth=-1, min_data_in_leaf=5),
    "zero_as_missing": dict(num_leaves=15, max_depth=6, zero_as_missing=True),
    "use_missing_false": dict(num_leaves=15, max_depth=6, use_missing=False),
    "regression": dict(objective="regression", num_leaves=15, max_depth=6),
    "no_boost_from_average": dict(num_leaves=15, max_depth=6, boost_from_average=False),
    "monotone_intermediate": dict(num_leaves=15, max_depth=6, monotone_constraints=MONO,
                                  monotone_constraints_method="intermediate"),
    "dart": dict(boosting="dart", num_leaves=15, max_depth=6, drop_rate=0.2),
}


@pytest.fixture(scope="module")
def boosters() -> dict[str, lgb.Booster]:
    out = {}
    for name, params in CONFIGS.items():
        y = Y.astype(float) + 0.1 * np.nan_to_num(X[:, 0]) if name == "regression" else Y
        out[name] = train(X, y, **params)
    return out


def assert_matches_pred_contrib(booster, explainer, x, **predict_kw):
    ref = booster.predict(x, pred_contrib=True, **predict_kw)
    got = explainer.contributions(x)
    assert got.shape == ref.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    raw = booster.predict(x, raw_score=True, **predict_kw)
    np.testing.assert_allclose(got.sum(axis=1), raw, rtol=0, atol=TOL)
    return got, ref


# ---------------------------------------------------------------------------------------------
# equal to pred_contrib
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
def test_equals_pred_contrib(boosters, name):
    booster = boosters[name]
    explainer = FastTreeShap.from_booster(booster)
    x = np.vstack([X_TEST, edge_rows(booster, X_TEST)])
    got, ref = assert_matches_pred_contrib(booster, explainer, x)  # parallel blocks
    np.testing.assert_allclose(explainer.contributions(x, n_threads=1), ref, rtol=0, atol=TOL)  # serial blocks
    few = x[: SERIAL_MAX_ROWS]  # row by row
    np.testing.assert_allclose(explainer.contributions(few), ref[: SERIAL_MAX_ROWS], rtol=0, atol=TOL)
    np.testing.assert_allclose(explainer.contributions(x[-1]), ref[-1:], rtol=0, atol=TOL)  # one 1-D row
    assert explainer.expected_value == pytest.approx(ref[0, -1], abs=TOL)
    assert np.all(got[:, -1] == explainer.expected_value)
    # the constant feature is never used: exactly zero, as in pred_contrib
    assert np.all(got[:, X.shape[1] - 1] == 0.0) and np.all(ref[:, X.shape[1] - 1] == 0.0)


def test_the_models_exercise_the_edge_cases(boosters):
    kinds = {name: {n.get("missing_type") for n in _internal_nodes(boosters[name])} for name in CONFIGS}
    assert "NaN" in kinds["ours"]
    assert "Zero" in kinds["zero_as_missing"]
    assert kinds["use_missing_false"] == {"None"}
    assert max(_max_depth(boosters["deep_leafwise"])) > 6
    # LightGBM 4.7 splits at threshold=inf (all finite values left, NaN right); dump_model() shows 1e300
    thresholds = [line for b in boosters.values() for line in b.model_to_string().splitlines()
                  if line.startswith("threshold=")]
    assert any("inf" in line.split() for line in thresholds)
    assert any(abs(t) == KZERO for b in boosters.values() for t in (n["threshold"] for n in _internal_nodes(b)))


def test_a_feature_used_several_times_on_one_path(boosters):
    explainer = FastTreeShap.from_booster(boosters["depth6"])
    a = explainer.arrays
    depths = []  # each leaf's depth vs its number of unique path features (both in preorder)
    for tree in boosters["depth6"].dump_model()["tree_info"]:
        depths += _leaf_depths(tree["tree_structure"])
    assert np.any(np.asarray(depths) > a.leaf_d), "no path repeats a feature: the test lost its point"


def test_early_stopping_and_iteration_ranges():
    x, y = make_xy(3000, seed=3)
    xv, yv = make_xy(1000, seed=4)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 15, "max_depth": 6,
                         "learning_rate": 0.3, "seed": 0},
                        lgb.Dataset(x, y), num_boost_round=300, valid_sets=[lgb.Dataset(xv, yv)],
                        callbacks=[lgb.early_stopping(5, verbose=False)], keep_training_booster=True)
    assert 0 < booster.best_iteration < booster.num_trees()
    default = FastTreeShap.from_booster(booster)  # like predict(): the best iteration
    assert default.arrays.num_trees == booster.best_iteration
    assert_matches_pred_contrib(booster, default, X_TEST)
    for k in (1, 7, booster.num_trees()):
        assert_matches_pred_contrib(booster, FastTreeShap.from_booster(booster, num_iteration=k), X_TEST,
                                    num_iteration=k)
    sliced = FastTreeShap.from_booster(booster, num_iteration=10, start_iteration=3)
    assert_matches_pred_contrib(booster, sliced, X_TEST, num_iteration=10, start_iteration=3)


def test_reloaded_booster_saved_arrays_and_float32(boosters, tmp_path):
    booster = lgb.Booster(model_str=boosters["ours"].model_to_string())
    explainer = FastTreeShap.from_booster(booster)
    assert_matches_pred_contrib(booster, explainer, X_TEST)
    from_text = FastTreeShap.from_model_string(boosters["ours"].model_to_string())
    np.testing.assert_array_equal(from_text.contributions(X_TEST), explainer.contributions(X_TEST))
    explainer.arrays.save(tmp_path / "shap.npz")
    loaded = FastTreeShap(ShapArrays.load(tmp_path / "shap.npz"))
    np.testing.assert_array_equal(loaded.contributions(X_TEST), explainer.contributions(X_TEST))
    x32 = X_TEST.astype(np.float32)
    np.testing.assert_allclose(explainer.contributions(x32), booster.predict(x32, pred_contrib=True),
                               rtol=0, atol=TOL)


def test_one_leaf_trees():
    x, y = make_xy(200, seed=2)
    booster = train(x, y, rounds=3, min_data_in_leaf=150)  # no split is possible
    dump = booster.dump_model()
    assert all(t["num_leaves"] == 1 for t in dump["tree_info"])
    explainer = FastTreeShap.from_booster(booster)
    got, ref = assert_matches_pred_contrib(booster, explainer, X_TEST)
    assert np.all(got[:, :-1] == 0.0)


def test_concurrent_calls(boosters):
    """A threaded server: single rows (nogil, calling thread) and batches (numba threads) at once."""
    from concurrent.futures import ThreadPoolExecutor

    booster = boosters["ours"]
    explainer = FastTreeShap.from_booster(booster)
    ref = booster.predict(X_TEST, pred_contrib=True)
    jobs = [slice(i, i + 1) for i in range(40)] + [slice(0, 400), slice(50, 300), slice(10, 30)] * 3
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: (s, explainer.contributions(X_TEST[s])), jobs))
    for s, got in results:
        np.testing.assert_allclose(got, ref[s], rtol=0, atol=TOL)


def test_empty_and_wrong_shape(boosters):
    explainer = FastTreeShap.from_booster(boosters["stumps"])
    assert explainer.contributions(np.empty((0, X.shape[1]))).shape == (0, X.shape[1] + 1)
    with pytest.raises(ValueError, match="features"):
        explainer.contributions(X_TEST[:, :-1])


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------
def test_categorical_split_is_refused():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 12, 2000), rng.normal(size=2000)]).astype(float)
    y = np.isin(x[:, 0], [1, 4, 7, 9]).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "min_data_per_group": 5, "cat_smooth": 1},
                        lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=5)
    assert any(n.get("decision_type") == "==" for n in _internal_nodes(booster))
    with pytest.raises(ValueError, match="categorical"):
        FastTreeShap.from_booster(booster)


def test_linear_trees_and_multiclass_are_refused():
    x, y = make_xy(1000, seed=6, nan_rate=0.0)
    linear = lgb.train({"objective": "regression", "verbosity": -1, "linear_tree": True, "num_leaves": 4},
                       lgb.Dataset(x, y.astype(float)), num_boost_round=3)
    with pytest.raises(ValueError, match="linear"):
        FastTreeShap.from_booster(linear)
    multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbosity": -1, "num_leaves": 4},
                      lgb.Dataset(x, (np.nan_to_num(x[:, 0]) > 0).astype(int) + y), num_boost_round=2)
    with pytest.raises(ValueError, match="multiclass"):
        FastTreeShap.from_booster(multi)


# ---------------------------------------------------------------------------------------------
# leaves without a table (deep paths, memory budget)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ours", "deep_leafwise", "zero_as_missing", "stumps"])
@pytest.mark.parametrize("depth", [0, 2])
def test_leaves_computed_without_tables(boosters, name, depth):
    booster = boosters[name]
    explainer = FastTreeShap.from_booster(booster, max_table_depth=depth)
    assert explainer.arrays.table_depth == min(depth, int(explainer.arrays.leaf_d.max()))
    assert np.all((explainer.arrays.leaf_table_start < 0) == (explainer.arrays.leaf_d > depth))
    x = np.vstack([X_TEST[:150], edge_rows(booster, X_TEST, n=30)])
    got, ref = assert_matches_pred_contrib(booster, explainer, x)
    np.testing.assert_allclose(explainer.contributions(x, n_threads=1), ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(explainer.contributions(x[:SERIAL_MAX_ROWS]), ref[:SERIAL_MAX_ROWS],
                               rtol=0, atol=TOL)
    if depth == 0:
        assert explainer.table_bytes == 0


def test_memory_budget_lowers_the_table_depth(boosters):
    booster = boosters["deep_leafwise"]
    full = FastTreeShap.from_booster(booster, max_table_depth=30)
    assert full.arrays.table_depth == int(full.arrays.leaf_d.max()) > 6
    budget = full.table_bytes // 4
    small = FastTreeShap.from_booster(booster, max_table_depth=30, max_table_bytes=budget)
    assert small.table_bytes <= budget and small.arrays.table_depth < full.arrays.table_depth
    np.testing.assert_allclose(small.contributions(X_TEST), full.contributions(X_TEST), rtol=0, atol=TOL)


# ---------------------------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------------------------
def _internal_nodes(booster):
    out = []

    def walk(node):
        if "split_feature" in node:
            out.append(node)
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return out


def _leaf_depths(node, depth=0):
    if "split_feature" not in node:
        return [depth]
    return _leaf_depths(node["left_child"], depth + 1) + _leaf_depths(node["right_child"], depth + 1)


def _max_depth(booster):
    return [max(_leaf_depths(t["tree_structure"])) for t in booster.dump_model()["tree_info"]]


def _goes_left(node, value: float) -> bool:
    """LightGBM's NumericalDecision, written out plainly (no tiny values in these rows)."""
    missing = node["missing_type"]
    if math.isnan(value) and missing != "NaN":
        value = 0.0
    if (missing == "Zero" and value == 0.0) or (missing == "NaN" and math.isnan(value)):
        return node["default_left"]
    return value <= node["threshold"]


def _count(node) -> int:
    return node["internal_count"] if "split_feature" in node else node["leaf_count"]


def _expected_given(node, x, known: frozenset) -> float:
    """Path-dependent E[f | x_S]: follow x on known features, average the children by cover otherwise."""
    if "split_feature" not in node:
        return node["leaf_value"]
    left, right = node["left_child"], node["right_child"]
    if node["split_feature"] in known:
        return _expected_given(left if _goes_left(node, x[node["split_feature"]]) else right, x, known)
    return (_count(left) * _expected_given(left, x, known)
            + _count(right) * _expected_given(right, x, known)) / _count(node)


def brute_force_shap(booster, x: np.ndarray) -> np.ndarray:
    trees = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    n_features = x.shape[1]
    out = np.zeros((len(x), n_features + 1))
    for i, row in enumerate(x):
        value = {}
        for size in range(n_features + 1):
            for s in itertools.combinations(range(n_features), size):
                value[frozenset(s)] = sum(_expected_given(t, row, frozenset(s)) for t in trees)
        for k in range(n_features):
            for s, v in value.items():
                if k in s:
                    continue
                w = math.factorial(len(s)) * math.factorial(n_features - len(s) - 1) / math.factorial(n_features)
                out[i, k] += w * (value[s | {k}] - v)
        out[i, -1] = value[frozenset()]
    return out


def test_brute_force_shapley_values():
    x, y = make_xy(1500, n_features=5, seed=8)
    y = (np.abs(np.nan_to_num(x[:, 0])) < 0.6).astype(int) ^ (np.nan_to_num(x[:, 1]) > 0.5)  # repeated x0 splits
    booster = train(x, y, rounds=8, num_leaves=8, max_depth=4, min_data_in_leaf=20)
    rows = make_xy(25, n_features=5, seed=9)[0]
    rows[0] = [0.0, np.nan, 0.0, 0.0, 1.5]
    reference = brute_force_shap(booster, rows)
    explainer = FastTreeShap.from_booster(booster)
    assert np.any(np.asarray(sum((_leaf_depths(t["tree_structure"]) for t in booster.dump_model()["tree_info"]),
                                 [])) > explainer.arrays.leaf_d)
    np.testing.assert_allclose(explainer.contributions(rows), reference, rtol=0, atol=TOL)
    no_tables = FastTreeShap.from_booster(booster, max_table_depth=0)  # the O(d^2) formula instead
    np.testing.assert_allclose(no_tables.contributions(rows), reference, rtol=0, atol=TOL)
    np.testing.assert_allclose(booster.predict(rows, pred_contrib=True), reference, rtol=0, atol=TOL)


def _shap_dict_tree(root: dict) -> dict:
    """One tree of ``dump_model()`` as a tree of shap's plain dict model."""
    cl, cr, feat, thr, val, cover = [], [], [], [], [], []

    def add(node) -> tuple[int, float]:
        i = len(cl)
        for lst, v in ((cl, -1), (cr, -1), (feat, -2), (thr, 0.0), (val, 0.0), (cover, float(_count(node)))):
            lst.append(v)
        if "split_feature" not in node:
            val[i] = node["leaf_value"]
            return i, node["leaf_value"]
        li, lv = add(node["left_child"])
        ri, rv = add(node["right_child"])
        cl[i], cr[i], feat[i], thr[i] = li, ri, node["split_feature"], node["threshold"]
        val[i] = (_count(node["left_child"]) * lv + _count(node["right_child"]) * rv) / _count(node)
        return i, val[i]

    add(root)
    return {"children_left": np.array(cl), "children_right": np.array(cr),
            "children_default": np.array(cl), "features": np.array(feat),
            "thresholds": np.array(thr, dtype=np.float64), "values": np.array(val)[:, None],
            "node_sample_weight": np.array(cover, dtype=np.float64)}


def _shap_dict_model(booster) -> dict:
    """The booster's trees as shap's plain dict model, so that shap runs its own TreeSHAP."""
    trees = [_shap_dict_tree(info["tree_structure"]) for info in booster.dump_model()["tree_info"]]
    return {"trees": trees, "base_offset": 0.0, "input_dtype": np.float64, "internal_dtype": np.float64,
            "tree_output": "raw_value"}


def test_shap_own_algorithm_and_shap_on_the_booster(boosters):
    shap = pytest.importorskip("shap")
    booster = boosters["ours"]
    rows = X_TEST[~np.isnan(X_TEST).any(axis=1)]  # shap's dict trees have no LightGBM missing-value rules
    rows = rows[:80]
    explainer = FastTreeShap.from_booster(booster)
    got = explainer.contributions(rows)

    own = shap.TreeExplainer(_shap_dict_model(booster), feature_perturbation="tree_path_dependent")
    np.testing.assert_allclose(own.shap_values(rows), got[:, :-1], rtol=0, atol=TOL)
    assert float(np.ravel(own.expected_value)[0]) == pytest.approx(explainer.expected_value, abs=TOL)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        delegated = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
        sv = delegated.shap_values(rows)
    sv = sv[1] if isinstance(sv, list) else sv
    np.testing.assert_allclose(sv, got[:, :-1], rtol=0, atol=TOL)
