"""The numpy feature path reproduces the pandas implementation it replaced.

Over 400 lines because it carries that frozen pandas implementation (some 240 lines), the reference
the numpy path is compared with, which must live here and nowhere else.

That implementation is frozen below (``legacy_*``) and lives only here, as the reference: for
synthetic cities at several as-of dates, ``build_features`` must equal it on the 43 features it
computed (``LEGACY_FEATURE_IDS``; features added since have their own tests in
``test_features_household.py``, ``test_features_income.py`` and ``test_features_spending.py``) to 1e-12 relative (NaN
where NaN; the sums differ in the last bits because pandas summed with Kahan compensation and
``np.bincount`` sums in row order; a window with no income reported is said as it is now,
:func:`as_said_now`), and ``tables_from_bundle`` / ``make_tables`` must give the same
frames as before. ``benchmarks/bench_features.py`` times both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.catalog import FEATURE_IDS
from features.groups import household_groups
from features.household import ages_on
from features.income import TREND_CAP
from features.io import load_policy_book
from features.known import codes, months_before
from features.policy import PolicyBook
from features.tables import TABLE_COLUMNS, Tables, make_tables, tables_from_bundle
from tests.factories import (
    assistance_row,
    bundle,
    claim,
    income_row,
    member,
    monthly_income,
    months_back,
    tables_of,
    with_person_ids,
)

POLICY = load_policy_book()
AS_OF_DATES = ("2024-12-31", "2025-06-30", "2026-04-30", "2026-10-31")

# The features the pandas implementation computed, in its catalogue order. Frozen: the oracle knows
# only these; the catalogue may grow (features.catalog.FEATURE_IDS).
LEGACY_FEATURE_IDS = (
    "n_members", "n_elderly", "n_children", "dependency_ratio", "head_age", "n_earners", "n_unemployed",
    "n_working_age_not_working", "n_disabled", "n_severe_disabled", "elderly_only", "financial_assets_per_capita",
    "property_count", "vehicle_count", "housing_owned", "income_12m_per_capita_month", "income_months_reported_12m",
    "income_trend_3m", "wage_share_12m", "income_pc_to_dibao", "oop_3m", "oop_6m", "oop_12m", "oop_12m_per_capita",
    "oop_12m_max_person", "total_cost_12m", "max_stay_oop_12m", "inpatient_days_12m", "inpatient_stays_12m",
    "serious_claims_12m", "n_members_serious_dx_12m", "special_outpatient_claims_12m", "oop_12m_to_income",
    "oop_to_capacity", "income_after_oop_pc_month", "after_oop_to_dibao", "on_dibao", "on_dibao_edge", "on_tekun",
    "on_expenditure_hardship", "assistance_monthly_amount", "temporary_assistance_12m", "left_assistance_12m",
)


# ---------------------------------------------------------------------------------------------------
# The pandas implementation as it stood before the numpy rewrite, frozen here (and only here) as the
# reference the product must reproduce. Do not import it from product code; do not "fix" it.
# ---------------------------------------------------------------------------------------------------


def _legacy_month_index_of(values: pd.Series) -> pd.Series:
    s = values.astype("string")
    year = pd.to_numeric(s.str.slice(0, 4), errors="coerce")
    month = pd.to_numeric(s.str.slice(5, 7), errors="coerce")
    return (year * 12 + month - 1).fillna(-1).astype("int64")


def _legacy_normalise_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    spec = TABLE_COLUMNS[name]
    out = {}
    for col, kind in spec.items():
        s = frame[col]
        if kind in ("str", "cat", "month"):
            out[col] = s.astype("string").astype(object) if len(s) else pd.Series([], dtype=object)
        elif kind in ("int", "money"):
            num = pd.to_numeric(s)
            out[col] = num.astype("int64") if kind == "int" and not num.isna().any() else num.astype("float64")
        elif kind in ("date", "date_or_null"):
            out[col] = pd.to_datetime(s, format="%Y-%m-%d" if s.dtype == object else None).astype("datetime64[ns]")
    result = pd.DataFrame(out, index=frame.index).reset_index(drop=True)
    if name == "income":
        result["month_index"] = (_legacy_month_index_of(result["month"]) if len(result)
                                 else pd.Series([], dtype="int64"))
    return result


def legacy_make_tables(**frames: pd.DataFrame | None) -> Tables:
    return Tables(**{
        name: _legacy_normalise_table(name, frames[name] if frames.get(name) is not None
                                      else pd.DataFrame({c: [] for c in TABLE_COLUMNS[name]}))
        for name in TABLE_COLUMNS
    })


def legacy_tables_from_bundle(bundle: Mapping[str, Any]) -> Tables:
    household = dict(bundle["household"])
    hid = household["household_id"]
    members = bundle.get("members") or []
    persons = pd.DataFrame(
        [{**{c: m.get(c) for c in TABLE_COLUMNS["persons"]}, "household_id": hid} for m in members],
        columns=list(TABLE_COLUMNS["persons"]))
    assistance = pd.DataFrame(
        [{**{c: a.get(c) for c in TABLE_COLUMNS["assistance"]}, "household_id": hid}
         for a in bundle.get("assistance") or []],
        columns=list(TABLE_COLUMNS["assistance"]))
    return legacy_make_tables(
        households=pd.DataFrame([{c: household.get(c) for c in TABLE_COLUMNS["households"]}]),
        persons=persons,
        income=pd.DataFrame(list(bundle.get("income") or []), columns=list(TABLE_COLUMNS["income"])),
        claims=pd.DataFrame(list(bundle.get("claims") or []), columns=list(TABLE_COLUMNS["claims"])),
        assistance=assistance,
    )


def _legacy_ages_at(birth_date: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    had_birthday = (birth_date.dt.month < as_of.month) | (
        (birth_date.dt.month == as_of.month) & (birth_date.dt.day <= as_of.day))
    return (as_of.year - birth_date.dt.year - (~had_birthday).astype("int64")).astype("float64")


def _legacy_composition(persons: pd.DataFrame, index: pd.Index, as_of: pd.Timestamp) -> pd.DataFrame:
    age = _legacy_ages_at(persons["birth_date"], as_of)
    emp = persons["employment"]
    grade = persons["disability_grade"]
    flags = pd.DataFrame({
        "household_id": persons["household_id"].to_numpy(),
        "n_members": 1.0,
        "n_elderly": (age >= 60).astype("float64"),
        "n_children": (age < 16).astype("float64"),
        "n_earners": emp.isin(("employed", "self_employed", "farmer")).astype("float64"),
        "n_unemployed": (emp == "unemployed").astype("float64"),
        "n_working_age_not_working": ((age >= 16) & (age < 60) & emp.isin(("unemployed", "unable_to_work", "other"))
                                      ).astype("float64"),
        "n_disabled": (grade > 0).astype("float64"),
        "n_severe_disabled": grade.isin((1, 2)).astype("float64"),
    })
    counts = flags.groupby("household_id", sort=False).sum().reindex(index)
    counts["dependency_ratio"] = (counts["n_elderly"] + counts["n_children"]) / counts["n_members"]
    counts["elderly_only"] = (counts["n_elderly"] == counts["n_members"]).astype("float64").where(
        counts["n_members"].notna())
    heads = persons.loc[persons["relation"] == "head"]
    counts["head_age"] = pd.Series(age.loc[heads.index].to_numpy(), index=heads["household_id"].to_numpy()
                                   ).groupby(level=0).first().reindex(index)
    return counts


def _legacy_assets(households: pd.DataFrame, index: pd.Index, n_members: pd.Series) -> pd.DataFrame:
    h = households.set_index("household_id").reindex(index)
    return pd.DataFrame({
        "financial_assets_per_capita": h["financial_assets"] / n_members,
        "property_count": h["property_count"].astype("float64"),
        "vehicle_count": h["vehicle_count"].astype("float64"),
        "housing_owned": (h["housing"] == "owned").astype("float64"),
    }, index=index)


def _legacy_income(income, person_household, index, as_of_month, n_members, dibao_line):
    window = income.loc[income["month_index"] > as_of_month - 12]
    hh = window["person_id"].map(person_household)
    months_back = as_of_month - window["month_index"]
    frame = pd.DataFrame({
        "household_id": hh.to_numpy(), "amount": window["amount"].to_numpy(),
        "recent": (months_back < 3).to_numpy(), "wage": (window["source"] == "wage").to_numpy(),
        "month_index": window["month_index"].to_numpy(),
    }).dropna(subset=["household_id"])
    frame["recent_amount"] = frame["amount"] * frame["recent"]
    frame["wage_amount"] = frame["amount"] * frame["wage"]
    g = frame.groupby("household_id", sort=False)
    sums = g[["amount", "recent_amount", "wage_amount"]].sum().reindex(index)
    months = g["month_index"].nunique().reindex(index).fillna(0.0).astype("float64")
    recent_months = frame.loc[frame["recent"]].groupby("household_id", sort=False)["month_index"].nunique()
    recent_months = recent_months.reindex(index).fillna(0.0)
    reported = months > 0
    per_month = (sums["amount"] / months).where(reported)
    per_capita_month = per_month / n_members
    earlier_months = months - recent_months
    recent_mean = (sums["recent_amount"] / recent_months).where(recent_months > 0)
    earlier_mean = ((sums["amount"] - sums["recent_amount"]) / earlier_months).where(earlier_months > 0)
    trend = (recent_mean / earlier_mean).where(earlier_mean > 0)
    return pd.DataFrame({
        "income_12m_per_capita_month": per_capita_month,
        "income_months_reported_12m": months,
        "income_trend_3m": trend.clip(upper=1e6),
        "wage_share_12m": (sums["wage_amount"] / sums["amount"]).where(sums["amount"] > 0),
        "income_pc_to_dibao": per_capita_month / dibao_line,
        "_income_12m": per_month * 12.0,
    }, index=index).astype("float64")


def _legacy_spending(claims, person_household, index, as_of, n_members):
    start = {k: as_of - pd.DateOffset(months=k) for k in (3, 6, 12)}
    c = claims.loc[claims["service_date"] > start[12]]
    hh = c["person_id"].map(person_household).to_numpy()
    oop = c["out_of_pocket"].to_numpy()
    inpatient = (c["setting"] == "inpatient").to_numpy()
    serious = (c["diagnosis_group"].isin(("cancer", "renal", "cardio_cerebrovascular", "rare_disease"))
               & c["setting"].isin(("inpatient", "special_outpatient"))).to_numpy()
    frame = pd.DataFrame({
        "household_id": hh, "person_id": c["person_id"].to_numpy(),
        "oop_3m": np.where((c["service_date"] > start[3]).to_numpy(), oop, 0.0),
        "oop_6m": np.where((c["service_date"] > start[6]).to_numpy(), oop, 0.0),
        "oop_12m": oop, "total_cost_12m": c["total_cost"].to_numpy(),
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
    out = sums.reindex(index).fillna(0.0).astype("float64")
    out["oop_12m_per_capita"] = out["oop_12m"] / n_members
    return out


def _legacy_burden(oop_12m, income_12m, n_members, dibao_line):
    subsistence = dibao_line * n_members * 12.0
    capacity = (income_12m - subsistence).clip(lower=0.0)
    to_income = np.where(oop_12m > 0, oop_12m / income_12m.clip(lower=1.0), 0.0)
    to_capacity = np.where(oop_12m > 0, oop_12m / capacity.clip(lower=1.0), 0.0)
    after = (income_12m - oop_12m) / n_members / 12.0
    return pd.DataFrame({
        "oop_12m_to_income": pd.Series(to_income, index=oop_12m.index).clip(upper=50.0).where(income_12m.notna()),
        "oop_to_capacity": pd.Series(to_capacity, index=oop_12m.index).clip(upper=50.0).where(income_12m.notna()),
        "income_after_oop_pc_month": after,
        "after_oop_to_dibao": after / dibao_line,
    }, index=oop_12m.index).astype("float64")


def _legacy_assistance(a, index, as_of):
    current = ("dibao", "dibao_edge", "tekun", "expenditure_hardship")
    ended = a["end_date"].notna() & (a["end_date"] <= as_of)
    ongoing = ~ended
    year_ago = as_of - pd.DateOffset(months=12)
    frame = pd.DataFrame({"household_id": a["household_id"].to_numpy()})
    for program in current:
        frame[f"on_{program}"] = ((a["program"] == program) & ongoing).to_numpy(dtype="float64")
    frame["assistance_monthly_amount"] = a["monthly_amount"].where(
        ongoing & a["program"].isin(current), 0.0).to_numpy()
    frame["temporary_assistance_12m"] = ((a["program"] == "temporary") & (a["start_date"] > year_ago)
                                         ).to_numpy(dtype="float64")
    frame["_left"] = (ended & (a["end_date"] > year_ago) & a["program"].isin(current)).to_numpy(dtype="float64")
    g = frame.groupby("household_id", sort=False)
    out = g.agg({
        **{f"on_{p}": "max" for p in current},
        "assistance_monthly_amount": "sum", "temporary_assistance_12m": "sum", "_left": "max",
    }).reindex(index).fillna(0.0).astype("float64")
    on_any = out[[f"on_{p}" for p in current]].max(axis=1)
    out["left_assistance_12m"] = ((out.pop("_left") > 0) & (on_any == 0)).astype("float64")
    return out


def legacy_build_features(tables: Tables, as_of: Any, policy: PolicyBook) -> pd.DataFrame:
    t = pd.Timestamp(as_of)
    params = policy.at(t.date())
    m = t.year * 12 + t.month - 1
    households = tables.households
    persons = tables.persons.loc[tables.persons["birth_date"] <= t]
    income = tables.income.loc[tables.income["month_index"] <= m]
    claims = tables.claims.loc[tables.claims["service_date"] <= t]
    assistance = tables.assistance.loc[tables.assistance["start_date"] <= t]
    index = pd.Index(sorted(households["household_id"].unique()), name="household_id", dtype=object)
    person_household = persons.set_index("person_id")["household_id"]
    comp = _legacy_composition(persons, index, t)
    n = comp["n_members"]
    inc = _legacy_income(income, person_household, index, m, n, params.dibao_line)
    spend = _legacy_spending(claims, person_household, index, t, n)
    burden = _legacy_burden(spend["oop_12m"], inc["_income_12m"], n, params.dibao_line)
    frame = pd.concat([comp, _legacy_assets(households, index, n), inc, spend, burden,
                       _legacy_assistance(assistance, index, t)], axis=1)
    return frame.loc[:, list(LEGACY_FEATURE_IDS)].astype("float64")


def legacy_household_groups(tables: Tables, as_of: Any) -> pd.DataFrame:
    t = pd.Timestamp(as_of)
    index = pd.Index(sorted(tables.households["household_id"].unique()), name="household_id", dtype=object)
    hh = tables.households.set_index("household_id").reindex(index)
    p = tables.persons.loc[tables.persons["birth_date"] <= t]
    heads = p.loc[p["relation"] == "head"].drop_duplicates("household_id").set_index("household_id").reindex(index)
    age = _legacy_ages_at(heads["birth_date"], t)
    band = pd.cut(age, bins=[0, 40, 60, 75, 200], labels=["<40", "40-59", "60-74", "75+"], right=False).astype(object)
    disabled = p.loc[p["disability_grade"] > 0, "household_id"].unique()
    return pd.DataFrame({
        "head_sex": heads["sex"].fillna("unknown").to_numpy(),
        "head_age_band": np.where(pd.isna(band), "unknown", band),
        "town": hh["town"].to_numpy(),
        "hukou_type": hh["hukou_type"].to_numpy(),
        "any_disability": np.where(index.isin(disabled), "yes", "no"),
    }, index=index)


# ---------------------------------------------------------------------------------------------------
# The comparisons
# ---------------------------------------------------------------------------------------------------


def as_said_now(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The oracle's features with the one departure made since, a window with no income reported
    (features/income.py): the oracle gave its income figures NaN, they are now 0 with
    ``no_income_reported_*`` saying so. The oracle does not keep the recent months' income, so where
    its trend was NaN the new one must be one of the two values it now takes there (0: nothing in the
    last 3 months; ``TREND_CAP``: income only in them), taken from ``new``; test_features_income.py
    says which."""
    old = old.copy()
    none = old["income_months_reported_12m"] == 0
    for fid in ("income_12m_per_capita_month", "income_pc_to_dibao"):
        old.loc[none, fid] = 0.0 / old.loc[none, "n_members"]   # per person: NaN with nobody there
    old["wage_share_12m"] = old["wage_share_12m"].fillna(0.0)   # NaN only where the year brought nothing
    unknown = old["income_trend_3m"].isna()
    assert new.loc[unknown, "income_trend_3m"].isin((0.0, TREND_CAP)).all()
    old.loc[unknown, "income_trend_3m"] = new.loc[unknown, "income_trend_3m"]
    return old


def assert_same_features(new: pd.DataFrame, old: pd.DataFrame) -> None:
    """``new`` (all the catalogue's features) equals the oracle ``old`` on the oracle's features, as
    said now (:func:`as_said_now`)."""
    pd.testing.assert_index_equal(new.columns, pd.Index(FEATURE_IDS), exact=True)
    pd.testing.assert_index_equal(old.columns, pd.Index(LEGACY_FEATURE_IDS), exact=True)
    assert (new.dtypes == np.float64).all()
    new = new.loc[:, list(LEGACY_FEATURE_IDS)]
    pd.testing.assert_index_equal(new.index, old.index, exact=True)
    pd.testing.assert_index_equal(new.columns, old.columns, exact=True)
    assert (new.dtypes == np.float64).all()
    old = as_said_now(old, new)
    np.testing.assert_allclose(new.to_numpy(), old.to_numpy(), rtol=1e-12, atol=0, equal_nan=True)


def assert_same_tables(new: Tables, old: Tables) -> None:
    for f in dataclasses.fields(Tables):
        pd.testing.assert_frame_equal(getattr(new, f.name), getattr(old, f.name), check_exact=True,
                                      check_index_type=True, check_column_type=True, obj=f.name)


@pytest.fixture(scope="module")
def city_20k():
    from synthcity import generate_city

    return generate_city(20_000, seed=3).tables()


@pytest.fixture(scope="module")
def tables_20k(city_20k):
    return make_tables(**city_20k)


def test_make_tables_gives_the_frames_it_gave_before(city_20k, tables_20k):
    assert_same_tables(tables_20k, legacy_make_tables(**city_20k))


@pytest.mark.parametrize("as_of", AS_OF_DATES)
def test_city_of_20k_features_equal_the_pandas_implementation(tables_20k, as_of):
    assert_same_features(build_features(tables_20k, as_of, POLICY), legacy_build_features(tables_20k, as_of, POLICY))


@pytest.mark.parametrize("as_of", AS_OF_DATES[::3])
def test_city_of_20k_groups_equal_the_pandas_implementation(tables_20k, as_of):
    pd.testing.assert_frame_equal(household_groups(tables_20k, as_of), legacy_household_groups(tables_20k, as_of),
                                  check_exact=True)


@pytest.mark.parametrize("seed", range(5))
def test_small_cities_equal_the_pandas_implementation(seed):
    from synthcity import generate_city

    frames = generate_city(300, seed=seed).tables()
    tables = make_tables(**frames)
    assert_same_tables(tables, legacy_make_tables(**frames))
    objects = {k: v.astype({c: object for c in v.columns if isinstance(v[c].dtype, pd.StringDtype)})
               for k, v in frames.items()}
    assert_same_tables(make_tables(**objects), legacy_make_tables(**objects))
    for as_of in (*AS_OF_DATES, "2026-02-28", "2025-03-31"):
        assert_same_features(build_features(tables, as_of, POLICY), legacy_build_features(tables, as_of, POLICY))
        pd.testing.assert_frame_equal(household_groups(tables, as_of), legacy_household_groups(tables, as_of),
                                      check_exact=True)


def _bundles() -> list[dict[str, Any]]:
    from domain.bundle import CONTRACT_EXAMPLE

    t = "2026-06-30"
    family = bundle("H7", members=[member(), member("P2", "spouse", "1966-07-01", sex="F", employment="unemployed"),
                                   member("P3", "child", "2010-06-30", employment="student", disability_grade=2),
                                   member("P4", "head", "1940-02-29", employment="retired"),  # a second head
                                   member("P5", "grandchild", "2026-07-01")],  # born after T
                    income=monthly_income(months_back(t, 14), 2500.0) + [income_row("2026-06", 800, "P2", "pension"),
                                                                          income_row("2026-05", 80.5, "P9")],
                    claims=[claim("C1", "2026-03-30", 19000, setting="inpatient", diagnosis_group="cancer",
                                  inpatient_days=3),
                            claim("C2", "2025-12-31", 300, person_id="P3", setting="special_outpatient",
                                  diagnosis_group="renal"),
                            claim("C3", "2025-06-30", 50, person_id="P2"),
                            claim("C4", "2026-06-30", 70, person_id="P5")],
                    assistance=[assistance_row("dibao", "2022-01-01", "2026-03-31", 1000),
                                assistance_row("tekun", "2026-01-01", "2026-09-30", 900),
                                assistance_row("temporary", "2026-02-01", "2026-02-28", 2000)],
                    housing="rented", financial_assets=0)
    return [
        dict(CONTRACT_EXAMPLE),
        bundle(),
        family,
        bundle("H8", income=[], claims=[], members=[member(birth_date="2026-07-01")]),  # nobody there yet
        bundle("H9", income=[income_row("2026-05", 10)], claims=[claim(out_of_pocket=0)],
               assistance=[assistance_row("dibao_edge", "2026-07-01")]),
    ]


def _unusual_bundles() -> list[dict[str, Any]]:
    """Values outside the contract's own forms: the API refuses them, tables_from_bundle takes them
    as it always did (through pandas)."""
    b = bundle()
    return [
        {**b, "members": [{**b["members"][0], "disability_grade": 1.0}]},
        {**b, "income": [{**b["income"][0], "amount": True}]},
        {**b, "claims": [{**b["claims"][0], "service_date": dt.date(2026, 4, 11)}]},
        {**b, "household": {**b["household"], "household_id": 17}},
        {**b, "members": [{k: v for k, v in b["members"][0].items() if k != "employment"}]},
        {**b, "income": [{**b["income"][0], "month": "2026-5"}]},
        {**b, "assistance": [{"program": "dibao", "start_date": "2024-01-01", "monthly_amount": 900}]},
    ]


@pytest.mark.parametrize("which", range(5))
def test_a_bundle_gives_the_tables_and_features_it_gave_before(which):
    b = _bundles()[which]
    new, old = tables_from_bundle(b), legacy_tables_from_bundle(b)
    assert_same_features(build_features(new, b["as_of"], POLICY), legacy_build_features(old, b["as_of"], POLICY))
    assert_same_tables(new, old)


@pytest.mark.parametrize("which", range(7))
def test_unusual_values_in_a_bundle_go_through_pandas_as_before(which):
    b = _unusual_bundles()[which]
    new, old = tables_from_bundle(b), legacy_tables_from_bundle(b)
    assert_same_tables(new, old)
    assert_same_features(build_features(new, b["as_of"], POLICY), legacy_build_features(old, b["as_of"], POLICY))


def test_an_impossible_date_in_a_bundle_is_refused_by_pandas_as_before():
    b = bundle(claims=[claim(service_date="2026-02-30")])
    with pytest.raises(ValueError) as old:
        legacy_tables_from_bundle(b)
    with pytest.raises(ValueError) as new:
        tables_from_bundle(b)
    assert str(new.value) == str(old.value)


def test_awkward_tables_equal_the_pandas_implementation():
    # households listed out of order, one without anybody at T, persons of an unknown household,
    # income and claims of unknown persons, missing codes and amounts (read_tables(check=False))
    bundles = [with_person_ids(b, {p: b["household"]["household_id"] + p for p in ("P1", "P2", "P3")})
               for b in reversed(_bundles()[1:])]
    tables = tables_of(*bundles)
    frames = {f.name: getattr(tables, f.name).drop(columns=["month_index"], errors="ignore")
              for f in dataclasses.fields(tables)}
    frames["persons"] = pd.concat([frames["persons"], pd.DataFrame([{
        **member("X1", "head"), "household_id": "H404"}])], ignore_index=True)
    frames["persons"].loc[0, "employment"] = None
    frames["persons"].loc[1, "relation"] = None
    frames["income"].loc[0, "amount"] = np.nan
    frames["income"].loc[1, "source"] = None
    frames["claims"].loc[0, "out_of_pocket"] = np.nan
    frames["claims"].loc[1, "setting"] = None
    frames["assistance"].loc[0, "monthly_amount"] = np.nan
    frames["assistance"].loc[1, "program"] = None
    new, old = make_tables(**frames), legacy_make_tables(**frames)
    assert_same_tables(new, old)
    for as_of in ("2026-06-30", "2025-12-31"):
        assert_same_features(build_features(new, as_of, POLICY), legacy_build_features(old, as_of, POLICY))
        pd.testing.assert_frame_equal(household_groups(new, as_of), legacy_household_groups(old, as_of))


def test_no_households_gives_an_empty_frame():
    empty = make_tables()
    assert_same_features(build_features(empty, "2026-06-30", POLICY), legacy_build_features(empty, "2026-06-30",
                                                                                              POLICY))


def test_duplicated_household_ids_are_refused():
    tables = tables_of(bundle("H2"), with_person_ids(bundle("H1"), {"P1": "Q1"}),
                       with_person_ids(bundle("H2"), {"P1": "Q2"}))
    with pytest.raises(ValueError, match=r"^households\.household_id: duplicated keys$"):
        build_features(tables, "2026-06-30", POLICY)


# ---------------------------------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------------------------------


def test_months_before_is_pandas_dateoffset():
    days = pd.date_range("2023-01-01", "2026-12-31", freq="D")
    for k in (3, 6, 12):
        expected = (days - pd.DateOffset(months=k)).date
        assert [months_before(d, k) for d in days.date] == list(expected)


def test_ages_on_equals_the_pandas_ages():
    rng = np.random.default_rng(0)
    births = pd.Series(np.datetime64("1900-01-01", "D") + rng.integers(0, 46_000, 5_000)).astype("datetime64[ns]")
    births = pd.concat([births, pd.Series(pd.to_datetime(["2000-02-29", "1966-06-30", "1970-01-01", "1969-12-31"]))])
    for as_of in ("2026-06-30", "2024-02-28", "2024-02-29", "2025-03-01", "2026-01-01"):
        t = pd.Timestamp(as_of)
        np.testing.assert_array_equal(ages_on(births.to_numpy(), t.date()), _legacy_ages_at(births, t).to_numpy())


@pytest.mark.parametrize("n", [3, 3000])
def test_codes_by_dict_and_by_hash_table_agree(n):
    keys = np.array([f"P{i:04d}" for i in range(n)], dtype=object)
    values = np.array([f"P{i:04d}" for i in (0, 0, 0, 1, 5, 5, n - 1, n + 3, 2, 2)] * 10, dtype=object)
    expected = np.array([int(v[1:]) if int(v[1:]) < n else -1 for v in values])
    np.testing.assert_array_equal(codes(values, keys, "x"), expected)
    np.testing.assert_array_equal(codes(values[:5], keys, "x"), expected[:5])
    np.testing.assert_array_equal(codes(np.repeat(values, 30), keys, "x"), np.repeat(expected, 30))  # runs
    with pytest.raises(ValueError, match=r"^x: duplicated keys$"):
        codes(values, np.append(keys, keys[:1]), "x")


def test_bundle_tables_build_their_frames_once_and_only_when_read():
    tables = tables_from_bundle(bundle())
    assert "persons" not in vars(tables)
    build_features(tables, "2026-06-30", POLICY)
    assert "persons" not in vars(tables)
    assert tables.persons is tables.persons
    assert [f.name for f in dataclasses.fields(tables)] == list(TABLE_COLUMNS)
    np.testing.assert_array_equal(tables.array("claims", "out_of_pocket"), [19000.0])
