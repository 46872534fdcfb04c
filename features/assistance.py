"""Assistance the household receives at T, and what it received or left in the year before.

An assistance row counts from its start_date ≤ T. Its end_date is used only where it is on or
before T: an end after T was not known at T, so the row still counts as ongoing (no look-ahead).
"""

from __future__ import annotations

import pandas as pd

CURRENT_PROGRAMS = ("dibao", "dibao_edge", "tekun", "expenditure_hardship")


def assistance_features(assistance: pd.DataFrame, index: pd.Index, as_of: pd.Timestamp) -> pd.DataFrame:
    """``assistance`` must already be cut to start_date ≤ T."""
    a = assistance
    ended = a["end_date"].notna() & (a["end_date"] <= as_of)
    ongoing = ~ended
    year_ago = as_of - pd.DateOffset(months=12)
    frame = pd.DataFrame({"household_id": a["household_id"].to_numpy()})
    for program in CURRENT_PROGRAMS:
        frame[f"on_{program}"] = ((a["program"] == program) & ongoing).to_numpy(dtype="float64")
    frame["assistance_monthly_amount"] = a["monthly_amount"].where(
        ongoing & a["program"].isin(CURRENT_PROGRAMS), 0.0).to_numpy()
    frame["temporary_assistance_12m"] = ((a["program"] == "temporary") & (a["start_date"] > year_ago)
                                         ).to_numpy(dtype="float64")
    frame["_left"] = (ended & (a["end_date"] > year_ago) & a["program"].isin(CURRENT_PROGRAMS)).to_numpy(
        dtype="float64")
    g = frame.groupby("household_id", sort=False)
    out = g.agg({
        **{f"on_{p}": "max" for p in CURRENT_PROGRAMS},
        "assistance_monthly_amount": "sum", "temporary_assistance_12m": "sum", "_left": "max",
    }).reindex(index).fillna(0.0).astype("float64")
    on_any = out[[f"on_{p}" for p in CURRENT_PROGRAMS]].max(axis=1)
    # "left" means left and is not back on a programme now
    out["left_assistance_12m"] = ((out.pop("_left") > 0) & (on_any == 0)).astype("float64")
    return out
