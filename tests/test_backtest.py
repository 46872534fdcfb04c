"""experiments/backtest.py on the session's small city (seed 7, 36 months): two rolling origins,
two risks, short fits. What must hold whatever the figures: no origin's label windows reach its
test period, the household bootstrap takes each scorer's top k as the evaluation does, its
intervals hold the point estimates, the ratio is the model's recall over the rule's, and the
pooled counts are the sums of the periods'."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from training import evaluate as ev
from training.dataset import LABEL_DAYS

pytestmark = pytest.mark.slow

RISKS = ("illness_poverty", "elderly_care_need")
N_BOOT = 200


@pytest.fixture(scope="module")
def bt():
    spec = importlib.util.spec_from_file_location("backtest", ROOT / "experiments" / "backtest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["backtest"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("backtest", None)


@pytest.fixture(scope="module")
def backtest_run(bt, city_dir, city_tables, policy):
    config = bt.Config(origins=2, step_months=2, risks=RISKS, n_boot=N_BOOT, fit_options={"num_boost_round": 60},
                       progress=False)
    truth = pd.read_parquet(city_dir / "truth.parquet")
    timings: dict[str, float] = {}
    periods = bt.run_city(config, city_tables, truth, policy, 7, bt.Variant(), timings)
    draws = bt.bootstrap_city(periods, N_BOOT, (config.boot_seed, 7))
    return config, periods, draws, bt.assemble(config, bt.Variant(), periods, draws, timings)


def test_no_origin_learns_from_its_test_period(bt, city_tables):
    from training.dataset import data_span

    window = pd.Timedelta(days=LABEL_DAYS)
    first, last = data_span(city_tables)
    spans = [(first, last, 2, 2), (first, last, 3, 1),
             (pd.Timestamp("2022-11-01"), pd.Timestamp("2026-10-31"), 4, 3),
             (pd.Timestamp("2022-11-01"), pd.Timestamp("2026-10-31"), 6, 2)]
    for f, la, k, step in spans:
        origins = bt.plan_origins(f, la, k, step)
        assert [o.k for o in origins] == list(range(k))
        assert len({o.split.test for o in origins}) == k  # K distinct test periods
        for o in origins:
            s = o.split
            assert bt.lookahead_problems(o) == []
            assert o.cut <= la
            assert all(t + window <= s.validation < s.test for t in s.train)  # nothing reaches the test window
            assert s.validation + window <= s.test and s.test + window <= o.cut


def test_periods_train_only_before_their_test(backtest_run):
    _, periods, _, result = backtest_run
    assert len(periods) == len(RISKS) * 2
    for row in result["periods"]:
        test = pd.Timestamp(row["test_as_of"])
        assert all(pd.Timestamp(t) + pd.Timedelta(days=LABEL_DAYS) <= test for t in row["train_as_of"])
        assert pd.Timestamp(row["validation_as_of"]) + pd.Timedelta(days=LABEL_DAYS) <= test
        assert row["train_rows"] == len(row["train_as_of"]) * row["households"]


def test_bootstrap_takes_the_top_k_as_the_evaluation_does(bt, backtest_run):
    _, periods, _, _ = backtest_run
    rng = np.random.default_rng(3)
    for p in periods:
        n = len(p.households)
        for score in p.scores.values():
            order = bt.ranking_order(score)
            for t in bt.TARGETS:  # every count 1: the evaluation's own figure
                found = bt.found_at_capacity(np.ones(n, dtype=np.int64), p.y[t], order, bt.CAPACITY)
                assert int(found[0]) == ev.at_capacity(p.y[t], score, bt.CAPACITY)["found"]
            # one resample, written out (copies in the original order): top_k_mask on it gives the same
            idx = np.sort(rng.integers(0, n, n))
            counts = np.bincount(idx, minlength=n)
            y = p.y["truth"]
            chosen = ev.top_k_mask(score[idx], bt.CAPACITY)
            assert int(bt.found_at_capacity(counts, y, order, bt.CAPACITY)[0]) == int(y[idx][chosen].sum())


def _inside(fig: dict, key: str) -> None:
    lo, hi = fig[f"{key}_ci"]
    assert lo <= fig[key] <= hi, (key, fig[key], lo, hi)


def test_intervals_ratio_and_pooling(bt, backtest_run):
    _, periods, draws, result = backtest_run
    for row in result["periods"]:
        for t in bt.TARGETS:
            f = row["targets"][t]
            for key in ("model_recall", "rule_recall", "ratio"):
                _inside(f, key)
            assert f["ratio"] == pytest.approx(f["model_recall"] / f["rule_recall"])
            assert f["rule_recall"] == f["recall"][f["best_rule"]]
    for risk in RISKS:
        pooled = result["pooled"][risk]
        rows = [r for r in result["periods"] if r["risk"] == risk]
        pairs = [(p, d) for p, d in zip(periods, draws, strict=True) if p.risk == risk]
        for t in bt.TARGETS:
            f = pooled[t]
            for key in ("model_recall", "rule_recall", "ratio"):
                _inside(f, key)
            assert f["positives"] == sum(r["targets"][t]["positives"] for r in rows)
            assert f["model_found"] == sum(r["targets"][t]["model_found"] for r in rows)
            assert f["rule_found"] == sum(r["targets"][t]["rule_found"] for r in rows)
            assert f["model_recall"] == pytest.approx(f["model_found"] / f["positives"])
            assert f["ratio"] == pytest.approx(f["model_found"] / f["rule_found"])
            # per draw, the pool is the sum of the periods' draws: its interval is recomputed from those sums
            model = sum(d.found[t]["model"] for _, d in pairs)
            positives = sum(d.positives[t] for _, d in pairs)
            assert tuple(f["model_recall_ci"]) == bt.interval(model / positives)
        assert sum(pooled["truth"]["best_rules"].values()) == len(rows)
    assert result["pooled"]["illness_poverty"]["truth"]["positives"] > 0


def test_draws_resample_households_jointly_per_city(bt, backtest_run):
    """One draw per city, shared by its periods: a period and its copy get the very same draws;
    the draws are seeded; on average a resample holds as many positives as the period."""
    _, periods, draws, _ = backtest_run
    p = periods[0]
    twin = dataclasses.replace(p, k=99)
    a, b = bt.bootstrap_city([p, twin], N_BOOT, (1, 2))
    for t in bt.TARGETS:
        assert (a.positives[t] == b.positives[t]).all()
        assert all((a.found[t][s] == b.found[t][s]).all() for s in p.scores)
    assert (a.positives["truth"] != bt.bootstrap_city([p], N_BOOT, (1, 3))[0].positives["truth"]).any()
    again = bt.bootstrap_city(periods, N_BOOT, (12, 7))
    for x, y, q in zip(again, draws, periods, strict=True):
        assert (x.found["truth"]["model"] == y.found["truth"]["model"]).all()
        assert y.positives["truth"].mean() == pytest.approx(q.y["truth"].sum(), rel=0.15)


def test_outputs_and_the_variant_seam(bt, backtest_run, tmp_path):
    result = backtest_run[3]
    paths = bt.write(result, tmp_path / "backtest")
    assert [p.suffix for p in paths] == [".md", ".json", ".png"]
    md = paths[0].read_text(encoding="utf-8")
    assert "## Summary" in md and "**pooled**" in md and "illness_poverty" in md
    assert json.loads(paths[1].read_text(encoding="utf-8"))["pooled"].keys() == set(RISKS)
    assert paths[2].stat().st_size < 300_000
    # a weighted variant needs a fit that takes weights: the default fit refuses rather than ignoring them
    weighted = bt.Variant(name="weighted", weights_for=lambda df: np.ones(len(df)))
    frame = pd.DataFrame(index=range(3))
    with pytest.raises(NotImplementedError):
        weighted.fit("illness_poverty", frame, frame, 0, weighted.weights_for(frame), {})


def test_the_ceiling_learns_from_the_truth_and_says_so(bt, backtest_run, monkeypatch, tmp_path):
    """``--variant truth-labels`` fits exactly as the service does, with the latent truth as the label
    in training and validation; its report says it is a ceiling, and a comparison with the main run
    is headed by what differs (the variant), not by the employment status."""
    seen = {}

    def spy(risk, train, validation, seed, weights, options):
        seen.update(train=train, validation=validation)
        raise RuntimeError("stop")

    monkeypatch.setattr(bt, "fit_lgbm", spy)
    frame = pd.DataFrame({"label": [0, 0, 1], "truth": [1, 0, 0]})
    with pytest.raises(RuntimeError, match="stop"):
        bt.VARIANTS["truth-labels"].fit("illness_poverty", frame, frame.iloc[::-1], 0, None, {})
    assert seen["train"]["label"].tolist() == [1, 0, 0]
    assert seen["validation"]["label"].tolist() == [0, 0, 1]
    assert frame["label"].tolist() == [0, 0, 1]  # the caller's frame is left alone

    main = backtest_run[3]
    ceiling = json.loads(json.dumps({**main, "config": {**main["config"], "variant": "truth-labels"}},
                                    default=float))
    ceiling["compare"] = bt.comparison(json.loads(json.dumps(main, default=float)))
    md = bt.to_markdown(ceiling)
    assert "**This run is a ceiling, not a model.**" in md
    assert md.startswith("# The ceiling: models trained on the latent truth")
    assert "at 2% capacity the model trained on the truth (the ceiling) finds" in md
    assert "### Beside the compared run: the models' labels (`truth-labels` here, `verified-labels` there)" in md
    assert "Sensitivity: the employment status" not in md
    assert "This run is a ceiling" not in bt.to_markdown(main)
    # a variant plugged in by code, not named in VARIANTS, is reported by its name
    plugged = bt.to_markdown({**main, "config": {**main["config"], "variant": "ipw"}})
    assert "variant `ipw`" in plugged and bt.TRAINED_ON[False] in plugged
    with pytest.raises(SystemExit):
        bt.main(["--variant", "no-such-variant"])
