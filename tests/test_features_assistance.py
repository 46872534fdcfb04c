"""Assistance received at T and in the year before; an end after T was not known at T."""

from __future__ import annotations

import pytest

from features.io import load_policy_book
from tests.factories import assistance_row, bundle, features_of

POLICY = load_policy_book()
T = "2026-06-30"  # T - 12 months = 2025-06-30
ASSISTANCE = ("on_dibao", "on_dibao_edge", "on_tekun", "on_expenditure_hardship", "assistance_monthly_amount",
              "temporary_assistance_12m", "left_assistance_12m")


def _assist(rows) -> dict[str, float]:
    f = features_of(bundle(assistance=rows), POLICY)
    return {k: f[k] for k in ASSISTANCE}


def test_assistance_known_answer():
    got = _assist([
        assistance_row("dibao", "2024-01-01", None, 1100),
        assistance_row("tekun", "2025-01-01", "2026-09-30", 900),          # ends after T: ongoing at T
        assistance_row("dibao_edge", "2026-07-01", None, 700),             # starts after T: not known
        assistance_row("expenditure_hardship", "2025-01-01", "2026-01-31", 500),   # ended
        assistance_row("temporary", "2026-03-01", "2026-03-31", 2000),
        assistance_row("temporary", "2025-07-01", "2025-07-31", 2000),
        assistance_row("temporary", "2025-06-30", "2025-06-30", 2000),     # exactly 12 months before T: out
        assistance_row("temporary", "2026-06-01", None, 3000),              # ongoing temporary: not monthly
    ])
    assert got == {"on_dibao": 1.0, "on_dibao_edge": 0.0, "on_tekun": 1.0, "on_expenditure_hardship": 0.0,
                   "assistance_monthly_amount": 2000.0, "temporary_assistance_12m": 3.0,
                   "left_assistance_12m": 0.0}


def test_no_assistance_is_all_zero():
    assert set(_assist([]).values()) == {0.0}


@pytest.mark.parametrize(("end_date", "on_dibao", "left"), [
    (None, 1.0, 0.0),
    ("2026-07-01", 1.0, 0.0),      # ends after T: still on it at T
    ("2026-06-30", 0.0, 1.0),      # ended on T
    ("2026-01-31", 0.0, 1.0),
    ("2025-07-01", 0.0, 1.0),
    ("2025-06-30", 0.0, 0.0),      # ended exactly 12 months before T: not within the year
    ("2024-12-31", 0.0, 0.0),
])
def test_left_assistance_within_twelve_months(end_date, on_dibao, left):
    got = _assist([assistance_row("dibao", "2023-01-01", end_date, 1100)])
    assert (got["on_dibao"], got["left_assistance_12m"]) == (on_dibao, left)
    assert got["assistance_monthly_amount"] == (1100.0 if on_dibao else 0.0)


def test_left_means_not_on_any_programme_now():
    got = _assist([assistance_row("dibao", "2023-01-01", "2026-01-31", 1100),
                   assistance_row("dibao_edge", "2026-02-01", None, 600)])
    assert (got["on_dibao"], got["on_dibao_edge"], got["left_assistance_12m"]) == (0.0, 1.0, 0.0)
    assert got["assistance_monthly_amount"] == 600.0


def test_ending_temporary_assistance_is_not_leaving():
    got = _assist([assistance_row("temporary", "2026-01-01", "2026-01-31", 2000)])
    assert (got["left_assistance_12m"], got["temporary_assistance_12m"]) == (0.0, 1.0)
