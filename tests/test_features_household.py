"""Composition, employment, disability and assets as of T (ages on T; a birthday on T counts)."""

from __future__ import annotations

import pytest

from features.io import load_policy_book
from tests.factories import bundle, features_of, member

POLICY = load_policy_book()
T = "2026-06-30"

FAMILY = [
    member("P1", "head", "1966-06-30", employment="retired"),                   # 60 on T: elderly
    member("P2", "spouse", "1966-07-01", employment="unemployed"),              # 59
    member("P3", "child", "2010-06-30", employment="student", disability_grade=4),  # 16 on T: not a child
    member("P4", "child", "2010-07-01", employment="student", disability_grade=2),  # 15
    member("P5", "child", "1996-01-15", employment="unable_to_work", disability_grade=1),  # 30
    member("P6", "child", "1998-03-03", employment="employed", disability_grade=3),  # 28
    member("P7", "parent", "1940-01-01", employment="farmer"),                  # 86
    member("P8", "grandchild", "2026-06-30", employment="other"),               # born on T: 0
    member("P9", "grandchild", "2026-07-01", employment="other"),               # born after T: not a member
]


def test_composition_known_answer():
    f = features_of(bundle(members=FAMILY, income=[], claims=[], financial_assets=8000.0), POLICY)
    assert f["n_members"] == 8.0
    assert f["n_elderly"] == 2.0                    # P1, P7
    assert f["n_children"] == 2.0                   # P4, P8
    assert f["dependency_ratio"] == 0.5
    assert f["head_age"] == 60.0
    assert f["n_earners"] == 2.0                    # P6 employed, P7 farmer
    assert f["n_unemployed"] == 1.0                 # P2
    assert f["n_working_age_not_working"] == 2.0    # P2 unemployed, P5 unable to work (P3 is a student)
    assert f["n_disabled"] == 4.0                   # P3, P4, P5, P6
    assert f["n_severe_disabled"] == 2.0            # grades 1 and 2: P5, P4
    assert f["elderly_only"] == 0.0
    assert f["financial_assets_per_capita"] == 1000.0


@pytest.mark.parametrize(("birth_date", "age"), [
    ("1966-06-30", 60.0), ("1966-07-01", 59.0), ("1966-06-29", 60.0), ("1967-06-30", 59.0),
    ("2000-02-29", 26.0),
])
def test_head_age_counts_a_birthday_on_t(birth_date, age):
    f = features_of(bundle(members=[member(birth_date=birth_date)]), POLICY)
    assert f["head_age"] == age


@pytest.mark.parametrize(("births", "expected"), [
    (("1960-01-01", "1966-06-30"), 1.0),   # both 60 or over
    (("1960-01-01", "1966-07-01"), 0.0),   # one is 59
])
def test_elderly_only(births, expected):
    members = [member("P1", "head", births[0]), member("P2", "spouse", births[1])]
    assert features_of(bundle(members=members), POLICY)["elderly_only"] == expected


def test_assets_and_housing():
    f = features_of(bundle(members=[member(), member("P2", "spouse")], financial_assets=5000.0,
                           property_count=2, vehicle_count=1, housing="rented"), POLICY)
    assert f[["financial_assets_per_capita", "property_count", "vehicle_count", "housing_owned"]].tolist() == [
        2500.0, 2.0, 1.0, 0.0]
