"""Data tests for the synthetic city: contract shape, invariants, determinism and the story's direction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.io import check_tables
from features.tables import CATEGORIES, FINDINGS, TABLE_COLUMNS, TOWNS_DEFAULT, make_tables
from synthcity import City, generate_city

END_MONTH, N_MONTHS = "2026-10", 36
SPAN_START, SPAN_END = pd.Timestamp("2023-11-01"), pd.Timestamp("2026-10-31")
MONEY = {t: [c for c, k in spec.items() if k == "money"] for t, spec in TABLE_COLUMNS.items()}


@pytest.fixture(scope="module")
def city() -> City:
    return generate_city(2_000, end_month=END_MONTH, n_months=N_MONTHS, seed=7)


@pytest.fixture(scope="module")
def household_of(city: City) -> pd.Series:
    return city.persons.set_index("person_id")["household_id"]


def _frames(c: City) -> dict[str, pd.DataFrame]:
    return {**c.tables(), "truth": c.truth}


def test_same_seed_gives_identical_frames() -> None:
    a, b = generate_city(300, seed=3), generate_city(300, seed=3)
    for name, frame in _frames(a).items():
        pd.testing.assert_frame_equal(frame, _frames(b)[name], obj=name)


def test_different_seeds_differ() -> None:
    a, b = generate_city(300, seed=1), generate_city(300, seed=2)
    assert not a.households.equals(b.households)
    assert not a.claims.equals(b.claims)


def test_tables_are_the_contract_tables_with_exact_columns_in_order(city: City) -> None:
    assert list(city.tables()) == list(TABLE_COLUMNS)
    for name, frame in city.tables().items():
        assert list(frame.columns) == list(TABLE_COLUMNS[name]), name
    assert list(city.truth.columns) == ["household_id", "finding", "start_month", "end_month"]


def test_dtypes(city: City) -> None:
    for name, spec in TABLE_COLUMNS.items():
        frame = city.tables()[name]
        for col, kind in spec.items():
            if kind in ("date", "date_or_null"):
                assert frame[col].dtype == "datetime64[ns]", (name, col)
            elif kind == "int":
                assert frame[col].dtype == np.int64, (name, col)
            elif kind == "money":
                assert frame[col].dtype == np.float64, (name, col)
    assert city.income["month"].str.fullmatch(r"\d{4}-\d{2}").all()
    assert city.assistance["start_date"].notna().all()


def test_enums_are_within_the_contract_lists(city: City) -> None:
    for (table, column), allowed in CATEGORIES.items():
        assert city.tables()[table][column].isin(allowed).all(), (table, column)
    assert city.households["town"].isin(TOWNS_DEFAULT).all()
    assert city.households["town"].nunique() == len(TOWNS_DEFAULT)
    assert set(city.persons["disability_grade"]) <= {0, 1, 2, 3, 4}
    assert city.truth["finding"].isin(FINDINGS).all()
    assert not (city.truth["finding"] == "not_in_need").any()


def test_the_contract_boundary_check_passes(city: City) -> None:
    assert check_tables(make_tables(**city.tables()), towns=frozenset(TOWNS_DEFAULT)) == []


def test_claim_invariant_holds_to_the_cent_on_every_row(city: City) -> None:
    c = city.claims

    def cents(col: str) -> np.ndarray:
        return np.round(c[col].to_numpy() * 100).astype(np.int64)

    parts = (cents("fund_paid") + cents("critical_illness_paid") + cents("assistance_paid")
             + cents("out_of_pocket"))
    np.testing.assert_array_equal(cents("total_cost"), parts)
    assert (c["total_cost"] > 0).all()


def test_money_is_non_negative_and_rounded_to_the_cent(city: City) -> None:
    for name, cols in MONEY.items():
        for col in cols:
            v = city.tables()[name][col].to_numpy()
            assert (v >= 0).all(), (name, col)
            np.testing.assert_allclose(v * 100, np.round(v * 100), atol=1e-6, err_msg=f"{name}.{col}")


def test_inpatient_days_only_on_inpatient_claims(city: City) -> None:
    inpatient = city.claims["setting"] == "inpatient"
    assert (city.claims.loc[inpatient, "inpatient_days"] > 0).all()
    assert (city.claims.loc[~inpatient, "inpatient_days"] == 0).all()


def test_nothing_is_dated_outside_the_span(city: City) -> None:
    for frame, col in ((city.claims, "service_date"), (city.assistance, "start_date"),
                       (city.assistance, "end_date"), (city.verifications, "visited_on")):
        v = frame[col].dropna()
        assert v.between(SPAN_START, SPAN_END).all(), col
    for frame, col in ((city.income, "month"), (city.truth, "start_month"), (city.truth, "end_month")):
        assert frame[col].between("2023-11", END_MONTH).all(), col
    assert (city.persons["birth_date"] < SPAN_START).all()
    assert city.income["month"].nunique() == N_MONTHS


def test_keys_are_unique_pseudonymous_ids(city: City) -> None:
    for frame, col, pattern in ((city.households, "household_id", r"H\d{7}"),
                                (city.persons, "person_id", r"P\d{8}"),
                                (city.claims, "claim_id", r"C\d{9}")):
        assert frame[col].is_unique, col
        assert frame[col].str.fullmatch(pattern).all(), col


def test_referential_integrity(city: City) -> None:
    households = set(city.households["household_id"])
    persons = set(city.persons["person_id"])
    assert set(city.persons["household_id"]) == households
    assert city.income["person_id"].isin(persons).all()
    assert city.claims["person_id"].isin(persons).all()
    for frame in (city.assistance, city.verifications, city.truth):
        assert frame["household_id"].isin(households).all()


def test_exactly_one_head_per_household(city: City) -> None:
    heads = city.persons.loc[city.persons["relation"] == "head", "household_id"]
    assert heads.is_unique
    assert set(heads) == set(city.households["household_id"])
    sizes = city.persons.groupby("household_id").size()
    assert sizes.between(1, 6).all()


def test_ages_are_consistent_with_relations(city: City) -> None:
    p = city.persons
    head_birth = p.loc[p["relation"] == "head"].set_index("household_id")["birth_date"]
    born = p["birth_date"]
    gap_years = (p["household_id"].map(head_birth) - born).dt.days / 365.25  # > 0: older than the head
    assert (gap_years[p["relation"] == "parent"] >= 17).all()
    assert (gap_years[p["relation"] == "child"] <= -17).all()
    assert (gap_years[p["relation"] == "grandchild"] <= -30).all()
    age = (SPAN_START - born).dt.days / 365.25  # statuses are drawn for the start, then updated by job loss
    assert (age[p["employment"] == "student"] < 22).all()
    assert (age[p["employment"] == "retired"] >= 50).all()


def test_assistance_dates_and_amounts(city: City) -> None:
    a = city.assistance
    ended = a["end_date"].notna()
    assert (a.loc[ended, "end_date"] >= a.loc[ended, "start_date"]).all()
    assert (a["monthly_amount"] >= 0).all()
    temporary = a["program"] == "temporary"
    assert (a.loc[temporary, "end_date"] == a.loc[temporary, "start_date"]).all()
    assert set(a["program"]) >= {"dibao", "dibao_edge", "tekun", "temporary"}


def test_visits_have_one_row_per_finding_and_respect_the_revisit_gap(city: City) -> None:
    v = city.verifications
    assert not v.duplicated(["household_id", "visited_on", "finding"]).any()
    per_visit = v.groupby(["household_id", "visited_on"])["finding"]
    mixed = per_visit.apply(lambda s: (s == "not_in_need").any() and len(s) > 1)
    assert not mixed.any()
    visits = v.drop_duplicates(["household_id", "visited_on"]).sort_values(["household_id", "visited_on"])
    month = visits["visited_on"].dt.year * 12 + visits["visited_on"].dt.month
    same = visits["household_id"].eq(visits["household_id"].shift())
    assert (month.diff()[same] >= 6).all()


def _oop_to_income(city: City, household_of: pd.Series) -> pd.Series:
    """Whole-span household out-of-pocket over whole-span reported income (yuan/yuan)."""
    oop = city.claims.groupby(city.claims["person_id"].map(household_of))["out_of_pocket"].sum()
    income = city.income.groupby(city.income["person_id"].map(household_of))["amount"].sum()
    index = pd.Index(city.households["household_id"])
    return oop.reindex(index, fill_value=0.0) / (income.reindex(index, fill_value=0.0) + 1_000.0)


def test_illness_poverty_households_spend_far_more_relative_to_income(city: City,
                                                                     household_of: pd.Series) -> None:
    ratio = _oop_to_income(city, household_of)
    ill = ratio.index.isin(city.truth.loc[city.truth["finding"] == "illness_poverty", "household_id"])
    assert 5 <= ill.sum() <= 0.06 * len(ratio)
    assert ratio[ill].median() > 5 * ratio[~ill].median()


def test_visits_are_biased_toward_households_where_todays_rules_fire(city: City,
                                                                    household_of: pd.Series) -> None:
    c = city.claims
    hh = c["person_id"].map(household_of)
    yearly = c.groupby([c["person_id"], c["service_date"].dt.year])["out_of_pocket"].sum()
    heavy = yearly[yearly > 26_000].index.get_level_values(0).map(household_of)
    stay = hh[(c["setting"] == "inpatient") & (c["out_of_pocket"] > 10_000)]
    fired = city.households["household_id"].isin(set(heavy) | set(stay))
    visited = city.households["household_id"].isin(city.verifications["household_id"])
    assert fired[visited].mean() > 3 * fired.mean()
    assert 0 < fired.mean() < 0.2


def test_per_capita_income_is_anchored_near_suzhou(city: City, household_of: pd.Series) -> None:
    hukou = city.households.set_index("household_id")["hukou_type"]
    inc = city.income.loc[city.income["month"].between("2025-01", "2025-12")]
    total = inc.groupby(inc["person_id"].map(household_of).map(hukou))["amount"].sum()
    people = city.persons["household_id"].map(hukou).value_counts()
    per_capita = total / people
    assert per_capita["urban"] == pytest.approx(86_640, rel=0.12)
    assert per_capita["rural"] == pytest.approx(48_946, rel=0.12)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="end_month must be 'YYYY-MM'"):
        generate_city(10, end_month="2026-13")
    with pytest.raises(ValueError, match="n_households must be at least 1"):
        generate_city(0)
