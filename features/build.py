"""The one feature path: raw tables and an as-of date to one row of features per household.

``build_features`` serves training snapshots, the nightly batch and a single API request alike,
so there is no second copy to drift. It is pure: no files, no clock, no globals.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from features.assistance import assistance_features
from features.catalog import FEATURE_IDS
from features.household import assets, composition
from features.income import income_features
from features.known import Known
from features.policy import PolicyBook
from features.spending import burden_features, spending_features
from features.tables import Tables

# The output's column labels, built once: building them costs more than one household's features.
_COLUMNS = pd.Index(FEATURE_IDS)


def as_timestamp(as_of: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    if ts != ts.normalize():
        raise ValueError(f"as_of must be a date, got {as_of!r}")
    return ts


def cut_to(tables: Tables, as_of: dt.date | str | pd.Timestamp) -> Tables:
    """The tables as they could be known on ``as_of``: nothing dated after it.

    Claims by service_date, income by month, assistance by start_date, persons by birth_date;
    verifications (labels) are dropped entirely. :func:`build_features` makes the same cut with
    masks on the columns (:class:`features.known.Known`) instead of copying the tables.
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


def feature_matrix(tables: Tables, as_of: dt.date | str | pd.Timestamp, policy: PolicyBook
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`build_features` as arrays: the sorted household ids and the ``(households, features)``
    float64 matrix, columns in catalogue order (``FEATURE_IDS``). The API scores from this matrix:
    for one household, a DataFrame and its indexing would cost more than the features."""
    t = as_timestamp(as_of).date()
    known = Known(tables, t)
    # each household's own city's 低保 line: one number when all are of one city (the usual case)
    line = policy.dibao_lines(_cities(known, policy), t)
    features = composition(known)
    n = features["n_members"]
    features |= assets(known, n)
    features |= income_features(known, n, line)
    features |= spending_features(known, n)
    features |= burden_features(features["oop_12m"], features["_income_12m"], n, line)
    features |= assistance_features(known)
    values = np.empty((len(FEATURE_IDS), known.n))
    for row, name in enumerate(FEATURE_IDS):
        values[row] = features[name]
    return known.household_ids, values.T


def _cities(known: Known, policy: PolicyBook) -> np.ndarray:
    return policy.cities_of(known.household("town"), known.optional_household("city"))


def household_cities(tables: Tables, policy: PolicyBook) -> np.ndarray:
    """Each household's city id (its ``city``, else its town's city; :meth:`PolicyBook.cities_of`),
    in the order of :func:`build_features`' rows (sorted household ids): what the lists, the
    calculator and the advice take to judge each household by its own city's parameters."""
    return _cities(Known(tables, dt.date(2000, 1, 1)), policy)


def build_features(tables: Tables, as_of: dt.date | str | pd.Timestamp, policy: PolicyBook) -> pd.DataFrame:
    """One row per household (index ``household_id``, sorted), columns in catalogue order, float64.

    Uses only rows dated on or before ``as_of`` (see :func:`cut_to`) and, per household, the policy
    version in force on ``as_of`` in the household's own city (:func:`household_cities`). Missing
    values are NaN, except a window with no income reported, which is said so
    (``no_income_reported_*``) and has the income 0 (features/income.py).
    The same numpy code serves one household and a whole city: no per-row Python, no groupby.
    """
    ids, values = feature_matrix(tables, as_of, policy)
    return pd.DataFrame(values, index=pd.Index(ids, name="household_id", dtype=object),
                        columns=_COLUMNS.view(), copy=False)
