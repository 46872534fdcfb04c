"""The groups fairness is measured across: sex and age band of the head, town, hukou and any
disability in the household. They are never model features (town and sex are not used at all);
they exist so that every model version can be checked for unequal treatment.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from features.build import as_timestamp, cut_to
from features.household import ages_at
from features.tables import Tables

AGE_BANDS = (0, 40, 60, 75, 200)
AGE_LABELS = ("<40", "40-59", "60-74", "75+")
GROUP_COLUMNS = ("head_sex", "head_age_band", "town", "hukou_type", "any_disability")


def household_groups(tables: Tables, as_of: dt.date | str | pd.Timestamp) -> pd.DataFrame:
    """One row per household (index ``household_id``, sorted like ``build_features``)."""
    t = as_timestamp(as_of)
    known = cut_to(tables, t)
    index = pd.Index(sorted(known.households["household_id"].unique()), name="household_id", dtype=object)
    hh = known.households.set_index("household_id").reindex(index)
    p = known.persons
    heads = p.loc[p["relation"] == "head"].drop_duplicates("household_id").set_index("household_id").reindex(index)
    age = ages_at(heads["birth_date"], t)
    band = pd.cut(age, bins=list(AGE_BANDS), labels=list(AGE_LABELS), right=False).astype(object)
    disabled = p.loc[p["disability_grade"] > 0, "household_id"].unique()
    return pd.DataFrame({
        "head_sex": heads["sex"].fillna("unknown").to_numpy(),
        "head_age_band": np.where(pd.isna(band), "unknown", band),
        "town": hh["town"].to_numpy(),
        "hukou_type": hh["hukou_type"].to_numpy(),
        "any_disability": np.where(index.isin(disabled), "yes", "no"),
    }, index=index)
