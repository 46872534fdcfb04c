"""Medical spending in windows ending at T, and spending against the household's capacity to pay.

Windows are calendar months back from T: a claim counts in the k-month window when
``T - k months < service_date ≤ T``. Amounts are yuan, summed over the household's members.
"""

from __future__ import annotations

import numpy as np

from features.household import ELDERLY_AGE
from features.known import Known, count_by, is_in, max_by, months_before, sum_by

SERIOUS_GROUPS = ("cancer", "renal", "cardio_cerebrovascular", "rare_disease")
SERIOUS_SETTINGS = ("inpatient", "special_outpatient")
ACUTE_GROUPS = ("cardio_cerebrovascular", "injury")  # stroke, heart attack, fracture: care needs follow
RATIO_CAP = 50.0  # ratios are capped: beyond 50× income the size of the ratio says nothing more
COLUMNS = ("service_date", "setting", "diagnosis_group", "total_cost", "out_of_pocket", "inpatient_days")


def spending_features(known: Known, n_members: np.ndarray) -> dict[str, np.ndarray]:
    """Windowed spending per household. No claim in 12 months is a known zero: every settled claim
    reaches the platform. ``elderly_acute_stays_12m`` counts hospital stays of members 60 or older
    (age at T) for a cardio-cerebrovascular event or an injury."""
    c = known.claims(months_before(known.as_of, 12), COLUMNS)
    hh, n = c["hh"], known.n
    oop = c["out_of_pocket"]
    day = c["service_date"]
    inpatient = is_in(c["setting"], "inpatient")
    serious = is_in(c["diagnosis_group"], *SERIOUS_GROUPS) & is_in(c["setting"], *SERIOUS_SETTINGS)
    out = {
        "oop_3m": sum_by(hh, np.where(day > np.datetime64(months_before(known.as_of, 3), "D"), oop, 0.0), n),
        "oop_6m": sum_by(hh, np.where(day > np.datetime64(months_before(known.as_of, 6), "D"), oop, 0.0), n),
        "oop_12m": sum_by(hh, oop, n),
        "total_cost_12m": sum_by(hh, c["total_cost"], n),
        "max_stay_oop_12m": _zero_if_none(max_by(hh, np.where(inpatient, oop, 0.0), n)),
        "inpatient_days_12m": sum_by(hh, c["inpatient_days"], n),
        "inpatient_stays_12m": count_by(hh, inpatient, n),
        "serious_claims_12m": count_by(hh, serious, n),
        "special_outpatient_claims_12m": count_by(hh, is_in(c["setting"], "special_outpatient"), n),
    }
    # per member first (positions among the persons known at T), then the household's largest
    person, person_hh = c["person"], known.persons()["hh"]
    elderly = known.ages() >= ELDERLY_AGE
    out["elderly_acute_stays_12m"] = count_by(hh, inpatient & is_in(c["diagnosis_group"], *ACUTE_GROUPS)
                                              & elderly[person], n)
    n_persons = len(person_hh)
    has_claims = np.bincount(person, minlength=n_persons) > 0
    person_oop = sum_by(person, oop, n_persons)
    out["oop_12m_max_person"] = _zero_if_none(max_by(person_hh[has_claims], person_oop[has_claims], n))
    out["n_members_serious_dx_12m"] = count_by(person_hh, np.bincount(person[serious], minlength=n_persons) > 0, n)
    out["oop_12m_per_capita"] = out["oop_12m"] / n_members
    return out


def _zero_if_none(maxima: np.ndarray) -> np.ndarray:
    return np.where(maxima == -np.inf, 0.0, maxima)


def burden_features(oop_12m: np.ndarray, income_12m: np.ndarray, n_members: np.ndarray,
                    dibao_line: float | np.ndarray) -> dict[str, np.ndarray]:
    """Out-of-pocket spending against income and against capacity to pay.

    Capacity to pay (WHO's, Xu et al. 2003, with the 低保 line as subsistence) is the 12-month
    income less ``dibao_line × members × 12`` (``dibao_line``: one for all, or each household's own
    city's). Where income is not reported the ratios are NaN.
    """
    subsistence = dibao_line * n_members * 12.0
    capacity = np.maximum(income_12m - subsistence, 0.0)
    reported = ~np.isnan(income_12m)
    spent = oop_12m > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        to_income = np.where(spent, oop_12m / np.maximum(income_12m, 1.0), 0.0)
        to_capacity = np.where(spent, oop_12m / np.maximum(capacity, 1.0), 0.0)
    after = (income_12m - oop_12m) / n_members / 12.0
    return {
        "oop_12m_to_income": np.where(reported, np.minimum(to_income, RATIO_CAP), np.nan),
        "oop_to_capacity": np.where(reported, np.minimum(to_capacity, RATIO_CAP), np.nan),
        "income_after_oop_pc_month": after,
        "after_oop_to_dibao": after / dibao_line,
    }
