"""Composition, disability, employment and assets of each household as of T."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.known import Known, count_by, is_in, max_by
from features.known import ages_on as ages_on  # re-exported: it lived here first

WORKING = ("employed", "self_employed", "farmer")
NOT_WORKING = ("unemployed", "unable_to_work", "other")
ELDERLY_AGE, OLD_OLD_AGE, CHILD_AGE = 60, 80, 16
MINOR_AGE = 18  # 未成年人; 困境儿童 are minors


def ages_at(birth_date: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """:func:`ages_on` for a Series of dates (same index and name)."""
    return pd.Series(ages_on(birth_date.to_numpy(dtype="datetime64[ns]"), as_of.date()), index=birth_date.index,
                     name=birth_date.name)


def composition(known: Known) -> dict[str, np.ndarray]:
    """Counts per household of the persons alive on the register at T (born on or before T).

    Beside the counts: the head's and the oldest member's age, whether only elderly people live
    there (``elderly_only``) or one elderly person alone (``lives_alone_elderly``), the minors (under
    18: 困境儿童 are minors) and those of a household where nobody works (``n_minors_no_earner``;
    employment is the latest known status). A household with no member left gets NaN counts.
    """
    p, n = known.persons(), known.n
    hh = p["hh"]
    age = known.ages()
    emp = p["employment"]
    grade = p["disability_grade"]
    members = np.bincount(hh, minlength=n).astype(np.float64)
    has = members > 0
    out = {
        "n_members": members,
        "n_elderly": count_by(hh, age >= ELDERLY_AGE, n),
        "n_children": count_by(hh, age < CHILD_AGE, n),
        "n_earners": count_by(hh, is_in(emp, *WORKING), n),
        "n_unemployed": count_by(hh, is_in(emp, "unemployed"), n),
        "n_working_age_not_working": count_by(hh, (age >= 16) & (age < 60) & is_in(emp, *NOT_WORKING), n),
        "n_disabled": count_by(hh, grade > 0, n),
        "n_severe_disabled": count_by(hh, is_in(grade, 1, 2), n),
        "n_elderly_80plus": count_by(hh, age >= OLD_OLD_AGE, n),
        "n_minors": count_by(hh, age < MINOR_AGE, n),
    }
    for name, counts in out.items():
        out[name] = np.where(has, counts, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["dependency_ratio"] = (out["n_elderly"] + out["n_children"]) / out["n_members"]
    out["elderly_only"] = np.where(has, (out["n_elderly"] == out["n_members"]).astype(np.float64), np.nan)
    # NaN where the household has no member (NaN counts compare False, and stay NaN through where)
    out["lives_alone_elderly"] = np.where(has, ((members == 1) & (out["n_elderly"] == 1)).astype(np.float64), np.nan)
    out["n_minors_no_earner"] = np.where(out["n_earners"] == 0, out["n_minors"], 0.0 * out["n_minors"])
    oldest = max_by(hh, age, n)
    out["oldest_age"] = np.where(oldest == -np.inf, np.nan, oldest)
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

