"""Income over the 12 months up to and including the month of T.

A month with no income row for anybody in the household is a month not reported, which is not
an income of zero: a household with no income row in 12 months gets NaN income features.
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

    with np.errstate(invalid="ignore", divide="ignore"):
        per_month = np.where(months > 0, total / months, np.nan)
        per_capita_month = per_month / n_members
        recent_mean = np.where(recent_months > 0, recent_total / recent_months, np.nan)
        earlier_mean = np.where(earlier_months > 0, (total - recent_total) / earlier_months, np.nan)
        trend = np.where(earlier_mean > 0, recent_mean / earlier_mean, np.nan)
        wage_share = np.where(total > 0, wage_total / total, np.nan)
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
        "income_trend_3m": np.minimum(trend, TREND_CAP),
        "wage_share_12m": wage_share,
        "income_pc_to_dibao": per_capita_month / dibao_line,
        "income_3m_per_capita_month": recent_per_capita_month,
        "n_working_age_work_income_3m": np.where(no_members, np.nan, work_income),
        "n_unemployment_benefit_3m": np.where(no_members, np.nan, benefit),
        "n_wage_stopped_3m": np.where(no_members, np.nan, wage_stopped),
        # yuan over the window scaled to 12 months, for the burden ratios (not a model feature)
        "_income_12m": per_month * 12.0,
    }
