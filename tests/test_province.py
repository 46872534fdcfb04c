"""省内通办: policy parameters per city and date. The policy file's checks of its cities; a household
judged by its own city's 低保标准 in the features, the table and bundle checks, the lists, the
calculator, the advice and the worklist; and, on a real server, the same household eligible for 低保 in
the city with the higher standard and not in the other, ``GET /v1/policy/parameters``, and the
refusals of an unknown city and of a town of another city. A bundle without ``city`` is answered as
before: by the home city."""

from __future__ import annotations

import datetime as dt
import tomllib

import httpx
import numpy as np
import pandas as pd
import pytest

import tests.factories as f
from domain.bundle import CONTRACT_EXAMPLE, parse_bundle
from features.build import build_features, household_cities
from features.city import CityTables
from features.io import check_tables, policy_file_text, read_households, read_tables, write_tables
from features.policy import parse_policy
from features.tables import TABLE_COLUMNS, bundle_from_tables, make_tables, tables_from_bundle, tables_from_bundles
from policy import check_programs, household_lists, list_matrix, load_eligibility, load_lists
from policy.parameters import ParameterError, cities_overview, city_parameters
from tests.conftest import KEYS_ENV, auth

AS_OF = f.AS_OF  # 2026-06-30: 张家港市 1,100 yuan/person/month, 常熟市 1,000
DAY = dt.date.fromisoformat(AS_OF)
HOME_TOWN, OTHER_TOWN = "tangqiao", "guli"
BETWEEN = 1050.0  # per person and month: under 张家港市's 低保标准, over 常熟市's


def between_lines(household_id: str = "HPC1", town: str = HOME_TOWN, city: str | None = None) -> dict:
    """One working adult with 1,050 yuan every month of the last 12, few assets, no claims."""
    b = f.bundle(household_id, town=town, members=[f.member("P1", birth_date="1975-05-01", employment="employed")],
                 income=f.monthly_income(f.months_back(AS_OF, 12), BETWEEN), claims=[])
    if city is not None:
        b["city"] = city
    return b


def eligible(answer: dict) -> set[str]:
    return {p["program"] for p in answer["programs"] if p["eligible"]}


# ---- the policy file's cities ------------------------------------------------------------------------
def _version(version: str, effective_from: str, dibao_line: float, towns: list[str], **over) -> dict:
    return {"version": version, "effective_from": effective_from, "dibao_line": dibao_line, "edge_multiple": 1.5,
            "pdi_urban": 80000, "pdi_rural": 45000, "pdi_all": 70000, "rigid_share": 0.6, "towns": towns, **over}


def _doc(**over) -> dict:
    return {"home_city": "a", "city": [{"id": "a", "name_zh": "甲市"}, {"id": "b", "name_zh": "乙市"}],
            "version": [_version("a1", "2024-01-01", 1100, ["leyu", "daxin"]),
                        _version("b1", "2025-01-01", 1000, ["guli"], city="b")], **over}


def test_a_book_of_two_cities():
    book = parse_policy(_doc())
    assert (book.home_city, book.city_ids, book.known_cities()) == ("a", ("a", "b"), "a (甲市), b (乙市)")
    assert book.at(DAY).version == book.at(DAY, "a").version == "a1"
    assert book.at(DAY, "b").dibao_line == 1000.0 and book.at(DAY, "b").city == "b"
    assert [v.version for v in book.versions] == ["a1"]  # the home city's
    assert book.towns_of("b", DAY) == ("guli",) and book.city_of_town("daxin") == "a"
    assert book.city_of_town("atlantis") is None
    assert book.all_towns == {"leyu", "daxin", "guli"}
    assert book.city_towns == {"a": {"leyu", "daxin"}, "b": {"guli"}}
    with pytest.raises(ValueError, match=r"^no policy parameters of b in force on 2024-06-30; the first version "
                                         r"starts 2025-01-01$"):
        book.at(dt.date(2024, 6, 30), "b")
    with pytest.raises(KeyError, match="unknown city 'c'; known cities: a"):
        book.at(DAY, "c")


def test_the_home_city_comes_first_whatever_the_file_order():
    book = parse_policy(_doc(home_city="b", version=[_version("a1", "2024-01-01", 1100, ["leyu"], city="a"),
                                                     _version("b1", "2025-01-01", 1000, ["guli"])]))
    assert book.city_ids == ("b", "a") and book.at(DAY).version == "b1"
    assert [v.version for v in book.versions] == ["b1"]


def test_a_file_without_cities_reads_as_before():
    book = parse_policy({"version": [_version("x", "2024-01-01", 1050, ["leyu"])]})
    assert (book.home_city, book.city_ids, book.cities[0].name_zh) == ("zhangjiagang", ("zhangjiagang",), "张家港市")
    assert book.at(DAY).version == book.at(DAY, "zhangjiagang").version == "x"
    assert book.city_of_town("leyu") == "zhangjiagang"


@pytest.mark.parametrize(("doc", "message"), [
    (_doc(version=[_version("a1", "2024-01-01", 1100, ["leyu", "guli"]),
                   _version("b1", "2025-01-01", 1000, ["guli"], city="b")]),
     r"^town 'guli' is listed for two cities, a and b: a town belongs to one city only$"),
    (_doc(version=[_version("a1", "2024-01-01", 1100, ["leyu"]), _version("s1", "2024-01-01", 900, ["x"],
                                                                          city="suzhou")]),
     r"^policy version s1: unknown city 'suzhou'; the \[\[city\]\] ids are \['a', 'b'\]$"),
    (_doc(version=[_version("a1", "2024-01-01", 1100, ["leyu"])]), r"^city 'b' has no \[\[version\]\]"),
    (_doc(home_city="c"), r"^home_city 'c' is not one of the \[\[city\]\] ids \['a', 'b'\]$"),
    ({k: v for k, v in _doc().items() if k != "home_city"}, r"^the policy file has several \[\[city\]\] but no "
                                                             r"home_city$"),
    ({"home_city": "changshu", "version": [_version("x", "2024-01-01", 1050, ["leyu"])]},
     r"^home_city 'changshu' is not a \[\[city\]\] of the policy file \(it has none\)$"),
    (_doc(city=[{"id": "a", "name_zh": "甲市"}, {"id": "a", "name_zh": "乙市"}]),
     r"^\[\[city\]\] #2: a second city 'a'$"),
    (_doc(city=[{"id": "a"}]), r"^\[\[city\]\] #1: needs an id and a name_zh"),
    (_doc(version=[_version("a1", "2024-01-01", 1100, ["leyu"]), _version("a2", "2024-01-01", 1200, ["leyu"]),
                   _version("b1", "2025-01-01", 1000, ["guli"], city="b")]),
     r"^policy version a2: a second version of a effective from 2024-01-01$"),
])
def test_a_bad_file_of_cities_is_refused_naming_what(doc, message):
    with pytest.raises(ValueError, match=message):
        parse_policy(doc)


def test_the_packaged_file_has_two_cities(policy):
    assert policy.home_city == "zhangjiagang" and policy.city_ids == ("zhangjiagang", "changshu")
    assert [c.name_zh for c in policy.cities] == ["张家港市", "常熟市"]
    assert policy.at(DAY).dibao_line == 1100.0 and policy.at(DAY, "changshu").dibao_line == 1000.0
    assert policy.towns_of("changshu", DAY) == ("yushan", "guli", "shajiabang", "meili", "haiyu", "xinzhuang",
                                                "zhitang", "dongbang", "shanghu", "bixi")
    assert not set(policy.towns_of("changshu", DAY)) & set(policy.towns_of("zhangjiagang", DAY))


def test_each_households_city(policy):
    towns = np.array(["tangqiao", "guli", "guli", "atlantis", None], dtype=object)
    given = np.array([pd.NA, None, "changshu", "", pd.NA], dtype=object)
    expected = ["zhangjiagang", "changshu", "changshu", "zhangjiagang", "zhangjiagang"]
    assert policy.cities_of(towns, given).tolist() == expected
    assert policy.cities_of(towns).tolist() == expected
    # many households take the vectorised path, with the same answer
    assert policy.cities_of(np.repeat(towns, 20), np.repeat(given, 20)).tolist() == list(np.repeat(expected, 20))
    assert policy.groups(None) == [("zhangjiagang", None)]
    assert policy.groups(np.array(["changshu", "changshu"], dtype=object)) == [("changshu", None)]
    (home, rows_home), (other, rows_other) = policy.groups(np.array(expected, dtype=object))
    assert (home, rows_home.tolist(), other, rows_other.tolist()) == ("zhangjiagang", [0, 3, 4], "changshu", [1, 2])
    assert policy.dibao_lines(np.array(expected, dtype=object), DAY).tolist() == [1100.0, 1000.0, 1000.0, 1100.0,
                                                                                 1100.0]


# ---- features ------------------------------------------------------------------------------------------
def _old_style_book():
    """The packaged file as it was before cities: the home city's versions, no [[city]], no home_city."""
    doc = tomllib.loads(policy_file_text())
    return parse_policy({"version": [v for v in doc["version"] if "city" not in v], "rules": doc["rules"]})


def test_home_city_features_are_the_same_as_before_cities(city_tables, policy):
    old = _old_style_book()
    assert old.city_ids == ("zhangjiagang",)
    for as_of in ("2024-06-30", AS_OF):
        pd.testing.assert_frame_equal(build_features(city_tables, as_of, policy),
                                      build_features(city_tables, as_of, old))
    # and an explicit city column naming the home city changes nothing either
    households = city_tables.households.assign(city="zhangjiagang")
    with_city = make_tables(households=households, persons=city_tables.persons, income=city_tables.income,
                            claims=city_tables.claims, assistance=city_tables.assistance)
    pd.testing.assert_frame_equal(build_features(with_city, AS_OF, policy), build_features(city_tables, AS_OF, old))


def _tables_with_cities(*bundles: dict):
    tables = f.tables_of(*bundles)
    households = tables.households.assign(city=[b.get("city") for b in bundles])
    return make_tables(households=households, persons=tables.persons, income=tables.income, claims=tables.claims,
                       assistance=tables.assistance)


def test_each_household_is_divided_by_its_own_citys_line(policy):
    home = between_lines("H1")
    by_town = f.with_person_ids(between_lines("H2", OTHER_TOWN), {"P1": "P2"})
    by_column = f.with_person_ids(between_lines("H3", OTHER_TOWN, "changshu"), {"P1": "P3"})
    tables = _tables_with_cities(home, by_town, by_column)
    assert household_cities(tables, policy).tolist() == ["zhangjiagang", "changshu", "changshu"]
    features = build_features(tables, AS_OF, policy)
    assert features["income_pc_to_dibao"].tolist() == [BETWEEN / 1100, BETWEEN / 1000, BETWEEN / 1000]
    assert features["after_oop_to_dibao"].tolist() == [BETWEEN / 1100, BETWEEN / 1000, BETWEEN / 1000]
    # each row is what its household alone gets: the home one as before, the others with 常熟市's line
    for hid, b in zip(("H1", "H2", "H3"), (home, by_town, by_column), strict=True):
        alone = build_features(tables_from_bundle(b), AS_OF, policy).iloc[0]
        pd.testing.assert_series_equal(features.loc[hid], alone, check_names=False)
    # the rest of the row does not depend on the city
    same = [c for c in features.columns if c not in ("income_pc_to_dibao", "after_oop_to_dibao", "oop_to_capacity")]
    assert (features[same].nunique(dropna=False) == 1).all()


def test_a_bundles_city_is_the_households_city_column(policy):
    b = between_lines("H9", OTHER_TOWN, "changshu")
    tables = tables_from_bundle(b)
    assert tables.households["city"].tolist() == ["changshu"]
    assert not tables_from_bundle(between_lines()).has("households", "city")
    assert bundle_from_tables(tables, "H9", AS_OF)["city"] == "changshu"
    assert "city" not in bundle_from_tables(tables_from_bundle(between_lines()), "HPC1", AS_OF)
    many = tables_from_bundles([between_lines("A"), b])
    assert household_cities(many, policy).tolist() == ["zhangjiagang", "changshu"]
    assert build_features(many, AS_OF, policy)["income_pc_to_dibao"].tolist() == [BETWEEN / 1100, BETWEEN / 1000]


# ---- the table checks ------------------------------------------------------------------------------------
def _frames(city: list[str | None], towns: list[str]) -> dict[str, pd.DataFrame]:
    bundles = [f.with_person_ids(between_lines(f"H{i}", town), {"P1": f"P{i}"}) for i, town in enumerate(towns)]
    tables = f.tables_of(*bundles)
    frames = {name: getattr(tables, name).drop(columns=["month_index"], errors="ignore")
              for name in TABLE_COLUMNS if name != "verifications"}
    frames["households"] = frames["households"].assign(city=city)
    return frames


@pytest.mark.parametrize(("city", "towns", "problems"), [
    ([None, "", "changshu", "zhangjiagang"], [HOME_TOWN, OTHER_TOWN, OTHER_TOWN, "yangshe"], []),
    (["suzhou", None], [HOME_TOWN, OTHER_TOWN],
     ["households.city: 1 unknown city codes (known: zhangjiagang, changshu)"]),
    (["changshu", "changshu"], [HOME_TOWN, OTHER_TOWN],
     ["households.city: 1 households whose town is not a town of their city"]),
    (["zhangjiagang", None], ["atlantis", HOME_TOWN],
     ["households.town: 1 unknown town codes", "households.city: 1 households whose town is not a town of their city"]),
])
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_city_column_is_checked_by_both_readers(policy, tmp_path, city, towns, problems, fmt):
    frames = _frames(city, towns)
    tables = make_tables(**frames)
    assert check_tables(tables, towns=policy.all_towns, cities=policy.city_towns) == problems
    write_tables(frames, tmp_path, fmt)
    if problems:
        for read in (lambda: read_tables(tmp_path, policy=policy), lambda: CityTables.read(tmp_path, policy=policy)):
            with pytest.raises(ValueError) as refused:
                read()
            assert str(refused.value) == "bad input tables:\n  " + "\n  ".join(problems)
        return
    read = read_tables(tmp_path, policy=policy)
    city_tables = CityTables.read(tmp_path, policy=policy)
    expected = household_cities(tables, policy).tolist()
    assert expected == ["zhangjiagang", "changshu", "changshu", "zhangjiagang"]
    assert household_cities(read, policy).tolist() == expected
    assert household_cities(city_tables.slice(0, city_tables.n), policy).tolist() == expected
    assert household_cities(CityTables.from_tables(tables).slice(0, 4), policy).tolist() == expected
    if fmt == "parquet":
        assert household_cities(read_households(tmp_path, ["H2", "H0"]), policy).tolist() == ["zhangjiagang",
                                                                                             "changshu"]
    pd.testing.assert_frame_equal(build_features(city_tables.slice(0, city_tables.n), AS_OF, policy),
                                  build_features(tables, AS_OF, policy))


def test_tables_without_a_city_column_are_checked_as_before(policy):
    tables = f.tables_of(between_lines())
    assert not tables.has("households", "city")
    assert check_tables(tables, towns=policy.all_towns, cities=policy.city_towns) == []


# ---- the bundle ------------------------------------------------------------------------------------------
def test_a_bundle_without_city_is_the_home_citys(policy):
    assert parse_bundle(CONTRACT_EXAMPLE, policy)[1] == []
    assert parse_bundle({**CONTRACT_EXAMPLE, "city": "zhangjiagang"}, policy)[1] == []
    assert parse_bundle(between_lines(town=OTHER_TOWN, city="changshu"), policy)[1] == []


@pytest.mark.parametrize(("city", "town", "loc", "message"), [
    ("suzhou", HOME_TOWN, ["body", "city"],
     "unknown city 'suzhou'; known cities: zhangjiagang (张家港市), changshu (常熟市)"),
    ("changshu", HOME_TOWN, ["body", "household", "town"],
     "town 'tangqiao' belongs to the city zhangjiagang (张家港市), not to the bundle's city changshu (常熟市); "
     "give \"city\": \"zhangjiagang\" if the household is there"),
    (None, OTHER_TOWN, ["body", "household", "town"],
     "town 'guli' belongs to the city changshu (常熟市), not to the home city zhangjiagang (张家港市), the city of "
     "a bundle without \"city\"; give \"city\": \"changshu\" if the household is there"),
    ("changshu", "atlantis", ["body", "household", "town"],
     "unknown town code; known codes of changshu (常熟市): yushan, guli, shajiabang, meili, haiyu, xinzhuang, "
     "zhitang, dongbang, shanghu, bixi"),
])
def test_a_bundle_of_an_unknown_city_or_a_town_of_another_city_is_refused(policy, city, town, loc, message):
    bundle, problems = parse_bundle(between_lines(town=town, city=city), policy)
    assert bundle is None
    assert [(p["loc"], p["msg"]) for p in problems] == [(loc, message)]


@pytest.mark.parametrize("city", ["", 7, None, ["changshu"], "x" * 65])
def test_a_city_that_is_not_a_string_of_1_to_64_characters_is_refused(policy, city):
    raw = {**between_lines(), "city": city}
    bundle, problems = parse_bundle(raw, policy)
    if city is None:  # null: as if absent
        assert bundle is not None and bundle.city is None
    else:
        assert bundle is None and problems[0]["loc"][:2] == ["body", "city"]


# ---- lists, the calculator, the advice -------------------------------------------------------------------
def test_the_calculator_judges_by_the_households_city(policy):
    eligibility = load_eligibility()
    home = check_programs(tables_from_bundle(between_lines()), DAY, policy, eligibility)
    other = check_programs(tables_from_bundle(between_lines(town=OTHER_TOWN, city="changshu")), DAY, policy,
                           eligibility)
    assert "dibao" in eligible(home) and "dibao_edge_income" not in eligible(home)
    assert "dibao" not in eligible(other) and "dibao_edge_income" in eligible(other)
    assert home["parameters"] | {"version": None} == {"version": None, "effective_from": "2025-01-01",
                                                      "eligibility_version": "2024.1", "city": "zhangjiagang",
                                                      "city_name": "张家港市", "dibao_standard_monthly": 1100.0}
    assert (other["parameters"]["city"], other["parameters"]["city_name"], other["parameters"]["version"]) == (
        "changshu", "常熟市", "changshu.2025.1")
    steps = {p["program"]: p["steps"] for p in other["programs"]}
    below = next(s for s in steps["dibao"] if s["label"] == "收入低于低保标准")
    assert below["detail"] == "1,050.00 元 ≥ 1,000.00 元：不满足"
    assets = next(s for s in steps["dibao"] if s["label"] == "人均金融资产不超过限额")
    assert "24 × 1,000.00 元 = 24,000.00 元" in assets["detail"]
    # the town's city when the bundle names none: the same as naming it
    assert other == check_programs(tables_from_bundle({**between_lines(town=OTHER_TOWN)}), DAY, policy, eligibility)


def test_the_lists_judge_each_household_by_its_citys_lines(policy):
    book = load_lists()
    tables = _tables_with_cities(between_lines("H1"), f.with_person_ids(between_lines("H2", OTHER_TOWN), {"P1": "P2"}),
                                 f.with_person_ids(between_lines("H3"), {"P1": "P3"}))
    features = build_features(tables, AS_OF, policy)
    cities = household_cities(tables, policy)
    matrix = list_matrix(features, AS_OF, policy, book, cities)
    assert matrix["low_income_margin"].tolist() == [False, True, False]  # 1,000 ≤ 1,050 < 1,500 in 常熟市 only
    assert not list_matrix(features, AS_OF, policy, book)["low_income_margin"].any()  # all judged as the home city
    # the same as each household alone, in its own city
    for i, hid in enumerate(features.index):
        alone = list_matrix(features.loc[[hid]], AS_OF, policy, book, cities[[i]])
        assert alone.iloc[0].tolist() == matrix.iloc[i].tolist()
    items = household_lists(features, AS_OF, policy, book, cities)
    margin = next(i for i in items[1] if i["list"] == "low_income_margin")
    assert "≥ 低保标准 1,000 元/人·月" in margin["why"] and "< 低保边缘标准 1,500 元/人·月" in margin["why"]
    assert [i["list"] for i in items[0]] == [i["list"] for i in items[2]]
    assert "low_income_margin" not in [i["list"] for i in items[0]]
    with pytest.raises(ValueError, match="2 cities for 3 households"):
        list_matrix(features, AS_OF, policy, book, cities[:2])


def test_the_advice_judges_each_household_by_its_city(policy):
    from domain.advice import Advisor

    advisor = Advisor.load(policy=policy)
    tables = _tables_with_cities(between_lines("H1"), f.with_person_ids(between_lines("H2", OTHER_TOWN), {"P1": "P2"}))
    features = build_features(tables, AS_OF, policy)
    columns = {c: features[c].to_numpy(dtype="float64") for c in features.columns}
    home, other = advisor.advise_matrix(tables, columns, AS_OF, [None, None])
    assert home.eligible_programs == ["dibao", "dibao_edge_expenditure", "expenditure_hardship"]
    assert other.eligible_programs == ["dibao_edge_income", "dibao_edge_expenditure", "expenditure_hardship"]
    assert other.eligibility["parameters"]["city"] == "changshu"
    assert "low_income_margin" in [i["list"] for i in other.lists]
    (only,) = advisor.advise_matrix(tables, columns, AS_OF, [None], rows=np.array([1]))
    assert only.eligible_programs == other.eligible_programs


def test_the_rules_judge_each_household_by_its_citys_version(policy):
    from training.rules import rule_scores

    tables = _tables_with_cities(between_lines("H1"), f.with_person_ids(between_lines("H2", OTHER_TOWN), {"P1": "P2"}))
    features = build_features(tables, AS_OF, policy)
    cities = household_cities(tables, policy)
    mixed = rule_scores(features, AS_OF, policy, cities=cities)
    for i in range(2):
        alone = rule_scores(features.iloc[[i]], AS_OF, policy, cities=cities[[i]])
        assert mixed.iloc[i].tolist() == alone.iloc[0].tolist()
    assert list(mixed.index) == list(features.index)


def test_the_worklist_takes_every_town_of_each_city_in_the_data(policy):
    from batch.worklist import _city_name, _towns

    home = list(policy.towns_of("zhangjiagang", DAY))
    other = list(policy.towns_of("changshu", DAY))
    assert _towns(policy, DAY, {HOME_TOWN}) == home
    assert _towns(policy, DAY, {OTHER_TOWN}) == other
    assert _towns(policy, DAY, {OTHER_TOWN, HOME_TOWN, "=1+1"}) == home + other + ["=1+1"]
    assert (_city_name(policy, OTHER_TOWN), _city_name(policy, HOME_TOWN), _city_name(policy, "x")) == (
        "常熟市", "张家港市", "")


# ---- the parameters, as the API answers them ---------------------------------------------------------------
def test_the_parameters_of_one_city_and_of_all(policy):
    eligibility = load_eligibility()
    answer = city_parameters(policy, eligibility, "changshu", DAY)
    assert answer == {
        "city": "changshu", "name": "常熟市", "home": False, "on": AS_OF, "version": "changshu.2025.1",
        "effective_from": "2025-01-01", "dibao_standard_monthly": 1000.0, "edge_multiple": 1.5,
        "edge_standard_monthly": 1500.0, "pdi_urban": 86640.0, "pdi_rural": 48946.0, "pdi_all": 77524.0,
        "rigid_share": 0.6, "towns": list(policy.towns_of("changshu", DAY)),
        "eligibility": {"version": "2024.1", "effective_from": "2000-01-01", "assets_months_of_line": 24.0,
                        "assets_limit_per_capita": 24000.0, "max_properties": 1, "max_vehicles": 0,
                        "expenditure_older_multiple": 2.0}}
    assert city_parameters(policy, eligibility, "zhangjiagang", dt.date(2024, 6, 30))["dibao_standard_monthly"] \
        == 1050.0
    overview = cities_overview(policy, DAY)
    assert overview["home_city"] == "zhangjiagang" and overview["on"] == AS_OF
    assert [(c["city"], c["name"], c["home"], c["dibao_standard_monthly"]) for c in overview["cities"]] == [
        ("zhangjiagang", "张家港市", True, 1100.0), ("changshu", "常熟市", False, 1000.0)]
    with pytest.raises(ParameterError, match="unknown city 'suzhou'") as e:
        city_parameters(policy, eligibility, "suzhou", DAY)
    assert e.value.field == "city"
    with pytest.raises(ParameterError, match="no policy parameters of changshu in force on 1999-12-31") as e:
        city_parameters(policy, eligibility, "changshu", dt.date(1999, 12, 31))
    assert e.value.field == "on"
    with pytest.raises(ParameterError, match="no policy parameters in force on 1999-12-31") as e:
        cities_overview(policy, dt.date(1999, 12, 31))
    assert e.value.field == "on"


def test_a_city_whose_first_version_starts_later_shows_no_line():
    book = parse_policy(_doc())
    overview = cities_overview(book, dt.date(2024, 6, 30))
    assert overview["cities"][1] == {"city": "b", "name": "乙市", "home": False, "towns": [],
                                     "dibao_standard_monthly": None, "version": None}


# ---- on a real server --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_household_is_eligible_for_dibao_in_one_city_and_not_in_the_other(live_server):
    url = live_server["url"]
    with httpx.Client(base_url=url, timeout=60) as c:
        home = c.post("/v1/policy/check", json=between_lines(), headers=auth("platform"))
        other = c.post("/v1/policy/check", json=between_lines(town=OTHER_TOWN, city="changshu"),
                       headers=auth("auditor"))
        assert home.status_code == other.status_code == 200, (home.text, other.text)
        assert "dibao" in eligible(home.json()) and "dibao" not in eligible(other.json())
        assert "dibao_edge_income" in eligible(other.json())
        assert home.json()["parameters"]["city"] == "zhangjiagang"
        assert other.json()["parameters"] | {"version": None} == {
            "version": None, "effective_from": "2025-01-01", "eligibility_version": "2024.1", "city": "changshu",
            "city_name": "常熟市", "dibao_standard_monthly": 1000.0}

        scored_home = c.post("/v1/score", json=between_lines("HPS1"), headers=auth("platform"))
        scored_other = c.post("/v1/score", json=between_lines("HPS2", OTHER_TOWN, "changshu"),
                              headers=auth("platform"))
        assert scored_home.status_code == scored_other.status_code == 200, (scored_home.text, scored_other.text)
        assert "dibao" in scored_home.json()["eligible_programs"]
        assert "dibao" not in scored_other.json()["eligible_programs"]
        assert "dibao_edge_income" in scored_other.json()["eligible_programs"]
        assert "low_income_margin" in [i["list"] for i in scored_other.json()["lists"]]
        # the audit record keeps the bundle as received, its city included
        record = c.get(f"/v1/audit/{scored_other.json()['request_id']}", headers=auth("auditor"))
        assert record.status_code == 200 and record.json()["request"]["city"] == "changshu"


@pytest.mark.slow
def test_a_bundle_without_city_is_answered_as_before(live_server):
    url = live_server["url"]
    with httpx.Client(base_url=url, timeout=60) as c:
        plain = c.post("/v1/score", json=CONTRACT_EXAMPLE, headers=auth("platform"))
        named = c.post("/v1/score", json={**CONTRACT_EXAMPLE, "city": "zhangjiagang"}, headers=auth("platform"))
        assert plain.status_code == named.status_code == 200, (plain.text, named.text)
        a, b = plain.json(), named.json()
        assert {k: v for k, v in a.items() if k != "request_id"} == {k: v for k, v in b.items() if k != "request_id"}
        record = c.get(f"/v1/audit/{a['request_id']}", headers=auth("auditor")).json()
        assert "city" not in record["request"]
        check = c.post("/v1/policy/check", json=CONTRACT_EXAMPLE, headers=auth("platform")).json()
        assert check["parameters"]["city"] == "zhangjiagang" and check["parameters"]["dibao_standard_monthly"] == 1100


@pytest.mark.slow
def test_an_unknown_city_or_a_town_of_another_city_is_a_422_on_the_server(live_server):
    url = live_server["url"]
    with httpx.Client(base_url=url, timeout=60) as c:
        for path in ("/v1/score", "/v1/policy/check"):
            r = c.post(path, json=between_lines(city="suzhou"), headers=auth("platform"))
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "city"], r.text
            assert "zhangjiagang (张家港市), changshu (常熟市)" in r.json()["detail"][0]["msg"]
            r = c.post(path, json=between_lines(town=OTHER_TOWN), headers=auth("platform"))
            (problem,) = r.json()["detail"]
            assert r.status_code == 422 and problem["loc"] == ["body", "household", "town"], r.text
            assert "belongs to the city changshu (常熟市)" in problem["msg"]
        batch = c.post("/v1/score/batch", headers=auth("platform"), json={"items": [
            between_lines("HB1", OTHER_TOWN, "changshu"), between_lines("HB2", OTHER_TOWN, "zhangjiagang")]})
        assert batch.status_code == 200
        first, second = batch.json()["results"]
        assert "dibao" not in first["eligible_programs"] and "dibao_edge_income" in first["eligible_programs"]
        assert second["status"] == 422 and second["detail"][0]["loc"] == ["body", "items", 1, "household", "town"]


@pytest.mark.slow
def test_the_parameters_route_on_the_server(live_server):
    url = live_server["url"]
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.get("/v1/policy/parameters", params={"city": "changshu", "on": AS_OF}, headers=auth("auditor"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["city"], body["name"], body["home"], body["dibao_standard_monthly"], body["edge_standard_monthly"],
                body["version"], body["effective_from"]) == ("changshu", "常熟市", False, 1000.0, 1500.0,
                                                             "changshu.2025.1", "2025-01-01")
        assert "guli" in body["towns"] and body["eligibility"]["assets_limit_per_capita"] == 24000.0
        r = c.get("/v1/policy/parameters", params={"city": "zhangjiagang"}, headers=auth("platform"))
        assert r.status_code == 200 and r.json()["home"] and r.json()["on"] == dt.date.today().isoformat()
        r = c.get("/v1/policy/parameters", params={"on": "2024-06-30"}, headers=auth("platform"))
        assert r.status_code == 200, r.text
        assert [(x["city"], x["dibao_standard_monthly"]) for x in r.json()["cities"]] == [
            ("zhangjiagang", 1050.0), ("changshu", 950.0)]
        assert r.json()["home_city"] == "zhangjiagang" and r.json()["on"] == "2024-06-30"
        for params, loc, words in [({"city": "suzhou"}, ["query", "city"], "known cities: zhangjiagang"),
                                   ({"city": "changshu", "on": "2026-13-01"}, ["query", "on"], "calendar date"),
                                   ({"on": "30.06.2026"}, ["query", "on"], "YYYY-MM-DD"),
                                   ({"city": "changshu", "on": "1999-12-31"}, ["query", "on"],
                                    "no policy parameters of changshu in force on 1999-12-31")]:
            r = c.get("/v1/policy/parameters", params=params, headers=auth("platform"))
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (params, r.text)
            assert words in r.json()["detail"][0]["msg"], r.text
        assert c.get("/v1/policy/parameters", headers=auth("admin")).status_code == 403
        assert c.get("/v1/policy/parameters").status_code == 401


@pytest.mark.slow
def test_a_key_may_be_limited_to_towns_of_any_city(trained, mlflow_uri, tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import Settings

    key = "platform-guli-yangshe-key-0123"
    settings = Settings(api_keys=f"{KEYS_ENV},platform@guli+yangshe:{key}", audit_url=f"sqlite:///{tmp_path / 'a.db'}",
                        mlflow_tracking_uri=mlflow_uri)
    with TestClient(create_app(settings)) as c:
        h = {"Authorization": f"Bearer {key}"}
        assert c.post("/v1/score", json=between_lines("HK1", OTHER_TOWN, "changshu"), headers=h).status_code == 200
        assert c.post("/v1/score", json=between_lines("HK2", "yangshe"), headers=h).status_code == 200
        refused = c.post("/v1/score", json=between_lines("HK3"), headers=h)
        assert refused.status_code == 403 and "'tangqiao'" in refused.json()["detail"]
        assert c.get("/v1/policy/parameters", params={"city": "changshu"}, headers=h).status_code == 200
