"""Income over the 12 months up to and including the month of T.

A month with no income row for anybody in the household is a month not reported, which is not
an income of zero: a household with no income row in 12 months gets NaN income features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def income_features(income: pd.DataFrame, person_household: pd.Series, index: pd.Index,
                    as_of_month: int, n_members: pd.Series, dibao_line: float) -> pd.DataFrame:
    """Income features per household.

    ``income`` must already be cut to months ≤ ``as_of_month``; ``person_household`` maps
    person_id → household_id. Amounts are yuan; ``*_per_capita_month`` is yuan per person per month
    averaged over the 12-month window (months not reported count as missing, not zero).
    """
    window = income.loc[income["month_index"] > as_of_month - 12]
    hh = window["person_id"].map(person_household)
    months_back = as_of_month - window["month_index"]
    frame = pd.DataFrame({
        "household_id": hh.to_numpy(),
        "amount": window["amount"].to_numpy(),
        "recent": (months_back < 3).to_numpy(),
        "wage": (window["source"] == "wage").to_numpy(),
        "month_index": window["month_index"].to_numpy(),
    }).dropna(subset=["household_id"])
    frame["recent_amount"] = frame["amount"] * frame["recent"]
    frame["wage_amount"] = frame["amount"] * frame["wage"]
    g = frame.groupby("household_id", sort=False)
    sums = g[["amount", "recent_amount", "wage_amount"]].sum().reindex(index)
    months = g["month_index"].nunique().reindex(index).fillna(0.0).astype("float64")
    recent_months = frame.loc[frame["recent"]].groupby("household_id", sort=False)["month_index"].nunique()
    recent_months = recent_months.reindex(index).fillna(0.0)

    reported = months > 0
    per_month = (sums["amount"] / months).where(reported)
    per_capita_month = per_month / n_members
    earlier_months = months - recent_months
    recent_mean = (sums["recent_amount"] / recent_months).where(recent_months > 0)
    earlier_mean = ((sums["amount"] - sums["recent_amount"]) / earlier_months).where(earlier_months > 0)
    trend = (recent_mean / earlier_mean).where(earlier_mean > 0)
    return pd.DataFrame({
        "income_12m_per_capita_month": per_capita_month,
        "income_months_reported_12m": months,
        "income_trend_3m": trend.clip(upper=1e6),
        "wage_share_12m": (sums["wage_amount"] / sums["amount"]).where(sums["amount"] > 0),
        "income_pc_to_dibao": per_capita_month / dibao_line,
        # yuan over the window scaled to 12 months, for the burden ratios (not a model feature)
        "_income_12m": per_month * 12.0,
    }, index=index).astype("float64")


__all__ = ["income_features", "np"]
