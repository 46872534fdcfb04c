"""Drift: the population stability index against values worked by hand, the reference bins, and the
thresholds read from the policy file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.drift import (
    FLOOR,
    Binned,
    Profile,
    Thresholds,
    bin_reference,
    compare,
    nearest_reference,
    psi,
    seasonal_references,
)


def test_psi_matches_values_worked_by_hand():
    # (0.6 - 0.5) ln(0.6/0.5) + (0.4 - 0.5) ln(0.4/0.5) = 0.1 ln 1.2 + 0.1 ln 1.25
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.1 * math.log(1.2) + 0.1 * math.log(1.25), abs=1e-12)
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.040547, abs=1e-6)
    # a textbook ten-bin case: every decile's share moved by ±0.02 alternately
    ref, cur = [0.1] * 10, [0.12, 0.08] * 5
    want = 5 * (0.02 * math.log(1.2) + 0.02 * math.log(1.25))
    assert psi(ref, cur) == pytest.approx(want, abs=1e-12)
    assert psi(ref, ref) == 0.0
    # symmetric in its arguments, and an empty bin counts as the floor, not as infinitely rare
    assert psi([0.3, 0.7], [0.5, 0.5]) == pytest.approx(psi([0.5, 0.5], [0.3, 0.7]))
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(
        0.1 * math.log(0.8) * -1 + (0.1 - FLOOR) * math.log(0.1 / FLOOR), abs=1e-9)


def test_reference_bins_are_deciles_and_keep_missing_apart():
    v = np.arange(1000, dtype="float64")
    b = bin_reference(v)
    assert len(b.edges) == 9 and len(b.shares) == 11
    assert np.allclose(b.shares[:10], 0.1) and b.shares[10] == 0
    # a count with many zeros: repeated deciles collapse; missing values are their own bin
    counts = np.array([0.0] * 700 + [1.0] * 200 + [2.0] * 90 + [np.nan] * 10)
    c = bin_reference(counts)
    assert c.edges == (0.0, 1.0)
    assert c.shares == pytest.approx((0.7, 0.2, 0.09, 0.01))
    assert c.labels() == ["≤ 0", "0–1", "> 1", "缺失"]
    assert Binned.from_dict(c.as_dict()) == c


def test_a_shifted_feature_acts_and_an_unmoved_one_stays_quiet():
    rng = np.random.default_rng(0)
    n = 5000
    income, age = rng.lognormal(7.5, 0.6, n), rng.integers(18, 90, n).astype("float64")
    x = np.column_stack([income, age])
    ids = ["income_12m_per_capita_month", "head_age"]
    p = 1 / (1 + np.exp(income / 1000 - 3))
    ref = Profile.of(x, ids, p)
    assert Profile.from_dict(ref.as_dict()) == ref
    t = Thresholds()
    same = rng.choice(n, 800, replace=False)
    quiet = compare(ref, x[same], ids, p[same], t)
    assert {d.feature: d.status for d in quiet.features} == {ids[0]: "stable", ids[1]: "stable"}
    moved = x[same].copy()
    moved[:400, 0] *= 3  # half the window's incomes tripled
    p_moved = 1 / (1 + np.exp(moved[:, 0] / 1000 - 3))
    report = compare(ref, moved, ids, p_moved, t)
    by = {d.feature: d for d in report.features}
    assert by[ids[0]].status == "act" and by[ids[1]].status == "stable"
    assert report.features[0].feature == ids[0]  # largest first
    assert report.score_psi > quiet.score_psi + 0.1
    small = compare(ref, x[:50], ids, p[:50], t)
    assert all(d.status == "too_few" and d.current == [] for d in small.features)
    assert small.features[0].psi is not None


def test_thresholds_are_data_and_checked(tmp_path):
    t = Thresholds.load()
    assert (t.watch, t.act) == (0.1, 0.25)
    assert t.status(0.05, 500) == "stable" and t.status(0.1, 500) == "watch" and t.status(0.3, 500) == "act"
    bad = tmp_path / "p.toml"
    from features.io import policy_file_text
    text = policy_file_text(None).replace("psi_watch = 0.1", "psi_watch = 0.3")
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="psi_watch < psi_act"):
        Thresholds.load(str(bad))


# ---- one reference per calendar month ----------------------------------------------------------------------
def _seasonal_frames():
    rng = np.random.default_rng(3)
    # a feature with a season: January's values sit well above April's
    jan, apr = rng.normal(1.2, 0.1, (2000, 1)), rng.normal(0.9, 0.1, (2000, 1))
    p = rng.uniform(0, 0.1, 2000)
    return [("2026-04-30", apr, p), ("2026-01-31", jan, p), ("2025-04-30", jan, p)]


def test_a_reference_is_kept_per_calendar_month_the_first_frame_of_a_month_winning():
    refs = seasonal_references(_seasonal_frames(), ["income_trend_3m"])
    assert [r["as_of"] for r in refs] == ["2026-01-31", "2026-04-30"]  # April's from the trusted (first) frame


@pytest.mark.parametrize(("as_of", "chosen"), [
    ("2027-01-31", "2026-01-31"), ("2026-04-30", "2026-04-30"),
    ("2026-02-28", "2026-01-31"),   # one month from January, two from April
    ("2026-03-31", "2026-04-30"),   # one month from April
    ("2026-10-31", "2026-01-31"),   # three months from January around the year-end, six from April
    ("2026-07-31", "2026-04-30"),   # three from April, six from January
])
def test_the_nearest_calendar_month_is_chosen_around_the_year(as_of, chosen):
    refs = seasonal_references(_seasonal_frames(), ["income_trend_3m"])
    assert nearest_reference(refs, as_of)["as_of"] == chosen


def test_a_seasonal_feature_is_quiet_against_its_own_month_and_acted_on_against_another():
    frames = _seasonal_frames()
    refs = {r["as_of"]: Profile.from_dict(r["profile"]) for r in seasonal_references(frames, ["income_trend_3m"])}
    rng = np.random.default_rng(4)
    january = rng.normal(1.2, 0.1, (3000, 1))
    same = compare(refs["2026-01-31"], january, ["income_trend_3m"], None, Thresholds())
    other = compare(refs["2026-04-30"], january, ["income_trend_3m"], None, Thresholds())
    assert same.features[0].status == "stable" and other.features[0].status == "act"
    assert nearest_reference([], "2026-01-31") is None
