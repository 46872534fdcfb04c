"""The one feature path: point-in-time cut, output shape, batch/single parity and invariances."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.build import as_timestamp, build_features
from features.catalog import FEATURE_IDS
from features.io import load_policy_book
from tests.factories import (
    assistance_row,
    bundle,
    claim,
    features_of,
    income_row,
    member,
    monthly_income,
    months_back,
    tables_of,
    with_person_ids,
)

POLICY = load_policy_book()
T = "2026-06-30"


def _varied_bundles() -> list[dict]:
    """Three unlike households, person ids unique across them."""
    h3 = bundle("H3")  # the contract's example
    h1 = with_person_ids(bundle(
        "H1", members=[member(), member("P2", "spouse", "1970-05-05", employment="unemployed"),
                       member("P3", "child", "2015-01-01", employment="student", disability_grade=2)],
        income=monthly_income(months_back(T, 12), 2500.0) + [income_row("2026-06", 800.0, "P2", "pension")],
        claims=[claim("C10", "2026-02-01", 4000, person_id="P3", setting="inpatient", diagnosis_group="renal",
                      fund_paid=6000, inpatient_days=4),
                claim("C11", "2025-09-01", 300, setting="special_outpatient", diagnosis_group="diabetes_metabolic")],
        assistance=[assistance_row("dibao_edge", "2025-03-01", None, 600),
                    assistance_row("temporary", "2026-04-01", "2026-04-30", 1500)],
        town="yangshe", hukou_type="urban", housing="rented", financial_assets=1200.0),
        {"P1": "H1P1", "P2": "H1P2", "P3": "H1P3"})
    h2 = with_person_ids(bundle("H2", income=[], claims=[],
                                assistance=[assistance_row("dibao", "2022-01-01", "2026-03-31", 1000)]),
                         {"P1": "H2P1"})
    return [h3, h1, h2]


def test_one_row_per_household_sorted_in_catalogue_order_as_float64():
    frame = build_features(tables_of(*_varied_bundles()), T, POLICY)
    assert frame.index.tolist() == ["H1", "H2", "H3"]
    assert frame.index.name == "household_id"
    assert tuple(frame.columns) == FEATURE_IDS
    assert set(frame.dtypes) == {np.dtype("float64")}


def test_batch_rows_equal_each_household_built_alone():
    bundles = _varied_bundles()
    batch = build_features(tables_of(*bundles), T, POLICY)
    for b in bundles:
        alone = build_features(tables_of(b), T, POLICY)
        pd.testing.assert_frame_equal(alone, batch.loc[[b["household"]["household_id"]]], check_exact=True)


def test_the_bundle_path_equals_the_tables_path():
    for b in _varied_bundles():
        pd.testing.assert_series_equal(features_of(b, POLICY), build_features(tables_of(b), T, POLICY).iloc[0],
                                       check_exact=True)


def test_renaming_the_town_or_a_person_does_not_change_features():
    b = _varied_bundles()[1]
    base = features_of(b, POLICY)
    renamed_town = {**b, "household": {**b["household"], "town": "changyinsha"}}
    pd.testing.assert_series_equal(features_of(renamed_town, POLICY), base, check_exact=True)
    renamed_person = with_person_ids(b, {"H1P3": "ZZ-renamed", "H1P1": "A-renamed"})
    pd.testing.assert_series_equal(features_of(renamed_person, POLICY), base, check_exact=True)


def test_rows_after_t_are_not_used():
    base = bundle(claims=[claim("C1", T, 100.0)], income=[income_row("2026-06", 1000.0)],
                  assistance=[assistance_row("dibao", "2026-06-30", None, 500)])
    later = {**base,
             "members": base["members"] + [member("P9", "grandchild", "2026-07-01")],
             "income": base["income"] + [income_row("2026-07", 9000.0), income_row("2026-07", 50.0, "P9")],
             "claims": base["claims"] + [claim("C2", "2026-07-01", 5000.0, setting="inpatient", inpatient_days=3),
                                         claim("C3", "2026-06-30", 70.0, person_id="P9")],
             "assistance": base["assistance"] + [assistance_row("tekun", "2026-07-01", None, 800)]}
    pd.testing.assert_series_equal(features_of(later, POLICY), features_of(base, POLICY), check_exact=True)
    f = features_of(base, POLICY)
    assert (f["n_members"], f["oop_12m"], f["income_12m_per_capita_month"], f["on_dibao"]) == (
        1.0, 100.0, 1000.0, 1.0)


def test_verifications_never_affect_features():
    bundles = _varied_bundles()
    visits = [{"household_id": "H1", "visited_on": "2026-05-01", "finding": "illness_poverty"},
              {"household_id": "H2", "visited_on": "2026-06-30", "finding": "not_in_need"},
              {"household_id": "H3", "visited_on": "2026-09-01", "finding": "illness_poverty"}]
    pd.testing.assert_frame_equal(build_features(tables_of(*bundles, verifications=visits), T, POLICY),
                                  build_features(tables_of(*bundles), T, POLICY), check_exact=True)


@pytest.mark.parametrize("as_of", [T, dt.date(2026, 6, 30), pd.Timestamp(T)])
def test_as_of_may_be_a_string_a_date_or_a_timestamp(as_of):
    pd.testing.assert_frame_equal(build_features(tables_of(bundle()), as_of, POLICY),
                                  build_features(tables_of(bundle()), T, POLICY), check_exact=True)


def test_as_of_with_a_time_is_refused():
    with pytest.raises(ValueError, match=r"^as_of must be a date, got '2026-06-30 12:00'$"):
        as_timestamp("2026-06-30 12:00")


def test_as_of_before_the_first_policy_version_is_refused():
    with pytest.raises(ValueError, match=r"^no policy parameters in force on 1999-12-31; "
                                         r"the first version starts 2000-01-01$"):
        build_features(tables_of(bundle(as_of="1999-12-31", income=[], claims=[])), "1999-12-31", POLICY)


def test_bundle_from_tables_is_the_inverse_of_tables_from_bundle():
    from features.tables import bundle_from_tables

    tables = tables_of(*_varied_bundles())
    for b in _varied_bundles():
        hid = b["household"]["household_id"]
        back = bundle_from_tables(tables, hid, T)
        assert back["as_of"] == T and back["household"] == {**b["household"], "financial_assets": float(
            b["household"]["financial_assets"])}
        pd.testing.assert_series_equal(features_of(back, POLICY), features_of(b, POLICY), check_exact=True)
