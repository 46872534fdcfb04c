"""Income over the 12 months up to and including the month of T; a month not reported is missing, a
window with nothing reported is said so (``no_income_reported_*``) and its amounts are 0."""

from __future__ import annotations

import math

import pytest

from features.income import TREND_CAP
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


def test_no_income_rows_are_said_so_and_read_as_no_income():
    f = _income([])
    assert f["income_months_reported_12m"] == 0.0
    assert f["no_income_reported_12m"] == f["no_income_reported_3m"] == 1.0
    for name in INCOME_FEATURES:
        assert f[name] == 0.0, name
    assert f["income_3m_per_capita_month"] == 0.0
    for name in ("oop_12m_to_income", "oop_to_capacity", "income_after_oop_pc_month", "after_oop_to_dibao"):
        assert math.isnan(f[name]), name   # spending against an income nobody reported is not measured


@pytest.mark.parametrize(("months", "none_12m", "none_3m"), [
    ((), 1.0, 1.0),
    ((0,), 0.0, 1.0),          # the 12th month back only
    ((8,), 0.0, 1.0),          # the 4th month back: before the last 3
    ((9,), 0.0, 0.0),          # the 3rd month back: within them
    ((11,), 0.0, 0.0),         # the month of T
    (range(12), 0.0, 0.0),
])
def test_the_indicators_are_one_exactly_when_no_row_falls_in_the_window(months, none_12m, none_3m):
    window = months_back(T, 12)
    rows = [income_row(window[i], 1000.0) for i in months] + [income_row("2026-07", 900.0),   # after T
                                                             income_row("2025-06", 800.0)]   # 13th month back
    f = _income(rows)
    assert (f["no_income_reported_12m"], f["no_income_reported_3m"]) == (none_12m, none_3m)
    assert f["no_income_reported_12m"] == float(f["income_months_reported_12m"] == 0)


def test_a_row_of_zero_is_reported_income_of_zero():
    f = _income([income_row("2026-06", 0.0)])
    assert f["no_income_reported_12m"] == f["no_income_reported_3m"] == 0.0
    assert f["income_12m_per_capita_month"] == f["income_3m_per_capita_month"] == f["wage_share_12m"] == 0.0
    assert f["oop_12m_to_income"] == 0.0   # reported: the burden is measured (no spending here)


def test_trend_is_the_last_three_months_over_the_nine_before():
    months = months_back(T, 12)
    f = _income(monthly_income(months[:9], 3000.0) + monthly_income(months[9:], 1500.0))
    assert f["income_trend_3m"] == 0.5
    # months not reported are left out of both means
    f = _income(monthly_income(months[:2], 3000.0) + monthly_income(months[11:], 4500.0))
    assert f["income_trend_3m"] == 1.5


def test_trend_without_both_periods_is_its_limit_never_missing():
    months = months_back(T, 12)
    assert _income(monthly_income(months[9:], 1500.0))["income_trend_3m"] == TREND_CAP   # income only lately
    assert _income(monthly_income(months[:9], 1500.0))["income_trend_3m"] == 0.0          # none lately
    assert _income(monthly_income(months[:9], 0.0) + monthly_income(months[9:], 0.0))["income_trend_3m"] == 0.0


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


# ---- features added for the other risks: recent income, who earns, unemployment benefit -----------

ADULTS = [member("P1", "head", "1980-01-01", employment="employed"),
          member("P2", "spouse", "1982-01-01", employment="employed"),
          member("P3", "parent", "1950-01-01", employment="farmer")]


def test_recent_per_capita_income_is_the_last_three_reported_months():
    months = months_back(T, 12)
    f = _income(monthly_income(months[:9], 3000.0) + monthly_income(months[9:], 1500.0),
                members=[member(), member("P2", "spouse")])
    assert f["income_3m_per_capita_month"] == 750.0
    # a recent month not reported is left out of the mean, as in the 12-month figure
    f = _income(monthly_income(months[:9], 3000.0) + monthly_income(months[10:], 1500.0))
    assert f["income_3m_per_capita_month"] == 1500.0


def test_no_recent_income_reported_is_said_so_and_reads_as_zero():
    months = months_back(T, 12)
    f = _income(monthly_income(months[:9], 3000.0))
    assert (f["no_income_reported_12m"], f["no_income_reported_3m"]) == (0.0, 1.0)
    assert f["income_3m_per_capita_month"] == 0.0
    assert f["income_12m_per_capita_month"] == 3000.0   # the 12 months' mean is still over reported months
    assert f["n_working_age_work_income_3m"] == 0.0
    assert f["n_wage_stopped_3m"] == 1.0


def test_working_age_members_with_work_income_in_the_last_three_months():
    months = months_back(T, 12)
    rows = (monthly_income(months, 5000.0, "P1", "wage")
            + monthly_income(months[:8], 4000.0, "P2", "wage")            # stopped 4 months ago
            + monthly_income(months[10:], 2100.0, "P2", "unemployment_benefit")
            + monthly_income(months, 1600.0, "P3", "agriculture"))        # 76: not working age
    f = _income(rows, members=ADULTS)
    assert f["n_working_age_work_income_3m"] == 1.0
    assert f["n_unemployment_benefit_3m"] == 1.0
    assert f["n_wage_stopped_3m"] == 1.0   # P2


@pytest.mark.parametrize(("source", "counted"), [
    ("wage", True), ("business", True), ("agriculture", True),
    ("pension", False), ("transfer", False), ("unemployment_benefit", False), ("other", False),
])
def test_work_income_sources(source, counted):
    f = _income([income_row("2026-05", 1000.0, "P1", source)], members=ADULTS)
    assert f["n_working_age_work_income_3m"] == (1.0 if counted else 0.0)
    f = _income([income_row("2026-02", 1000.0, "P1", source)], members=ADULTS)   # 4 months back, none since
    assert f["n_working_age_work_income_3m"] == 0.0
    assert f["n_wage_stopped_3m"] == (1.0 if source == "wage" else 0.0)


@pytest.mark.parametrize(("month", "recent"), [
    ("2026-06", True), ("2026-04", True),    # the month of T and two before
    ("2026-03", False),                      # the fourth month back
    ("2026-07", False),                      # after T: not known
])
def test_recent_window_is_the_month_of_t_and_two_before(month, recent):
    f = _income([income_row(month, 1000.0, "P1", "wage"), income_row(month, 2100.0, "P2", "unemployment_benefit")],
                members=ADULTS)
    assert f["n_working_age_work_income_3m"] == (1.0 if recent else 0.0)
    assert f["n_unemployment_benefit_3m"] == (1.0 if recent else 0.0)


def test_a_row_of_zero_is_no_income_for_the_counts():
    f = _income([income_row("2026-06", 0.0, "P1", "wage")], members=ADULTS)
    assert f["n_working_age_work_income_3m"] == 0.0
    assert f["income_months_reported_12m"] == 1.0   # the month was reported all the same
    f = _income([income_row("2026-01", 4000.0, "P1", "wage"), income_row("2026-06", 0.0, "P1", "wage")],
                members=ADULTS)
    assert f["n_wage_stopped_3m"] == 1.0            # a wage of 0 is not a wage paid


@pytest.mark.parametrize(("months_paid", "stopped"), [
    (range(0, 12), 0.0),    # paid every month
    (range(0, 9), 1.0),     # paid in the 9 months before the last 3, not in them
    (range(0, 4), 1.0),     # stopped 8 months ago: still within the year
    (range(9, 12), 0.0),    # paid only recently (a new job): nothing stopped
    (range(0, 0), 0.0),     # never paid in the year: no job lost within it
    ((0, 10), 0.0),         # a gap, then paid again in the last 3 months
])
def test_wage_stopped_in_the_last_three_months(months_paid, stopped):
    months = months_back(T, 12)
    rows = [income_row(months[i], 4000.0, "P1", "wage") for i in months_paid]
    rows += monthly_income(months, 1200.0, "P3", "pension")
    f = _income(rows, members=ADULTS)
    assert f["n_wage_stopped_3m"] == stopped
