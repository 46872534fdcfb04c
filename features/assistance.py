"""Assistance the household receives at T, and what it received or left in the year before.

An assistance row counts from its start_date ≤ T. Its end_date is used only where it is on or
before T: an end after T was not known at T, so the row still counts as ongoing (no look-ahead).
"""

from __future__ import annotations

import numpy as np

from features.known import Known, count_by, is_in, months_before, sum_by

CURRENT_PROGRAMS = ("dibao", "dibao_edge", "tekun", "expenditure_hardship")
COLUMNS = ("program", "start_date", "end_date", "monthly_amount")


def assistance_features(known: Known) -> dict[str, np.ndarray]:
    a = known.assistance(COLUMNS)
    hh, n = a["hh"], known.n
    program = a["program"]
    ended = a["end_date"] <= known.day  # NaT (no end yet) compares False
    ongoing = ~ended
    year_ago = np.datetime64(months_before(known.as_of, 12), "D")
    current = is_in(program, *CURRENT_PROGRAMS)
    out = {f"on_{p}": np.minimum(count_by(hh, is_in(program, p) & ongoing, n), 1.0) for p in CURRENT_PROGRAMS}
    out["assistance_monthly_amount"] = sum_by(hh, np.where(ongoing & current, a["monthly_amount"], 0.0), n)
    out["temporary_assistance_12m"] = count_by(hh, is_in(program, "temporary") & (a["start_date"] > year_ago), n)
    left = count_by(hh, ended & (a["end_date"] > year_ago) & current, n) > 0
    on_any = np.any([out[f"on_{p}"] > 0 for p in CURRENT_PROGRAMS], axis=0)
    # "left" means left and is not back on a programme now
    out["left_assistance_12m"] = (left & ~on_any).astype(np.float64)
    return out
