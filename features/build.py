"""The one feature path: raw tables and an as-of date to one row of features per household.

``build_features`` serves training snapshots, the nightly batch and a single API request alike,
so there is no second copy to drift. It is pure: no files, no clock, no globals.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from features.assistance import assistance_features
from features.catalog import FEATURE_IDS
from features.household import assets, composition
from features.income import income_features
from features.policy import PolicyBook
from features.spending import burden_features, spending_features
from features.tables import Tables


def as_timestamp(as_of: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    if ts != ts.normalize():
        raise ValueError(f"as_of must be a date, got {as_of!r}")
    return ts


def cut_to(tables: Tables, as_of: dt.date | str | pd.Timestamp) -> Tables:
    """The tables as they could be known on ``as_of``: nothing dated after it.

    Claims by service_date, income by month, assistance by start_date, persons by birth_date;
    verifications (labels) are dropped entirely.
    """
    t = as_timestamp(as_of)
    m = t.year * 12 + t.month - 1
    return Tables(
        households=tables.households,
        persons=tables.persons.loc[tables.persons["birth_date"] <= t],
        income=tables.income.loc[tables.income["month_index"] <= m],
        claims=tables.claims.loc[tables.claims["service_date"] <= t],
        assistance=tables.assistance.loc[tables.assistance["start_date"] <= t],
        verifications=tables.verifications.iloc[0:0],
    )


def build_features(tables: Tables, as_of: dt.date | str | pd.Timestamp, policy: PolicyBook) -> pd.DataFrame:
    """One row per household (index ``household_id``, sorted), columns in catalogue order, float64.

    Uses only rows dated on or before ``as_of`` (see :func:`cut_to`) and the policy version in
    force on ``as_of``. Missing values are NaN and stay NaN (a missing income is not zero).
    """
    t = as_timestamp(as_of)
    params = policy.at(t.date())
    known = cut_to(tables, t)
    index = pd.Index(sorted(known.households["household_id"].unique()), name="household_id", dtype=object)
    person_household = known.persons.set_index("person_id")["household_id"]

    comp = composition(known.persons, index, t)
    n = comp["n_members"]
    inc = income_features(known.income, person_household, index, t.year * 12 + t.month - 1, n, params.dibao_line)
    spend = spending_features(known.claims, person_household, index, t, n)
    burden = burden_features(spend["oop_12m"], inc["_income_12m"], n, params.dibao_line)
    frame = pd.concat([
        comp, assets(known.households, index, n), inc, spend, burden,
        assistance_features(known.assistance, index, t),
    ], axis=1)
    return frame.loc[:, list(FEATURE_IDS)].astype("float64")
