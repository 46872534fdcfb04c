"""Medical spending in calendar-month windows ending at T, and spending against income and capacity."""

from __future__ import annotations

import math

import pytest

from features.build import build_features
from features.io import load_policy_book
from tests.factories import (
    bundle,
    claim,
    features_of,
    member,
    monthly_income,
    months_back,
    tables_of,
    with_person_ids,
)

POLICY = load_policy_book()
T = "2026-06-30"  # T - 3 months = 2026-03-30, T - 6 = 2025-12-30, T - 12 = 2025-06-30
WINDOWS = ("oop_3m", "oop_6m", "oop_12m")


def _windows(service_date: str, as_of: str = T) -> tuple[float, ...]:
    f = features_of(bundle(as_of=as_of, claims=[claim("C1", service_date, 100.0)]), POLICY)
    return tuple(f[w] for w in WINDOWS)


@pytest.mark.parametrize(("service_date", "expected"), [
    ("2026-06-30", (100.0, 100.0, 100.0)),   # on T: in
    ("2026-07-01", (0.0, 0.0, 0.0)),         # one day after T: out
    ("2026-03-31", (100.0, 100.0, 100.0)),   # a day inside the 3-month window
    ("2026-03-30", (0.0, 100.0, 100.0)),     # exactly 3 months before T: out of 3m
    ("2025-12-31", (0.0, 100.0, 100.0)),
    ("2025-12-30", (0.0, 0.0, 100.0)),       # exactly 6 months before T: out of 6m
    ("2025-07-01", (0.0, 0.0, 100.0)),
    ("2025-06-30", (0.0, 0.0, 0.0)),         # exactly 12 months before T: out of 12m
])
def test_window_boundaries(service_date, expected):
    assert _windows(service_date) == expected


@pytest.mark.parametrize(("service_date", "expected"), [
    ("2026-02-28", (0.0, 100.0, 100.0)),     # 2026-05-31 minus 3 calendar months is 2026-02-28
    ("2026-03-01", (100.0, 100.0, 100.0)),
])
def test_windows_are_calendar_months_at_a_month_end(service_date, expected):
    assert _windows(service_date, as_of="2026-05-31") == expected


def _two_member_claims():
    return [
        claim("C1", "2026-04-11", 19000, setting="inpatient", diagnosis_group="cancer", fund_paid=40000,
              critical_illness_paid=9000, inpatient_days=12),
        claim("C2", "2026-01-05", 3000, setting="inpatient", fund_paid=7000, inpatient_days=5),
        claim("C3", "2025-10-01", 500, person_id="P2", setting="special_outpatient", diagnosis_group="renal",
              fund_paid=1500),
        claim("C4", "2026-06-01", 100, person_id="P2", setting="outpatient", diagnosis_group="cancer",
              fund_paid=200),
        claim("C5", "2026-06-20", 50, person_id="P2", setting="pharmacy"),
        claim("C6", "2025-05-01", 7000, setting="inpatient", diagnosis_group="cancer", fund_paid=9000,
              inpatient_days=10),  # older than 12 months
    ]


def test_spending_aggregates_over_members_and_windows():
    b = bundle(members=[member(), member("P2", "spouse", sex="F")], income=[], claims=_two_member_claims())
    f = features_of(b, POLICY)
    assert f[["oop_3m", "oop_6m", "oop_12m"]].tolist() == [19150.0, 22150.0, 22650.0]
    assert f["total_cost_12m"] == 80350.0
    assert f["max_stay_oop_12m"] == 19000.0
    assert f["inpatient_days_12m"] == 17.0
    assert f["inpatient_stays_12m"] == 2.0
    assert f["serious_claims_12m"] == 2.0          # C1 (cancer, inpatient) and C3 (renal, 门特)
    assert f["n_members_serious_dx_12m"] == 2.0
    assert f["special_outpatient_claims_12m"] == 1.0
    assert f["oop_12m_max_person"] == 22000.0      # P1: 19000 + 3000
    assert f["oop_12m_per_capita"] == 11325.0


def test_max_stay_counts_inpatient_claims_only():
    claims = [claim("C1", "2026-05-01", 30000, setting="outpatient"),
              claim("C2", "2026-05-02", 5000, setting="inpatient", inpatient_days=3),
              claim("C3", "2026-05-03", 4000, setting="inpatient", inpatient_days=2)]
    f = features_of(bundle(claims=claims), POLICY)
    assert (f["max_stay_oop_12m"], f["inpatient_stays_12m"], f["inpatient_days_12m"]) == (5000.0, 2.0, 5.0)
    f = features_of(bundle(claims=claims[:1]), POLICY)
    assert (f["max_stay_oop_12m"], f["inpatient_stays_12m"]) == (0.0, 0.0)


GROUPS = ("cancer", "renal", "cardio_cerebrovascular", "rare_disease", "diabetes_metabolic", "mental",
          "respiratory", "injury", "maternity", "other")
SETTINGS = ("inpatient", "special_outpatient", "outpatient", "pharmacy")


def test_serious_claims_need_a_serious_group_and_an_inpatient_or_special_setting():
    # one household per (group, setting), all built in one call
    cases = [(g, s) for g in GROUPS for s in SETTINGS]
    bundles = [with_person_ids(bundle(f"H{i:02d}", claims=[claim(f"C{i}", setting=s, diagnosis_group=g)]),
                               {"P1": f"P{i}"}) for i, (g, s) in enumerate(cases)]
    frame = build_features(tables_of(*bundles), T, POLICY)
    got = {case: (frame.iloc[i]["serious_claims_12m"], frame.iloc[i]["n_members_serious_dx_12m"])
           for i, case in enumerate(cases)}
    serious = {(g, s) for g in GROUPS[:4] for s in SETTINGS[:2]}
    assert got == {case: (1.0, 1.0) if case in serious else (0.0, 0.0) for case in cases}


def test_a_member_with_several_serious_claims_counts_once():
    claims = [claim("C1", "2026-05-01", 10, setting="inpatient", diagnosis_group="cancer", inpatient_days=1),
              claim("C2", "2026-06-01", 10, setting="special_outpatient", diagnosis_group="cancer"),
              claim("C3", "2026-06-02", 10, person_id="P2", setting="outpatient", diagnosis_group="cancer"),
              claim("C4", "2025-06-30", 10, person_id="P2", setting="inpatient", diagnosis_group="renal")]
    f = features_of(bundle(members=[member(), member("P2", "spouse")], claims=claims), POLICY)
    assert (f["serious_claims_12m"], f["n_members_serious_dx_12m"]) == (2.0, 1.0)


def test_no_claims_is_a_known_zero():
    f = features_of(bundle(claims=[]), POLICY)
    assert (f[["oop_3m", "oop_6m", "oop_12m", "oop_12m_per_capita", "oop_12m_max_person", "total_cost_12m",
               "max_stay_oop_12m", "inpatient_days_12m", "inpatient_stays_12m", "serious_claims_12m",
               "n_members_serious_dx_12m", "special_outpatient_claims_12m"]] == 0.0).all()


# burden: 2 members, 3000 yuan a month for 12 months = 36000 a year; 低保 1100 in 2026, so
# subsistence = 1100 × 2 × 12 = 26400 and capacity = 9600.
def _burden(oop: float, monthly: float = 3000.0, as_of: str = T):
    claims = [claim("C1", as_of[:8] + "01", oop)] if oop else []
    b = bundle(as_of=as_of, members=[member(), member("P2", "spouse")], claims=claims,
               income=monthly_income(months_back(as_of, 12), monthly))
    return features_of(b, POLICY)


def test_burden_ratios_known_answer():
    f = _burden(4800.0)
    assert f["oop_12m_to_income"] == 4800 / 36000
    assert f["oop_to_capacity"] == 0.5
    assert f["income_after_oop_pc_month"] == 1300.0
    assert f["after_oop_to_dibao"] == 1300 / 1100


def test_zero_oop_gives_zero_burden():
    f = _burden(0.0)
    assert (f["oop_12m_to_income"], f["oop_to_capacity"]) == (0.0, 0.0)
    assert (f["income_after_oop_pc_month"], f["after_oop_to_dibao"]) == (1500.0, 1500 / 1100)


def test_capacity_is_floored_at_zero_and_ratios_capped_at_50():
    f = _burden(100.0, monthly=1000.0)  # income 12000 < subsistence 26400: no capacity to pay
    assert f["oop_to_capacity"] == 50.0
    assert f["oop_12m_to_income"] == 100 / 12000
    f = _burden(1_000_000.0, monthly=1000.0)
    assert (f["oop_12m_to_income"], f["oop_to_capacity"]) == (50.0, 50.0)
    assert f["income_after_oop_pc_month"] == (12000 - 1_000_000) / 2 / 12


def test_no_income_gives_nan_burden_not_zero():
    f = features_of(bundle(income=[], claims=[claim("C1", "2026-05-01", 4800.0)]), POLICY)
    assert f["oop_12m"] == 4800.0
    for name in ("oop_12m_to_income", "oop_to_capacity", "income_after_oop_pc_month", "after_oop_to_dibao"):
        assert math.isnan(f[name]), name
    f = features_of(bundle(income=[], claims=[]), POLICY)
    assert math.isnan(f["oop_12m_to_income"]) and math.isnan(f["oop_to_capacity"])


def test_capacity_uses_the_dibao_line_in_force_at_t():
    # 2024: 低保 1050, subsistence 25200, capacity 36000 - 25200 = 10800
    f = _burden(5400.0, as_of="2024-06-30")
    assert f["oop_to_capacity"] == 0.5
    assert f["after_oop_to_dibao"] == ((36000 - 5400) / 2 / 12) / 1050


# ---- elderly acute stays (stroke, heart attack, injury) ------------------------------------------------

def _stay(claim_id: str, person_id: str, diagnosis_group: str, setting: str = "inpatient",
          service_date: str = "2026-02-01") -> dict:
    return claim(claim_id, service_date, 3000.0, person_id=person_id, setting=setting,
                 diagnosis_group=diagnosis_group, fund_paid=9000.0, inpatient_days=8 if setting == "inpatient" else 0)


def test_elderly_acute_stays_count_stays_of_members_60_or_older_for_stroke_or_injury():
    members = [member("P1", "head", "1950-01-01"), member("P2", "spouse", "1966-07-01"),   # 76 and 59
               member("P3", "parent", "1930-01-01")]
    claims = [_stay("C1", "P1", "cardio_cerebrovascular"), _stay("C2", "P1", "injury", service_date="2026-05-01"),
              _stay("C3", "P2", "injury"),                                                 # 59: not counted
              _stay("C4", "P3", "cancer"),                                                 # not acute
              _stay("C5", "P3", "cardio_cerebrovascular", setting="special_outpatient"),   # not a stay
              _stay("C6", "P3", "injury", service_date="2025-06-30")]                      # 12 months before T
    f = features_of(bundle(members=members, claims=claims), POLICY)
    assert f["elderly_acute_stays_12m"] == 2.0
    assert f["inpatient_stays_12m"] == 4.0


def test_elderly_is_the_age_at_t():
    claims = [_stay("C1", "P1", "injury", service_date="2026-01-10")]
    turns_60_after_the_stay = [member("P1", "head", "1966-06-30")]   # 59 on the day of the stay, 60 on T
    assert features_of(bundle(members=turns_60_after_the_stay, claims=claims), POLICY)["elderly_acute_stays_12m"] == 1.0
    still_59 = [member("P1", "head", "1966-07-01")]
    assert features_of(bundle(members=still_59, claims=claims), POLICY)["elderly_acute_stays_12m"] == 0.0
