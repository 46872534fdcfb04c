"""Income over the 12 months up to and including the month of T; a month not reported is missing."""

from __future__ import annotations

import math

import pytest

from features.io import load_policy_book
from tests.factories import bundle, features_of, income_row, member, monthly_income, months_back

POLICY = load_policy_book()
T = "2026-06-30"
INCOME_FEATURES = ("income_12m_per_capita_month", "income_trend_3m", "wage_share_12m", "income_pc_to_dibao")


def _income(rows, members=None, as_of: str = T):
    return features_of(bundle(as_of=as_of, members=members, income=rows, claims=[]), POLICY)


def test_average_is_over_reported_months_not_twelve():
    f = _income(monthly_income(["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"], 2000.0))
    assert f["income_months_reported_12m"] == 6.0
    assert f["income_12m_per_capita_month"] == 2000.0
    f = _income(monthly_income(months_back(T, 6), 2000.0), members=[member(), member("P2", "spouse")])
    assert f["income_12m_per_capita_month"] == 1000.0


def test_a_month_is_reported_once_whoever_reports_it():
    rows = [income_row("2026-06", 2000.0, "P1", "wage"), income_row("2026-06", 1000.0, "P2", "pension"),
            income_row("2026-05", 600.0, "P2", "pension")]
    f = _income(rows, members=[member(), member("P2", "spouse")])
    assert f["income_months_reported_12m"] == 2.0
    assert f["income_12m_per_capita_month"] == 3600 / 2 / 2


@pytest.mark.parametrize(("month", "counted"), [
    ("2026-07", False),   # the month after the month of T: not known at T
    ("2026-06", True),    # the month of T
    ("2025-07", True),    # the 12th month back
    ("2025-06", False),   # the 13th month back
])
def test_income_window_months(month, counted):
    f = _income([income_row("2026-03", 1000.0), income_row(month, 5000.0)])
    assert f["income_months_reported_12m"] == (2.0 if counted else 1.0)
    assert f["income_12m_per_capita_month"] == (3000.0 if counted else 1000.0)


def test_no_income_rows_give_nan_income_features_not_zero():
    f = _income([])
    assert f["income_months_reported_12m"] == 0.0
    for name in INCOME_FEATURES:
        assert math.isnan(f[name]), name


def test_trend_is_the_last_three_months_over_the_nine_before():
    months = months_back(T, 12)
    f = _income(monthly_income(months[:9], 3000.0) + monthly_income(months[9:], 1500.0))
    assert f["income_trend_3m"] == 0.5
    # months not reported are left out of both means
    f = _income(monthly_income(months[:2], 3000.0) + monthly_income(months[11:], 4500.0))
    assert f["income_trend_3m"] == 1.5


def test_trend_is_nan_without_both_periods():
    months = months_back(T, 12)
    assert math.isnan(_income(monthly_income(months[9:], 1500.0))["income_trend_3m"])
    assert math.isnan(_income(monthly_income(months[:9], 1500.0))["income_trend_3m"])


def test_wage_share():
    months = months_back(T, 12)
    f = _income(monthly_income(months, 3000.0, "P1", "wage") + monthly_income(months, 1000.0, "P2", "pension"),
                members=[member(), member("P2", "parent")])
    assert f["wage_share_12m"] == 0.75
    assert f["income_12m_per_capita_month"] == 2000.0


@pytest.mark.parametrize(("as_of", "line"), [
    ("2024-06-30", 1050.0), ("2024-12-31", 1050.0), ("2025-01-01", 1100.0), ("2025-06-30", 1100.0),
])
def test_income_to_dibao_uses_the_line_in_force_at_t(as_of, line):
    f = _income([income_row(as_of[:7], 2100.0)], as_of=as_of)
    assert f["income_12m_per_capita_month"] == 2100.0
    assert f["income_pc_to_dibao"] == 2100.0 / line
