"""Today's high-risk lists at the edges of every definition (at the threshold, a cent above, a cent
below), their versions by date, the loader's errors, and the warm list's measures and citations.

Over 400 lines because it takes every packaged list to its edges and pins every loader error, for
the lists and the measures of the same policy file, with the feature-row helpers both use."""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.catalog import FEATURE_IDS, UNREPORTED_BY
from features.io import load_policy_book, policy_file_text
from features.tables import tables_from_bundle
from policy import check_programs, household_lists, list_matrix, load_eligibility, load_lists, load_measures, warm_list
from policy.calculator import PROGRAM_LABELS
from policy.lists import Condition, DefinitionError, Group, Helper
from tests.factories import AS_OF, bundle, claim, member, monthly_income, months_back
from training import rules as baseline

LINE, EDGE = 1100.0, 1650.0  # 2025.1, in force on AS_OF
BOOK = load_lists()
MEASURES = load_measures()

# a household on no list: two working adults well above the lines, no spending, no assistance
NEUTRAL = {fid: 0.0 for fid in FEATURE_IDS} | {
    "n_members": 2.0, "n_earners": 2.0, "head_age": 40.0, "income_12m_per_capita_month": 5000.0,
    "income_months_reported_12m": 12.0, "income_pc_to_dibao": 5000 / LINE, "income_after_oop_pc_month": 5000.0,
    "after_oop_to_dibao": 5000 / LINE, "income_trend_3m": 1.0, "wage_share_12m": 1.0, "housing_owned": 1.0,
}


def frame(*rows: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([NEUTRAL | r for r in rows], index=pd.Index([f"H{i}" for i in range(len(rows))],
                                                                      name="household_id"))


def on(list_id: str, policy, as_of: str = AS_OF, **values: float) -> bool:
    return bool(list_matrix(frame(values), as_of, policy, BOOK)[list_id].iloc[0])


def why(list_id: str, policy, **values: float) -> str:
    items = household_lists(frame(values), AS_OF, policy, BOOK)[0]
    return next(i["why"] for i in items if i["list"] == list_id)


# ---- the packaged definitions ---------------------------------------------------------------------
TEN = ["low_income_margin", "serious_illness", "severe_disability", "disabled_low_income", "elderly_alone",
       "children_in_difficulty", "unemployed_low_income", "left_assistance", "medical_burden",
       "temporary_assistance"]


def test_every_list_and_measure_names_catalog_features():
    def features_of(node):
        if isinstance(node, Condition):
            yield node.feature
        elif isinstance(node, Group):
            for item in node.items:
                yield from features_of(item)
        else:
            assert isinstance(node, Helper)
    used = {f for d in BOOK.definitions for f in features_of(d.condition)}
    used |= {f for d in BOOK.definitions for f in d.features}
    used |= {t.id for m in MEASURES.measures for t in m.triggers if t.kind == "reason"}
    used |= {f for m in MEASURES.measures for node in m.unless for f in features_of(node)}
    assert used and used <= set(FEATURE_IDS)


def test_the_packaged_lists_and_measures():
    assert [d.id for d in BOOK.at(AS_OF)] == [*TEN, "expenditure_hardship", "very_old", "sudden_hardship"]
    # the three added in 2026 are not listed before their date: history keeps the ten
    assert [d.id for d in BOOK.at("2025-12-31")] == TEN
    assert {d.version for d in BOOK.at(AS_OF)} == {"2025.1", "2026.1"}
    assert all(d.id.isascii() and d.label_zh and d.description_zh for d in BOOK.definitions)
    list_ids = {d.id for d in BOOK.definitions}
    assert {t.id for m in MEASURES.measures for t in m.triggers if t.kind == "list"} == list_ids
    assert {t.id for m in MEASURES.measures for t in m.triggers if t.kind == "program"} == set(PROGRAM_LABELS)


def test_measures_propose_and_never_deny():
    for m in MEASURES.measures:
        assert "建议" in m.description_zh, m.id
        assert not re.search("不予|不符合|取消|停发|拒绝|驳回|不得", m.label_zh + m.description_zh), m.id


def test_the_other_loaders_still_read_the_file():
    text = policy_file_text()
    assert "[[list]]" in text and "[[measure]]" in text
    assert load_policy_book().at(pd.Timestamp(AS_OF).date()).dibao_line == LINE
    assert load_eligibility().at(pd.Timestamp(AS_OF).date()).max_properties == 1


# ---- each list at its edges -----------------------------------------------------------------------
@pytest.mark.parametrize("income, expected", [
    (LINE - 0.01, False), (LINE, True), (LINE + 0.01, True), (EDGE - 0.01, True), (EDGE, False),
    (EDGE + 0.01, False), (math.nan, False)])
def test_low_income_margin_between_the_lines(policy, income, expected):
    assert on("low_income_margin", policy, income_12m_per_capita_month=income) is expected


@pytest.mark.parametrize("receiving, expected", [("on_dibao", False), ("on_tekun", False), ("on_dibao_edge", True),
                                                 ("on_expenditure_hardship", True)])
def test_low_income_margin_leaves_out_dibao_and_tekun(policy, receiving, expected):
    assert on("low_income_margin", policy, income_12m_per_capita_month=1500, **{receiving: 1}) is expected


def test_low_income_margin_says_why_with_the_households_values(policy):
    assert why("low_income_margin", policy, income_12m_per_capita_month=1600) == (
        "低收入边缘：近12个月家庭人均月收入 1,600 元/人·月 ≥ 低保标准 1,100 元/人·月；近12个月家庭人均月收入 "
        "1,600 元/人·月 < 低保边缘标准 1,650 元/人·月；正在享受低保：否；正在享受特困供养：否。")


@pytest.mark.parametrize("values, expected", [
    ({"n_members_serious_dx_12m": 0}, False), ({"n_members_serious_dx_12m": 1}, True),
    ({"oop_12m_max_person": 25999.99}, False), ({"oop_12m_max_person": 26000}, False),
    ({"oop_12m_max_person": 26000.01}, True)])
def test_serious_illness(policy, values, expected):
    assert on("serious_illness", policy, **values) is expected


def test_serious_illness_cites_the_branch_that_held(policy):
    assert why("serious_illness", policy, oop_12m_max_person=30000) == (
        "大病重病：近12个月成员个人最高自付医疗费用 30,000 元 > 一般人群个人自付预警线（西安规则） 26,000 元。")


@pytest.mark.parametrize("n, expected", [(0, False), (1, True), (2, True)])
def test_severe_disability(policy, n, expected):
    assert on("severe_disability", policy, n_severe_disabled=n) is expected


@pytest.mark.parametrize("values, expected", [
    ({"n_disabled": 1, "income_12m_per_capita_month": EDGE - 0.01}, True),
    ({"n_disabled": 1, "income_12m_per_capita_month": EDGE}, False),
    ({"n_disabled": 1, "income_12m_per_capita_month": EDGE + 0.01}, False),
    ({"n_disabled": 0, "income_12m_per_capita_month": 500}, False),
    ({"n_disabled": 1, "on_dibao": 1}, True), ({"n_disabled": 1, "on_tekun": 1}, True),
    ({"n_disabled": 1, "on_dibao_edge": 1}, True), ({"n_disabled": 1, "on_expenditure_hardship": 1}, True),
    ({"n_disabled": 1, "income_12m_per_capita_month": math.nan}, False)])
def test_disabled_low_income(policy, values, expected):
    assert on("disabled_low_income", policy, **values) is expected


def test_low_income_helper_is_the_rule_baselines(policy):
    f = random_frame(5000, seed=1)
    v = policy.at(pd.Timestamp(AS_OF).date())
    ours = list_matrix(f, AS_OF, policy, BOOK)["disabled_low_income"].to_numpy()
    assert np.array_equal(ours, (f["n_disabled"].to_numpy() >= 1) & baseline._low_income(f, v))


@pytest.mark.parametrize("values, expected", [
    ({"elderly_only": 1, "head_age": 74}, False), ({"elderly_only": 1, "head_age": 75}, True),
    ({"elderly_only": 1, "head_age": 76}, True), ({"elderly_only": 0, "head_age": 90}, False),
    ({"elderly_only": 1, "head_age": math.nan}, False)])
def test_elderly_alone(policy, values, expected):
    assert on("elderly_alone", policy, **values) is expected


@pytest.mark.parametrize("birth, expected", [("1951-06-30", True), ("1951-07-01", False)])
def test_elderly_alone_from_a_bundle_on_the_75th_birthday(policy, birth, expected):
    b = bundle(members=[member(birth_date=birth, employment="retired")], claims=[],
               income=monthly_income(months_back(AS_OF, 12), 3000, source="pension"))
    f = build_features(tables_from_bundle(b), AS_OF, policy)
    assert ("elderly_alone" in [i["list"] for i in household_lists(f, AS_OF, policy, BOOK)[0]]) is expected


@pytest.mark.parametrize("values, expected", [
    ({"n_children": 1, "n_earners": 0}, True), ({"n_children": 0, "n_earners": 0}, False),
    ({"n_children": 1, "income_12m_per_capita_month": LINE - 0.01}, True),
    ({"n_children": 1, "income_12m_per_capita_month": LINE}, False),
    ({"n_children": 1, "income_12m_per_capita_month": LINE + 0.01}, False),
    ({"n_children": 1, "income_12m_per_capita_month": math.nan}, False)])
def test_children_in_difficulty(policy, values, expected):
    assert on("children_in_difficulty", policy, **values) is expected


@pytest.mark.parametrize("values, expected", [
    ({"n_unemployed": 1, "income_12m_per_capita_month": EDGE - 0.01}, True),
    ({"n_unemployed": 1, "income_12m_per_capita_month": EDGE}, False),
    ({"n_unemployed": 1, "income_12m_per_capita_month": EDGE + 0.01}, False),
    ({"n_unemployed": 0, "income_12m_per_capita_month": 500}, False),
    ({"n_unemployed": 1, "on_dibao": 1}, True)])
def test_unemployed_low_income(policy, values, expected):
    assert on("unemployed_low_income", policy, **values) is expected


@pytest.mark.parametrize("left, expected", [(0, False), (1, True)])
def test_left_assistance(policy, left, expected):
    assert on("left_assistance", policy, left_assistance_12m=left) is expected


@pytest.mark.parametrize("values, expected", [
    ({"oop_12m_to_income": 0.6}, False), ({"oop_12m_to_income": 0.6 + 1e-9}, True),
    ({"oop_12m_to_income": 0.6 - 1e-9}, False),
    ({"oop_12m_to_income": 0.1, "income_after_oop_pc_month": 500}, False),
    ({"oop_12m_to_income": 0.1001, "income_after_oop_pc_month": LINE - 0.01}, True),
    ({"oop_12m_to_income": 0.1001, "income_after_oop_pc_month": LINE}, False),
    ({"oop_12m_to_income": 0.1001, "income_after_oop_pc_month": LINE + 0.01}, False),
    ({"oop_12m_to_income": math.nan, "income_after_oop_pc_month": math.nan}, False)])
def test_medical_burden(policy, values, expected):
    assert on("medical_burden", policy, **values) is expected


def test_medical_burden_cites_the_impoverishing_branch(policy):
    assert why("medical_burden", policy, oop_12m_to_income=0.2, income_after_oop_pc_month=900) == (
        "刚性支出过大：近12个月自付医疗费用占家庭收入比 0.2 > 0.1，扣除自付医疗费用后人均月收入 900 元/人·月 < "
        "低保标准 1,100 元/人·月。")


@pytest.mark.parametrize("n, expected", [(0, False), (1, True), (3, True)])
def test_temporary_assistance(policy, n, expected):
    assert on("temporary_assistance", policy, temporary_assistance_12m=n) is expected


def test_a_household_with_nothing_is_on_no_list(policy):
    assert household_lists(frame({}), AS_OF, policy, BOOK) == [[]]
    assert not list_matrix(frame({}), AS_OF, policy, BOOK).to_numpy().any()


def test_lists_agree_with_todays_rule_baselines(policy):
    f = random_frame(20000, seed=2)
    m = list_matrix(f, AS_OF, policy, BOOK)
    v, r = policy.at(pd.Timestamp(AS_OF).date()), dict(policy.rules)
    assert np.array_equal(m["elderly_alone"], baseline.elderly_alone(f, v, r) >= baseline.FIRED)
    assert np.array_equal(m["unemployed_low_income"], baseline.unemployed_low_income(f, v, r) >= baseline.FIRED)


def test_an_income_nobody_reported_satisfies_no_condition_though_the_models_read_0(policy):
    """Built from bundles: with no income row at all, or none in the last 3 months, the lists, their
    reasons and the rule baselines read the income as before, missing (the features' NaN of old), and
    not as the 0 the features now give the models."""
    months = months_back(AS_OF, 12)
    members = [member("P1", "head", "1940-01-01", employment="retired", disability_grade=3),
               member("P2", "child", "1985-01-01", employment="unemployed"),
               member("P3", "grandchild", "2015-01-01", employment="student")]
    bundles = [bundle("H1", members=members, income=[], claims=[]),
               bundle("H2", members=members, income=monthly_income(months[:9], 4000.0, "P1", "pension"), claims=[])]
    features = pd.concat([build_features(tables_from_bundle(b), AS_OF, policy) for b in bundles])
    assert features["no_income_reported_12m"].tolist() == [1.0, 0.0]
    assert features["no_income_reported_3m"].tolist() == [1.0, 1.0]
    as_of_old = features.copy()
    for fid, flag in UNREPORTED_BY.items():
        as_of_old.loc[features[flag] > 0, fid] = np.nan
    said_as_0 = features.copy()
    said_as_0[["no_income_reported_12m", "no_income_reported_3m"]] = 0.0
    m = list_matrix(features, AS_OF, policy, BOOK)
    pd.testing.assert_frame_equal(m, list_matrix(as_of_old, AS_OF, policy, BOOK))
    assert household_lists(features, AS_OF, policy, BOOK) == household_lists(as_of_old, AS_OF, policy, BOOK)
    assert (m != list_matrix(said_as_0, AS_OF, policy, BOOK)).any(axis=1).all()  # read as 0, both would differ
    v, r = policy.at(pd.Timestamp(AS_OF).date()), dict(policy.rules)
    for rule in (baseline.children_without_earner, baseline.unemployed_low_income, baseline.xian):
        np.testing.assert_array_equal(rule(features, v, r), rule(as_of_old, v, r))


def test_household_lists_and_the_matrix_agree(policy):
    f = random_frame(3000, seed=3)
    m = list_matrix(f, AS_OF, policy, BOOK)
    items = household_lists(f, AS_OF, policy, BOOK)
    assert [[i["list"] for i in row] for row in items] == [list(m.columns[m.iloc[k].to_numpy()])
                                                            for k in range(len(f))]
    version = {d.id: d.version for d in BOOK.at(AS_OF)}
    assert all(i["why"].startswith(i["label"] + "：") and i["version"] == version[i["list"]]
               for row in items for i in row)


def test_an_empty_frame_and_extra_columns(policy):
    assert household_lists(frame({}).iloc[0:0], AS_OF, policy, BOOK) == []
    assert list_matrix(frame({}).iloc[0:0], AS_OF, policy, BOOK).shape == (0, 13)
    f = frame({"n_severe_disabled": 1}).assign(town="tangqiao")
    assert [i["list"] for i in household_lists(f, AS_OF, policy, BOOK)[0]] == ["severe_disability"]


def test_a_missing_feature_column_is_named(policy):
    with pytest.raises(KeyError, match=r"lacks \['head_age'\], needed by list 'elderly_alone'"):
        list_matrix(frame({}).drop(columns="head_age"), AS_OF, policy, BOOK)


def test_list_matrix_is_fast(policy):
    f = random_frame(200_000, seed=4)
    start = time.perf_counter()
    m = list_matrix(f, AS_OF, policy, BOOK)
    assert time.perf_counter() - start < 3.0 and m.shape == (200_000, 13)


# ---- versions by date -----------------------------------------------------------------------------
def test_the_lines_in_force_on_the_date_apply(policy):
    # 1,600 a head: above the 2024 edge line (1.5 × 1,050 = 1,575), below the 2025 one (1,650)
    assert on("low_income_margin", policy, "2024-06-30", income_12m_per_capita_month=1600) is False
    assert on("low_income_margin", policy, "2025-06-30", income_12m_per_capita_month=1600) is True


LATER = """
[[list]]
id = "elderly_alone"
label_zh = "独居、空巢高龄老人"
description_zh = "2027年起户主年满80周岁。"
version = "2027.1"
effective_from = "2027-01-01"
all = [{feature = "elderly_only", op = "==", value = 1}, {feature = "head_age", op = ">=", value = 80}]

[[list]]
id = "new_list"
label_zh = "新清单"
description_zh = "2027年起施行。"
version = "2027.1"
effective_from = "2027-01-01"
all = [{feature = "n_children", op = ">=", value = 3}]

[[list]]
id = "left_assistance"
label_zh = "近期退出救助"
description_zh = "2027年起停用。"
version = "2027.1"
effective_from = "2027-01-01"
active = false
all = [{feature = "left_assistance_12m", op = "==", value = 1}]
"""


@pytest.fixture(scope="module")
def later_book(tmp_path_factory) -> object:
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(policy_file_text() + LATER, encoding="utf-8")
    return load_lists(path)


def test_a_later_version_applies_only_from_its_date(policy, later_book):
    old = later_book.at("2026-12-31")
    new = later_book.at("2027-01-01")
    assert "new_list" not in [d.id for d in old] and "new_list" in [d.id for d in new]
    assert "left_assistance" in [d.id for d in old] and "left_assistance" not in [d.id for d in new]
    assert [d.version for d in old if d.id == "elderly_alone"] == ["2025.1"]
    assert [d.version for d in new if d.id == "elderly_alone"] == ["2027.1"]
    f = frame({"elderly_only": 1, "head_age": 77, "n_children": 3, "left_assistance_12m": 1})
    before = list_matrix(f, "2026-12-31", policy, later_book)
    after = list_matrix(f, "2027-01-01", policy, later_book)
    assert before[["elderly_alone", "left_assistance"]].iloc[0].tolist() == [True, True]
    assert "new_list" not in before.columns
    assert after[["elderly_alone", "new_list"]].iloc[0].tolist() == [False, True]
    assert "left_assistance" not in after.columns
    assert household_lists(f, "2027-01-01", policy, later_book)[0][-1]["version"] == "2027.1"


def test_no_list_before_its_first_version(policy, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(LATER, encoding="utf-8")
    book = load_lists(path)
    assert book.at("2026-12-31") == ()
    assert list_matrix(frame({}), "2026-12-31", policy, book).shape == (1, 0)


# ---- loader errors ------------------------------------------------------------------------------
GOOD = {"id": "bad_list", "label_zh": "测试", "description_zh": "测试", "version": "1",
        "effective_from": "2025-01-01", "all": '[{feature = "n_children", op = ">=", value = 1}]'}


def list_toml(**over: str | None) -> str:
    fields = {**GOOD, **over}
    lines = ["[rules]", "xian_burden_general = 26000", "", "[[list]]"]
    for k, v in fields.items():
        if v is None:
            continue
        lines.append(f"{k} = {v}" if k in ("all", "any", "none", "active") else f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


W = "[[list]] #1 'bad_list'"


@pytest.mark.parametrize("over, message", [
    ({"all": '[{feature = "nope", op = ">=", value = 1}]'},
     f"{W}, field 'all'[0].feature: unknown feature id 'nope' (not in features.catalog)"),
    ({"all": '[{feature = "n_children", op = "=>", value = 1}]'},
     f"{W}, field 'all'[0].op: unknown operator '=>'; use one of ['<', '<=', '>', '>=', '==', '!=']"),
    ({"label_zh": None}, f"{W}: missing field 'label_zh'"),
    ({"effective_from": None}, f"{W}: missing field 'effective_from'"),
    ({"all": '[{feature = "n_children", value = 1}]'}, f"{W}, field 'all'[0]: missing field 'op'"),
    ({"all": '[{feature = "n_children", op = ">="}]'},
     f"{W}, field 'all'[0]: give exactly one threshold: value, param or rule (got none)"),
    ({"all": '[{feature = "n_children", op = ">=", value = 1, param = "dibao_line"}]'},
     f"{W}, field 'all'[0]: give exactly one threshold: value, param or rule (got ['value', 'param'])"),
    ({"all": '[{feature = "n_children", op = ">=", value = "1"}]'},
     f"{W}, field 'all'[0].value: must be a number, got '1'"),
    ({"all": '[{feature = "n_children", op = ">=", param = "dibao"}]'},
     f"{W}, field 'all'[0].param: unknown parameter 'dibao'; known: ['dibao_line', 'edge_line', 'edge_multiple', "
     "'pdi_urban', 'pdi_rural', 'pdi_all', 'rigid_share']"),
    ({"all": '[{feature = "oop_12m", op = ">", rule = "xian"}]'},
     f"{W}, field 'all'[0].rule: unknown rule 'xian'; [rules] has ['xian_burden_general']"),
    ({"all": '[{feature = "n_children", op = ">=", vaule = 1}]'},
     f"{W}, field 'all'[0]: unknown field 'vaule'; allowed: ['feature', 'op', 'param', 'rule', 'times', 'value']"),
    ({"all": '[{helper = "poor"}]'}, f"{W}, field 'all'[0].helper: unknown helper 'poor'; known: ['low_income']"),
    ({"all": '[{any = [{feature = "nope", op = "<", value = 1}]}]'},
     f"{W}, field 'all'[0].any[0].feature: unknown feature id 'nope' (not in features.catalog)"),
    ({"all": "[]"}, f"{W}, field 'all': must be a non-empty array of conditions"),
    ({"all": None}, f"{W}: no conditions: give at least one of 'all', 'any', 'none'"),
    ({"effective_from": "2025-13-01"}, f"{W}, field 'effective_from': not a YYYY-MM-DD date: '2025-13-01'"),
    ({"label": "x"}, f"{W}: unknown field 'label'; allowed: ['active', 'all', 'any', 'description_zh', "
                     "'effective_from', 'id', 'label_zh', 'none', 'version']"),
    ({"id": "低边"}, "[[list]] #1 '低边', field 'id': must be a lower-case ASCII identifier, got '低边'"),
])
def test_bad_list_definitions_are_refused_with_the_list_and_field(tmp_path, over, message):
    path = tmp_path / "p.toml"
    path.write_text(list_toml(**over), encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        load_lists(path)
    assert str(err.value) == message


def test_a_duplicate_version_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(list_toml() + list_toml().split("\n\n", 1)[1], encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"^\[\[list\]\] #2 'bad_list': a second version effective from "
                                              r"2025-01-01$"):
        load_lists(path)


def test_a_file_without_lists_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[rules]\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"^the policy file has no \[\[list\]\]$"):
        load_lists(path)


MEASURE = {"id": "bad_measure", "label_zh": "测试", "description_zh": "建议测试", "version": "1",
           "effective_from": "2025-01-01", "triggers": '[{list = "bad_list"}]', "owner": '"minzheng"',
           "due_days": "30"}
DEPARTMENTS = '[[department]]\nid = "minzheng"\nlabel_zh = "民政"\n'
KINDS = "['list', 'program', 'reason', 'risk', 'need'] (a need trigger also has a level)"
M = "[[measure]] #1 'bad_measure'"


@pytest.mark.parametrize("over, message", [
    ({"triggers": '[{list = "nope"}]'}, f"{M}, field 'triggers'[0].list: unknown list 'nope'"),
    ({"triggers": '[{program = "dibao_maybe"}]'}, f"{M}, field 'triggers'[0].program: unknown program 'dibao_maybe'"),
    ({"triggers": '[{reason = "nope"}]'}, f"{M}, field 'triggers'[0].reason: unknown reason 'nope'"),
    ({"triggers": '[{risk = "not_in_need"}]'}, f"{M}, field 'triggers'[0].risk: unknown risk 'not_in_need'"),
    ({"triggers": '[{feature = "oop_12m"}]'},
     f"{M}, field 'triggers'[0]: a trigger has exactly one key, one of {KINDS}"),
    ({"triggers": '[{list = "bad_list", risk = "illness_poverty"}]'},
     f"{M}, field 'triggers'[0]: a trigger has exactly one key, one of {KINDS}"),
    ({"triggers": None}, f"{M}: missing field 'triggers'"),
    ({"triggers": "[]"}, f"{M}, field 'triggers': must be a non-empty array such as [{{list = \"serious_illness\"}}]"),
    ({"unless": '[{feature = "on_dibao", op = "==", param = "dibao_line"}]'},
     f"{M}, field 'unless'[0].param: only numeric thresholds (value) are allowed here"),
    ({"unless": '[{feature = "on_dibaoo", op = "==", value = 1}]'},
     f"{M}, field 'unless'[0].feature: unknown feature id 'on_dibaoo' (not in features.catalog)"),
    ({"triggers": '[{need = "hosuing", level = 1}]'},
     f"{M}, field 'triggers'[0].need: unknown need domain 'hosuing'; known: ['basic_living', 'medical', 'care', "
     "'education', 'employment', 'housing', 'child_protection', 'social_support']"),
    ({"triggers": '[{need = "housing", level = 0}]'},
     f"{M}, field 'triggers'[0].level: must be a whole number ≥ 1, got 0"),
    ({"triggers": '[{need = "housing"}]'},
     f"{M}, field 'triggers'[0]: a need trigger has exactly the keys need and level, such as "
     '{need = "housing", level = 1}'),
    ({"owner": '"minzhen"'}, f"{M}, field 'owner': unknown department 'minzhen'; known: ['minzheng']"),
    ({"owner": None}, f"{M}: missing field 'owner'"),
    ({"due_days": "0"}, f"{M}, field 'due_days': must be a whole number of days from 1 to 366, got 0"),
    ({"due_days": '"30"'}, f"{M}, field 'due_days': must be a whole number of days from 1 to 366, got '30'"),
])
def test_bad_measure_definitions_are_refused_with_the_measure_and_field(tmp_path, over, message):
    fields = {**MEASURE, **over}
    lines = [list_toml(), DEPARTMENTS, "[[measure]]"] + [
        f"{k} = {v}" if k in ("triggers", "unless", "owner", "due_days") else f'{k} = "{v}"'
        for k, v in fields.items() if v is not None]
    path = tmp_path / "p.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        load_measures(path)
    assert str(err.value) == message


# ---- the warm list ------------------------------------------------------------------------------
LIST_LABELS = {d.id: d.label_zh for d in BOOK.definitions}


def fired_by(kind: str, ident: str) -> tuple[list, list, list | None]:
    """lists, programs and scores in which exactly that trigger fires."""
    if kind == "list":
        return [{"list": ident, "label": LIST_LABELS[ident]}], [], None
    if kind == "program":
        return [], [{"program": ident, "label": PROGRAM_LABELS[ident], "eligible": True, "steps": []}], None
    if kind == "risk":
        return [], [], [{"risk": ident, "flagged": True, "reasons": []}]
    return [], [], [{"risk": "not_a_measure_trigger", "flagged": True,
                     "reasons": [{"feature": ident, "label": "标签", "value": 1.0, "contribution": 0.7}]}]


# need triggers fire only when a plan is drafted with assessed levels: test_need_triggers_*
TRIGGERS = [(m.id, t.kind, t.id) for m in MEASURES.at(AS_OF) for t in m.triggers if t.kind != "need"]


@pytest.mark.parametrize("measure, kind, ident", TRIGGERS, ids=[f"{m}-{k}-{i}" for m, k, i in TRIGGERS])
def test_each_trigger_proposes_its_measure_and_is_cited(measure, kind, ident):
    out = warm_list(*fired_by(kind, ident), MEASURES, as_of=AS_OF)
    item = next(i for i in out if i["measure"] == measure)
    assert {"kind": kind, "id": ident} in [{"kind": p["kind"], "id": p["id"]} for p in item["proposed_by"]]
    assert item["label"] and "建议" in item["detail"] and item["version"] == "2025.1"
    assert all(p["label"] for p in item["proposed_by"])


def test_need_triggers_fire_only_with_needs_at_their_level():
    everything = [{"list": i, "label": x} for i, x in LIST_LABELS.items()]
    without = {i["measure"] for i in warm_list(everything, [], None, MEASURES, as_of=AS_OF)}
    assert not without & {"housing_support", "child_protection", "care_services", "social_support"}
    assert warm_list([], [], None, MEASURES, as_of=AS_OF, needs={}) == []
    out = warm_list([], [], None, MEASURES, as_of=AS_OF, needs={"housing": 1, "medical": 1, "care": 2})
    # medical needs level 2 for 医疗救助; care 2 fires both 居家养老服务 (≥2) and 照护服务 (≥1)
    assert [i["measure"] for i in out] == ["elderly_care", "housing_support", "care_services"]
    assert out[1]["proposed_by"] == [{"kind": "need", "id": "housing", "label": "住房需求（等级≥1）", "level": 1}]
    assert [m.owner for m in MEASURES.at(AS_OF) if m.id == "housing_support"] == ["zhujian"]
    assert MEASURES.department_label("zhujian") == "住建"


def test_what_does_not_fire_proposes_nothing():
    assert warm_list([], [], None, MEASURES) == []
    programs = [{"program": p, "eligible": False, "steps": []} for p in PROGRAM_LABELS]
    scores = [{"risk": "illness_poverty", "flagged": False,
               "reasons": [{"feature": "oop_12m_to_income", "contribution": 2.0}]},
              {"risk": "disability_poverty", "flagged": True,
               "reasons": [{"feature": "n_severe_disabled", "contribution": -0.4}]}]
    assert [i["measure"] for i in warm_list([], programs, scores, MEASURES)] == ["disability_living_subsidy"]


def test_everything_at_once_gives_each_measure_once_in_book_order():
    lists = [{"list": i, "label": x} for i, x in LIST_LABELS.items()]
    programs = [{"program": p, "eligible": True, "steps": []} for p in PROGRAM_LABELS]
    reasons = [{"feature": f, "contribution": 0.1} for f in FEATURE_IDS]
    scores = [{"risk": r, "flagged": True, "reasons": reasons} for r in
              ("illness_poverty", "disability_poverty", "unemployment_poverty", "elderly_care_need",
               "child_in_difficulty")]
    out = warm_list(lists + lists, programs, scores, MEASURES, as_of=AS_OF)
    assert [i["measure"] for i in out] == [m.id for m in MEASURES.at(AS_OF)
                                           if any(t.kind != "need" for t in m.triggers)]
    for item in out:
        cited = [(p["kind"], p["id"]) for p in item["proposed_by"]]
        assert len(cited) == len(set(cited))
    medical = out[0]["proposed_by"]
    assert medical[0] == {"kind": "list", "id": "medical_burden", "label": "刚性支出过大"}
    assert {"kind": "reason", "id": "oop_to_capacity",
            "label": "自付医疗费用占支付能力（收入扣除低保线生活费）比"} in medical


@pytest.mark.parametrize("receiving, proposed", [({}, True), ({"on_dibao": 1.0}, False), ({"on_tekun": 1.0}, False),
                                                 ({"on_dibao_edge": 1.0}, True)])
def test_what_the_household_receives_is_not_proposed_again(receiving, proposed):
    features = frame(receiving).iloc[0]
    out = warm_list(*fired_by("program", "dibao"), MEASURES, features=features)
    assert ("dibao_application" in [i["measure"] for i in out]) is proposed


def test_without_features_the_exclusions_are_not_applied():
    out = warm_list(*fired_by("program", "tekun"), MEASURES)
    assert [i["measure"] for i in out] == ["tekun_support"]


def test_one_household_end_to_end(policy):
    b = bundle(members=[member(), member("P2", "spouse", "1963-05-01", disability_grade=1,
                                         employment="unemployed")],
               income=monthly_income(months_back(AS_OF, 12), 2600),
               claims=[claim(setting="inpatient", diagnosis_group="cancer", fund_paid=40000, out_of_pocket=19000,
                             inpatient_days=12)])
    tables = tables_from_bundle(b)
    f = build_features(tables, AS_OF, policy)
    lists = household_lists(f, AS_OF, policy, BOOK)[0]
    # 19,000 yuan out of pocket in April on 1,300 a head: a sustained burden and a sudden one
    assert [i["list"] for i in lists] == ["low_income_margin", "serious_illness", "severe_disability",
                                          "disabled_low_income", "unemployed_low_income", "medical_burden",
                                          "expenditure_hardship", "sudden_hardship"]
    programs = check_programs(tables, pd.Timestamp(AS_OF).date(), policy, load_eligibility())["programs"]
    scores = [{"risk": "illness_poverty", "flagged": True,
               "reasons": [{"feature": "oop_12m_to_income", "label": "近12个月自付医疗费用占家庭收入比",
                            "value": 0.61, "contribution": 1.9}]}]
    out = warm_list(lists, programs, scores, MEASURES, as_of=AS_OF, features=f.iloc[0])
    assert [i["measure"] for i in out] == [
        "medical_assistance", "critical_illness_insurance", "temporary_assistance", "dibao_edge_application",
        "expenditure_hardship_application", "disability_care_subsidy", "disability_living_subsidy",
        "employment_aid"]
    assert out[0]["proposed_by"][-2:] == [
        {"kind": "risk", "id": "illness_poverty", "label": "因病致贫"},
        {"kind": "reason", "id": "oop_12m_to_income", "label": "近12个月自付医疗费用占家庭收入比"}]


# ---- helpers ------------------------------------------------------------------------------------
def random_frame(n: int, seed: int) -> pd.DataFrame:
    """Plausible feature rows: counts, flags, incomes around the lines, some not reported (0 and the
    indicator, as the features give them)."""
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({fid: rng.random(n) for fid in FEATURE_IDS})
    income = rng.gamma(2.0, 900.0, n)
    unreported = rng.random(n) < 0.05
    income[unreported] = 0.0
    f["income_12m_per_capita_month"] = income
    f["income_pc_to_dibao"] = income / LINE
    f["no_income_reported_12m"] = unreported.astype(float)
    f["no_income_reported_3m"] = (unreported | (rng.random(n) < 0.05)).astype(float)
    for c in ("n_children", "n_earners", "n_unemployed", "n_disabled", "n_severe_disabled",
              "n_members_serious_dx_12m", "temporary_assistance_12m"):
        f[c] = rng.poisson(0.4, n).astype(float)
    for c in ("elderly_only", "on_dibao", "on_dibao_edge", "on_tekun", "on_expenditure_hardship",
              "left_assistance_12m"):
        f[c] = (rng.random(n) < 0.05).astype(float)
    f["head_age"] = rng.integers(20, 95, n).astype(float)
    f["oop_12m_max_person"] = rng.gamma(1.0, 8000.0, n)
    f["oop_12m_to_income"] = np.where(unreported, np.nan, rng.gamma(1.0, 0.2, n))
    f["income_after_oop_pc_month"] = income * (1 - f["oop_12m_to_income"])
    f.index = pd.Index([f"H{i}" for i in range(n)], name="household_id")
    return f


def test_the_test_helpers_cover_every_feature():
    assert set(NEUTRAL) == set(FEATURE_IDS) and set(random_frame(3, 0).columns) == set(FEATURE_IDS)
