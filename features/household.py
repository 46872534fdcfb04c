"""Composition, disability, employment and assets of each household as of T."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from features.known import Known, count_by, is_in

WORKING = ("employed", "self_employed", "farmer")
NOT_WORKING = ("unemployed", "unable_to_work", "other")


def ages_on(birth_date: np.ndarray, as_of: dt.date) -> np.ndarray:
    """Whole years of age on ``as_of`` (a birthday on ``as_of`` counts), float64; NaN for NaT."""
    months = birth_date.astype("datetime64[M]")
    month_of_year = months.astype(np.int64) % 12 + 1
    day = (birth_date.astype("datetime64[D]") - months).astype(np.int64) + 1
    had_birthday = month_of_year * 100 + day <= as_of.month * 100 + as_of.day
    age = (as_of.year - 1970 - months.astype("datetime64[Y]").astype(np.int64) - ~had_birthday).astype(np.float64)
    return np.where(np.isnat(birth_date), np.nan, age)


def ages_at(birth_date: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """:func:`ages_on` for a Series of dates (same index and name)."""
    return pd.Series(ages_on(birth_date.to_numpy(dtype="datetime64[ns]"), as_of.date()), index=birth_date.index,
                     name=birth_date.name)


def composition(known: Known) -> dict[str, np.ndarray]:
    """Counts per household of the persons alive on the register at T (born on or before T).

    A household with no member left gets NaN counts and the model treats them as missing.
    """
    p, n = known.persons(), known.n
    hh = p["hh"]
    age = ages_on(p["birth_date"], known.as_of)
    emp = p["employment"]
    grade = p["disability_grade"]
    members = np.bincount(hh, minlength=n).astype(np.float64)
    has = members > 0
    out = {
        "n_members": members,
        "n_elderly": count_by(hh, age >= 60, n),
        "n_children": count_by(hh, age < 16, n),
        "n_earners": count_by(hh, is_in(emp, *WORKING), n),
        "n_unemployed": count_by(hh, is_in(emp, "unemployed"), n),
        "n_working_age_not_working": count_by(hh, (age >= 16) & (age < 60) & is_in(emp, *NOT_WORKING), n),
        "n_disabled": count_by(hh, grade > 0, n),
        "n_severe_disabled": count_by(hh, is_in(grade, 1, 2), n),
    }
    for name, counts in out.items():
        out[name] = np.where(has, counts, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["dependency_ratio"] = (out["n_elderly"] + out["n_children"]) / out["n_members"]
    out["elderly_only"] = np.where(has, (out["n_elderly"] == out["n_members"]).astype(np.float64), np.nan)
    # the first head listed, where a household (wrongly) lists more than one
    heads = np.flatnonzero(is_in(p["relation"], "head"))
    first_hh, first = np.unique(hh[heads], return_index=True)
    head_age = np.full(n, np.nan)
    head_age[first_hh] = age[heads[first]]
    out["head_age"] = head_age
    return out


def assets(known: Known, n_members: np.ndarray) -> dict[str, np.ndarray]:
    """Assets from the registry and bank checks; per-capita by the members counted at T."""
    return {
        "financial_assets_per_capita": known.household("financial_assets") / n_members,
        "property_count": known.household("property_count").astype(np.float64),
        "vehicle_count": known.household("vehicle_count").astype(np.float64),
        "housing_owned": is_in(known.household("housing"), "owned").astype(np.float64),
    }

