"""Medical spending in windows ending at T, and spending against the household's capacity to pay.

Windows are calendar months back from T: a claim counts in the k-month window when
``T - k months < service_date ≤ T``. Amounts are yuan, summed over the household's members.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SERIOUS_GROUPS = ("cancer", "renal", "cardio_cerebrovascular", "rare_disease")
SERIOUS_SETTINGS = ("inpatient", "special_outpatient")
RATIO_CAP = 50.0  # ratios are capped: beyond 50× income the size of the ratio says nothing more


def spending_features(claims: pd.DataFrame, person_household: pd.Series, index: pd.Index,
                      as_of: pd.Timestamp, n_members: pd.Series) -> pd.DataFrame:
    """Windowed spending per household; ``claims`` must already be cut to service_date ≤ T."""
    start = {k: as_of - pd.DateOffset(months=k) for k in (3, 6, 12)}
    c = claims.loc[claims["service_date"] > start[12]]
    hh = c["person_id"].map(person_household).to_numpy()
    oop = c["out_of_pocket"].to_numpy()
    inpatient = (c["setting"] == "inpatient").to_numpy()
    serious = (c["diagnosis_group"].isin(SERIOUS_GROUPS) & c["setting"].isin(SERIOUS_SETTINGS)).to_numpy()
    frame = pd.DataFrame({
        "household_id": hh,
        "person_id": c["person_id"].to_numpy(),
        "oop_3m": np.where((c["service_date"] > start[3]).to_numpy(), oop, 0.0),
        "oop_6m": np.where((c["service_date"] > start[6]).to_numpy(), oop, 0.0),
        "oop_12m": oop,
        "total_cost_12m": c["total_cost"].to_numpy(),
        "max_stay_oop_12m": np.where(inpatient, oop, 0.0),
        "inpatient_days_12m": c["inpatient_days"].to_numpy(dtype="float64"),
        "inpatient_stays_12m": inpatient.astype("float64"),
        "serious_claims_12m": serious.astype("float64"),
        "special_outpatient_claims_12m": (c["setting"] == "special_outpatient").to_numpy(dtype="float64"),
    }).dropna(subset=["household_id"])
    g = frame.groupby("household_id", sort=False)
    sums = g[["oop_3m", "oop_6m", "oop_12m", "total_cost_12m", "inpatient_days_12m", "inpatient_stays_12m",
              "serious_claims_12m", "special_outpatient_claims_12m"]].sum()
    sums["max_stay_oop_12m"] = g["max_stay_oop_12m"].max()
    per_person = frame.groupby(["household_id", "person_id"], sort=False).agg(
        oop=("oop_12m", "sum"), serious=("serious_claims_12m", "max"))
    per_person_g = per_person.groupby(level="household_id", sort=False)
    sums["oop_12m_max_person"] = per_person_g["oop"].max()
    sums["n_members_serious_dx_12m"] = per_person_g["serious"].sum()
    # No claim in 12 months is a known zero: every settled claim reaches the platform.
    out = sums.reindex(index).fillna(0.0).astype("float64")
    out["oop_12m_per_capita"] = out["oop_12m"] / n_members
    return out


def burden_features(oop_12m: pd.Series, income_12m: pd.Series, n_members: pd.Series,
                    dibao_line: float) -> pd.DataFrame:
    """Out-of-pocket spending against income and against capacity to pay.

    Capacity to pay (WHO's, Xu et al. 2003, with the 低保 line as subsistence) is the 12-month
    income less ``dibao_line × members × 12``. Where income is not reported the ratios are NaN.
    """
    subsistence = dibao_line * n_members * 12.0
    capacity = (income_12m - subsistence).clip(lower=0.0)
    to_income = np.where(oop_12m > 0, oop_12m / income_12m.clip(lower=1.0), 0.0)
    to_capacity = np.where(oop_12m > 0, oop_12m / capacity.clip(lower=1.0), 0.0)
    after = (income_12m - oop_12m) / n_members / 12.0
    return pd.DataFrame({
        "oop_12m_to_income": pd.Series(to_income, index=oop_12m.index).clip(upper=RATIO_CAP).where(income_12m.notna()),
        "oop_to_capacity": pd.Series(to_capacity, index=oop_12m.index).clip(upper=RATIO_CAP).where(
            income_12m.notna()),
        "income_after_oop_pc_month": after,
        "after_oop_to_dibao": after / dibao_line,
    }, index=oop_12m.index).astype("float64")
