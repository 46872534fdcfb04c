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


# ---- features added for the other risks (elderly care, children without an earner) ----------------

def test_new_composition_features_known_answer():
    f = features_of(bundle(members=FAMILY, income=[], claims=[], financial_assets=8000.0), POLICY)
    assert f["oldest_age"] == 86.0                  # P7, older than the head
    assert f["n_elderly_80plus"] == 1.0             # P7
    assert f["lives_alone_elderly"] == 0.0
    assert f["n_minors"] == 3.0                     # P3 (16), P4, P8
    assert f["n_minors_no_earner"] == 0.0           # P6 and P7 work


@pytest.mark.parametrize(("birth_date", "n_80"), [
    ("1946-06-30", 1.0),   # 80 on T
    ("1946-07-01", 0.0),   # 79 on T
])
def test_80_plus_counts_a_birthday_on_t(birth_date, n_80):
    f = features_of(bundle(members=[member(birth_date=birth_date)]), POLICY)
    assert f["n_elderly_80plus"] == n_80
    assert f["oldest_age"] == f["head_age"] == 80.0 - (1 - n_80)


@pytest.mark.parametrize(("births", "alone"), [
    (("1950-01-01",), 1.0),                  # one person, 76
    (("1966-06-30",), 1.0),                  # one person, 60 on T
    (("1966-07-01",), 0.0),                  # one person, 59: not elderly
    (("1950-01-01", "1952-01-01"), 0.0),     # an elderly couple is elderly-only, not alone
])
def test_lives_alone_elderly(births, alone):
    members = [member(f"P{i + 1}", "head" if i == 0 else "spouse", b) for i, b in enumerate(births)]
    f = features_of(bundle(members=members), POLICY)
    assert f["lives_alone_elderly"] == alone
    if len(births) == 2:
        assert f["elderly_only"] == 1.0


def test_a_member_born_after_t_does_not_break_living_alone():
    members = [member("P1", "head", "1950-01-01"), member("P2", "grandchild", "2026-07-01", employment="other")]
    assert features_of(bundle(members=members), POLICY)["lives_alone_elderly"] == 1.0


@pytest.mark.parametrize(("parents", "expected"), [
    (("employed", "unemployed"), 0.0),       # one earner: the minors have an earner
    (("unemployed", "other"), 3.0),          # nobody works: all three minors count
    (("unable_to_work", "farmer"), 0.0),     # farming counts as work
    (("retired", "student"), 3.0),
])
def test_minors_without_an_earner(parents, expected):
    members = [member("P1", "head", "1988-01-01", employment=parents[0]),
               member("P2", "spouse", "1990-01-01", employment=parents[1]),
               member("P3", "child", "2015-01-01", employment="student"),
               member("P4", "child", "2019-01-01", employment="other"),
               member("P5", "child", "2008-07-01", employment="student"),    # 17 on T: a minor, not a child
               member("P6", "child", "2008-06-30", employment="student")]    # 18 on T: an adult
    f = features_of(bundle(members=members), POLICY)
    assert f["n_children"] == 2.0
    assert f["n_minors"] == 3.0
    assert f["n_minors_no_earner"] == expected


def test_no_minors_means_none_without_an_earner():
    f = features_of(bundle(members=[member(employment="unemployed", birth_date="1990-01-01")]), POLICY)
    assert f["n_earners"] == 0.0
    assert f["n_minors"] == f["n_minors_no_earner"] == 0.0
