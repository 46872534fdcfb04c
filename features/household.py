"""Composition, disability, employment and assets of each household as of T."""

from __future__ import annotations

import numpy as np
import pandas as pd

WORKING = ("employed", "self_employed", "farmer")
NOT_WORKING = ("unemployed", "unable_to_work", "other")


def ages_at(birth_date: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """Whole years of age on ``as_of``."""
    had_birthday = (birth_date.dt.month < as_of.month) | (
        (birth_date.dt.month == as_of.month) & (birth_date.dt.day <= as_of.day)
    )
    return (as_of.year - birth_date.dt.year - (~had_birthday).astype("int64")).astype("float64")


def composition(persons: pd.DataFrame, index: pd.Index, as_of: pd.Timestamp) -> pd.DataFrame:
    """Counts per household of the persons alive on the register at T (born on or before T).

    ``persons`` must already be cut to T. A household with no member left gets NaN counts and the
    model treats them as missing.
    """
    age = ages_at(persons["birth_date"], as_of)
    emp = persons["employment"]
    grade = persons["disability_grade"]
    flags = pd.DataFrame({
        "household_id": persons["household_id"].to_numpy(),
        "n_members": 1.0,
        "n_elderly": (age >= 60).astype("float64"),
        "n_children": (age < 16).astype("float64"),
        "n_earners": emp.isin(WORKING).astype("float64"),
        "n_unemployed": (emp == "unemployed").astype("float64"),
        "n_working_age_not_working": ((age >= 16) & (age < 60) & emp.isin(NOT_WORKING)).astype("float64"),
        "n_disabled": (grade > 0).astype("float64"),
        "n_severe_disabled": grade.isin((1, 2)).astype("float64"),
    })
    counts = flags.groupby("household_id", sort=False).sum().reindex(index)
    counts["dependency_ratio"] = (counts["n_elderly"] + counts["n_children"]) / counts["n_members"]
    counts["elderly_only"] = (counts["n_elderly"] == counts["n_members"]).astype("float64").where(
        counts["n_members"].notna()
    )
    heads = persons.loc[persons["relation"] == "head"]
    counts["head_age"] = pd.Series(age.loc[heads.index].to_numpy(), index=heads["household_id"].to_numpy()
                                   ).groupby(level=0).first().reindex(index)
    return counts


def assets(households: pd.DataFrame, index: pd.Index, n_members: pd.Series) -> pd.DataFrame:
    """Assets from the registry and bank checks; per-capita by the members counted at T."""
    h = households.set_index("household_id").reindex(index)
    return pd.DataFrame({
        "financial_assets_per_capita": h["financial_assets"] / n_members,
        "property_count": h["property_count"].astype("float64"),
        "vehicle_count": h["vehicle_count"].astype("float64"),
        "housing_owned": (h["housing"] == "owned").astype("float64"),
    }, index=index)


def hukou_is_rural(households: pd.DataFrame, index: pd.Index) -> pd.Series:
    """Used only to pick the reference income (urban or rural); never a model feature."""
    return households.set_index("household_id")["hukou_type"].reindex(index).eq("rural").to_numpy(dtype=bool)


__all__ = ["ages_at", "assets", "composition", "hukou_is_rural", "np"]
