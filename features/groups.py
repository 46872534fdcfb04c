"""The groups fairness is measured across: sex and age band of the head, town, hukou and any
disability in the household. They are never model features (town and sex are not used at all);
they exist so that every model version can be checked for unequal treatment.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from features.build import as_timestamp
from features.household import ages_on
from features.known import Known, is_in
from features.tables import Tables

AGE_BANDS = (0, 40, 60, 75, 200)
AGE_LABELS = ("<40", "40-59", "60-74", "75+")
GROUP_COLUMNS = ("head_sex", "head_age_band", "town", "hukou_type", "any_disability")


def household_groups(tables: Tables, as_of: dt.date | str | pd.Timestamp) -> pd.DataFrame:
    """One row per household (index ``household_id``, sorted like ``build_features``).

    The head is the first person listed as head among those born on or before T; "unknown" where
    there is none.
    """
    known = Known(tables, as_of_date := as_timestamp(as_of).date())
    p, n = known.persons(), known.n
    heads = np.flatnonzero(is_in(p["relation"], "head"))
    head_hh, first = np.unique(p["hh"][heads], return_index=True)
    head = np.full(n, -1)
    head[head_hh] = heads[first]
    has_head = head >= 0
    sex = np.full(n, "unknown", dtype=object)
    sex[has_head] = p["sex"][head[has_head]]
    sex[pd.isna(sex)] = "unknown"
    age = np.full(n, np.nan)
    age[has_head] = ages_on(p["birth_date"][head[has_head]], as_of_date)
    band = np.full(n, "unknown", dtype=object)
    banded = (age >= AGE_BANDS[0]) & (age < AGE_BANDS[-1])
    band[banded] = np.array(AGE_LABELS, dtype=object)[np.searchsorted(AGE_BANDS, age[banded], side="right") - 1]
    disabled = np.bincount(p["hh"][p["disability_grade"] > 0], minlength=n) > 0
    return pd.DataFrame({
        "head_sex": sex,
        "head_age_band": band,
        "town": known.household("town"),
        "hukou_type": known.household("hukou_type"),
        "any_disability": np.where(disabled, "yes", "no"),
    }, index=pd.Index(known.household_ids, name="household_id", dtype=object))
