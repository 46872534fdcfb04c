"""Income over the 12 months up to and including the month of T.

A month with no income row for anybody in the household is a month not reported: within a window
(the 12 months, the last 3) a mean is over the reported months only. A window with no month
reported at all is said explicitly: ``no_income_reported_12m`` / ``no_income_reported_3m`` is 1 and
the window's amounts are 0, the income the models then read, so that no income reported never
reads better than a low income (the twins of tests/test_risks.py) whatever the models learned about
missing values. Whoever needs "unknown" rather than 0 (the policy calculator, the lists' conditions,
the rule baselines) reads the indicator: ``features.catalog.UNREPORTED_BY``.
"""

from __future__ import annotations

import numpy as np

from features.known import Known, count_by, is_in, sum_by

WINDOW_MONTHS = 12
RECENT_MONTHS = 3
TREND_CAP = 1e6
WORK_SOURCES = ("wage", "business", "agriculture")


def income_features(known: Known, n_members: np.ndarray, dibao_line: float | np.ndarray
                    ) -> dict[str, np.ndarray]:
    """Income features per household.

    Amounts are yuan; ``*_per_capita_month`` is yuan per person per month averaged over the 12-month
    window, or the last 3 months for ``income_3m_*`` (months not reported count as missing, not
    zero). ``n_working_age_work_income_3m`` counts members 16–59 paid wage, business or agricultural
    income in the last 3 months, ``n_unemployment_benefit_3m`` members paid unemployment benefit,
    ``n_wage_stopped_3m`` members paid wages in the 9 months before those 3 and not in them.
    ``dibao_line``: yuan per person per month, one for all households or one per household (each
    household's own city's).

    A window with no month reported has the amount 0 and its ``no_income_reported_*`` indicator 1.
    ``income_trend_3m`` is the last 3 months' mean over the 9 months' before: 0 when the last 3
    months brought nothing (not reported, or reported as 0), ``TREND_CAP`` when only they brought
    income. ``wage_share_12m`` is 0 when the 12 months brought no income: no yuan of it was wages.
    ``_income_12m`` (for the burden ratios) stays NaN with nothing reported: spending against an
    income nobody reported is not measured (those ratios are NaN, and only the illness model reads them).
    """
    rows = known.income(known.month - WINDOW_MONTHS + 1, ("month_index", "amount", "source"))
    hh, n = rows["hh"], known.n
    person = rows["person"]
    months_back = known.month - rows["month_index"]  # 0 (the month of T) .. 11
    recent = months_back < RECENT_MONTHS
    amount = rows["amount"]
    total = sum_by(hh, amount, n)
    recent_total = sum_by(hh, amount * recent, n)
    wage_total = sum_by(hh, amount * is_in(rows["source"], "wage"), n)
    # which of the 12 months each household reported, whoever reported them
    reported = np.zeros((n, WINDOW_MONTHS), dtype=bool)
    reported[hh, months_back] = True
    months = reported.sum(axis=1).astype(np.float64)
    recent_months = reported[:, :RECENT_MONTHS].sum(axis=1).astype(np.float64)
    earlier_months = months - recent_months

    none_12m, none_3m = months == 0, recent_months == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_month = np.where(none_12m, 0.0, total / months)
        per_capita_month = per_month / n_members
        recent_mean = np.where(none_3m, 0.0, recent_total / recent_months)
        earlier_mean = np.where(earlier_months > 0, (total - recent_total) / earlier_months, 0.0)
        trend = np.where(earlier_mean > 0, recent_mean / earlier_mean, np.where(recent_mean > 0, np.inf, 0.0))
        wage_share = np.where(total > 0, wage_total / total, 0.0)
        recent_per_capita_month = recent_mean / n_members
    # members with a row of the kind in the last 3 months (a row of amount 0 is no income)
    persons = known.persons()
    n_persons = len(persons["hh"])
    age = known.ages()
    paid_recently = recent & (amount > 0)

    def paid(mask: np.ndarray) -> np.ndarray:
        return np.bincount(person[mask], minlength=n_persons) > 0

    def members(has: np.ndarray) -> np.ndarray:
        return count_by(persons["hh"], has, n)

    working_age = (age >= 16) & (age < 60)
    work_income = members(paid(paid_recently & is_in(rows["source"], *WORK_SOURCES) & working_age[person]))
    benefit = members(paid(paid_recently & is_in(rows["source"], "unemployment_benefit")))
    wage = is_in(rows["source"], "wage") & (amount > 0)
    wage_stopped = members(paid(wage & ~recent) & ~paid(wage & recent))
    no_members = ~(n_members > 0)  # NaN: the household has no member at T
    return {
        "income_12m_per_capita_month": per_capita_month,
        "income_months_reported_12m": months,
        "no_income_reported_12m": none_12m.astype(np.float64),
        "no_income_reported_3m": none_3m.astype(np.float64),
        "income_trend_3m": np.minimum(trend, TREND_CAP),
        "wage_share_12m": wage_share,
        "income_pc_to_dibao": per_capita_month / dibao_line,
        "income_3m_per_capita_month": recent_per_capita_month,
        "n_working_age_work_income_3m": np.where(no_members, np.nan, work_income),
        "n_unemployment_benefit_3m": np.where(no_members, np.nan, benefit),
        "n_wage_stopped_3m": np.where(no_members, np.nan, wage_stopped),
        # yuan over the window scaled to 12 months, for the burden ratios (not a model feature)
        "_income_12m": np.where(none_12m, np.nan, per_month * 12.0),
    }
