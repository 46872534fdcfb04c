"""The policy calculator at the edges of every definition: exactly at the line, a cent above, a
cent below; current recipients excluded where the definition says so. Every step that tests a
condition states the relation that holds and its verdict; income reported for fewer than 12 months
says how it was made a year's."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from policy.calculator import (
    Facts,
    check_dibao,
    check_edge_expenditure,
    check_edge_income,
    check_expenditure_hardship,
    check_programs,
    check_tekun,
)
from policy.parameters import load_eligibility

AS_OF = dt.date(2026, 6, 30)
LINE = 1100.0   # 2025.1: 低保 line
EDGE = 1650.0   # 1.5 × line


@pytest.fixture(scope="module")
def params(policy):
    return policy.at(AS_OF), load_eligibility().at(AS_OF)


def facts(income_pc_month: float | None = 1000.0, n: int = 2, **kw) -> Facts:
    base = Facts(n=n, income_12m=None if income_pc_month is None else income_pc_month * n * 12,
                 income_months=0 if income_pc_month is None else 12, rigid_12m=0.0, assets_pc=1000.0, properties=1,
                 vehicles=0, rural=True, on=frozenset(), n_unable=0)
    return dataclasses.replace(base, **kw)


@pytest.mark.parametrize("income, eligible", [(LINE - 0.01, True), (LINE, False), (LINE + 0.01, False)])
def test_dibao_at_the_line(params, income, eligible):
    assert check_dibao(facts(income), *params).eligible is eligible


def test_dibao_asset_limits(params):
    limit = 24 * LINE
    assert check_dibao(facts(900, assets_pc=limit), *params).eligible is True
    assert check_dibao(facts(900, assets_pc=limit + 0.01), *params).eligible is False
    assert check_dibao(facts(900, properties=2), *params).eligible is False
    c = check_dibao(facts(900, vehicles=1), *params)
    assert c.eligible is False and c.steps[-1] == {"label": "车辆不超过限额", "detail": "1 辆 > 0 辆：不满足",
                                                   "value": None, "passed": False}


def test_no_income_reported_is_not_eligible_and_says_why(params):
    c = check_dibao(facts(None), *params)
    assert c.eligible is False and c.steps[0] == {"label": "收入", "value": None, "passed": False,
                                                  "detail": "近12个月无收入记录：收入未知，需入户核实；"
                                                            "核实前按不满足计"}


@pytest.mark.parametrize("income, eligible", [(LINE - 0.01, False), (LINE, True), (EDGE - 0.01, True),
                                              (EDGE, False), (EDGE + 0.01, False)])
def test_edge_income_between_the_lines(params, income, eligible):
    assert check_edge_income(facts(income), *params).eligible is eligible


@pytest.mark.parametrize("on", ["dibao", "tekun"])
def test_edge_excludes_current_dibao_and_tekun_recipients(params, on):
    assert check_edge_income(facts(1500, on=frozenset({on})), *params).eligible is False
    assert check_edge_expenditure(facts(1500, on=frozenset({on})), *params).eligible is False
    assert check_edge_income(facts(1500, on=frozenset({"temporary"})), *params).eligible is True


def test_edge_expenditure_after_rigid_spending(params):
    n, income = 2, 3000.0
    at_line = (income - EDGE) * n * 12  # rigid spending that leaves exactly the edge line
    assert check_edge_expenditure(facts(income, rigid_12m=at_line), *params).eligible is False
    assert check_edge_expenditure(facts(income, rigid_12m=at_line + 0.24), *params).eligible is True
    assert check_edge_expenditure(facts(income, rigid_12m=at_line - 0.24), *params).eligible is False
    steps = check_edge_expenditure(facts(income, rigid_12m=at_line + 0.24), *params).steps
    step = next(s for s in steps if s["label"] == "扣除刚性支出后人均月收入")
    assert step["value"] == pytest.approx(EDGE - 0.01)
    assert next(s for s in steps if s["label"] == "扣除刚性支出后低于低保边缘标准")["detail"] == (
        "1,649.99 元 < 1.5 × 1,100.00 元 = 1,650.00 元：满足")


def test_expenditure_hardship_share_of_income(params):
    income = 6000.0   # urban, below the urban PDI (7,220 a month); 40% of it left is still above 2 × line
    yearly = income * 2 * 12
    at_share = 0.6 * yearly
    assert check_expenditure_hardship(facts(income, rigid_12m=at_share, rural=False), *params).eligible is False
    assert check_expenditure_hardship(facts(income, rigid_12m=at_share + 0.01, rural=False), *params).eligible is True


def test_expenditure_hardship_older_wording(params):
    income = 2500.0          # 60,000 a year for 2; 2 × line = 2,200 a month
    leaves_floor = (income - 2 * LINE) * 2 * 12   # 7,200: 12% of income, far below the 60% share
    assert check_expenditure_hardship(facts(income, rigid_12m=leaves_floor), *params).eligible is False
    assert check_expenditure_hardship(facts(income, rigid_12m=leaves_floor + 0.24), *params).eligible is True


def test_expenditure_hardship_income_ceiling_and_exclusions(params, policy):
    pdi = policy.at(AS_OF).pdi_rural
    rich = pdi / 12              # exactly the rural PDI per person: not below it
    spend = 0.7 * rich * 2 * 12
    assert check_expenditure_hardship(facts(rich, rigid_12m=spend), *params).eligible is False
    assert check_expenditure_hardship(facts(rich - 0.01, rigid_12m=spend), *params).eligible is True
    assert check_expenditure_hardship(facts(rich - 0.01, rigid_12m=spend, rural=False), *params).eligible is True
    for on in ("dibao", "tekun", "dibao_edge"):
        c = check_expenditure_hardship(facts(1000, rigid_12m=20000, on=frozenset({on})), *params)
        assert c.eligible is False and c.steps[0]["passed"] is False


def test_tekun_needs_everyone_unable_to_work_and_no_livelihood(params):
    assert check_tekun(facts(LINE - 0.01, n=1, n_unable=1), *params).eligible is True
    assert check_tekun(facts(LINE, n=1, n_unable=1), *params).eligible is False
    assert check_tekun(facts(500, n=2, n_unable=1), *params).eligible is False
    c = check_tekun(facts(500, n=1, n_unable=1), *params)
    assert c.steps[-1]["passed"] is None and "需入户核实" in c.steps[-1]["detail"]


def test_check_programs_from_a_bundle(policy):
    from domain.bundle import CONTRACT_EXAMPLE
    from features.tables import tables_from_bundle

    answer = check_programs(tables_from_bundle(CONTRACT_EXAMPLE), AS_OF, policy, load_eligibility())
    assert [p["program"] for p in answer["programs"]] == ["dibao", "dibao_edge_income", "dibao_edge_expenditure",
                                                          "expenditure_hardship", "tekun"]
    assert answer["parameters"] == {"version": "2025.1", "effective_from": "2025-01-01",
                                    "eligibility_version": "2024.1", "city": "zhangjiagang",
                                    "city_name": "张家港市", "dibao_standard_monthly": 1100.0}


def test_a_bundle_with_no_income_row_has_an_unknown_income_not_the_models_0(policy):
    """The features give such a household income 0 and ``no_income_reported_12m`` 1; the calculator
    reads the indicator: a visit must find the income, and no programme that needs it is likely."""
    from features.tables import tables_from_bundle
    from tests.factories import bundle, features_of

    b = bundle(income=[], claims=[], financial_assets=0)
    f = features_of(b, policy, str(AS_OF))
    assert (f["no_income_reported_12m"], f["income_12m_per_capita_month"]) == (1.0, 0.0)
    answer = check_programs(tables_from_bundle(b), AS_OF, policy, load_eligibility())
    unknown = {"label": "收入", "value": None, "passed": False,
               "detail": "近12个月无收入记录：收入未知，需入户核实；核实前按不满足计"}
    for p in answer["programs"]:
        assert p["eligible"] is False and unknown in p["steps"], p


# ---- what each step says ----------------------------------------------------------------------------
def step(c, label: str) -> dict:
    return next(s for s in c.steps if s["label"] == label)


def test_a_failed_step_states_the_relation_that_holds(params):
    c = check_dibao(facts(1500), *params)
    assert step(c, "收入低于低保标准") == {"label": "收入低于低保标准", "detail": "1,500.00 元 ≥ 1,100.00 元：不满足",
                                          "value": None, "passed": False}
    assert step(check_dibao(facts(1000), *params), "收入低于低保标准")["detail"] == "1,000.00 元 < 1,100.00 元：满足"
    assert step(check_dibao(facts(LINE), *params), "收入低于低保标准")["detail"] == "1,100.00 元 ≥ 1,100.00 元：不满足"


def test_figures_that_round_alike_are_shown_with_more_decimals(params):
    c = check_dibao(facts(LINE - 0.004), *params)
    assert step(c, "收入低于低保标准")["detail"] == "1,099.996 元 < 1,100.000 元：满足"


def test_every_comparison_of_every_programme_states_its_relation_and_verdict(params):
    """Each kind of step, failing and passing: money against a line, a count against a limit, a share
    against a share, members unable to work."""
    rich = _steps(facts(2000, n=2, assets_pc=30000.0, properties=2, vehicles=1, rigid_12m=1000.0, rural=False),
                  params)
    assert rich[("dibao", "人均金融资产不超过限额")] == (
        "30,000.00 元 > 24 × 1,100.00 元 = 26,400.00 元：不满足", False)
    assert rich[("dibao", "房产不超过限额")] == ("2 套 > 1 套：不满足", False)
    assert rich[("dibao_edge_income", "收入低于低保边缘标准")] == (
        "2,000.00 元 ≥ 1.5 × 1,100.00 元 = 1,650.00 元：不满足", False)
    assert rich[("dibao_edge_income", "不低于低保标准（否则应纳入低保）")] == ("2,000.00 元 ≥ 1,100.00 元：满足", True)
    assert rich[("expenditure_hardship", "刚性支出占家庭收入比例超过认定比例")] == (
        "近12个月自付医疗费用 1,000.00 元 ÷ 家庭年收入 48,000.00 元 = 2.1% ≤ 60.0%：不满足", False)
    assert rich[("expenditure_hardship", "或：扣除刚性支出后人均月收入低于 2 倍低保标准")] == (
        "1,958.33 元 < 2 × 1,100.00 元 = 2,200.00 元：满足", True)
    assert rich[("tekun", "全部成员无劳动能力")] == (
        "2 名成员中 0 名年满60周岁、未满16周岁或重度残疾（一、二级），需全部成员如此：不满足", False)
    poor = _steps(facts(500, n=1, n_unable=1, rigid_12m=9000.0, properties=0), params)
    assert poor[("dibao", "房产不超过限额")] == ("0 套 ≤ 1 套：满足", True)
    assert poor[("expenditure_hardship", "人均年收入低于上年当地居民人均可支配收入")] == (
        "家庭年收入 6,000.00 元 ÷ 1 人 = 6,000.00 元 < 上年农村居民人均可支配收入 48,946.00 元：满足", True)
    assert poor[("expenditure_hardship", "刚性支出占家庭收入比例超过认定比例")] == (
        "近12个月自付医疗费用 9,000.00 元 ÷ 家庭年收入 6,000.00 元 = 150.0% > 60.0%：满足", True)
    assert poor[("tekun", "全部成员无劳动能力")] == (
        "1 名成员中 1 名年满60周岁、未满16周岁或重度残疾（一、二级），需全部成员如此：满足", True)
    assert poor[("tekun", "无生活来源（人均月收入低于低保标准）")] == ("500.00 元 < 1,100.00 元：满足", True)
    for (_, label), (detail, passed) in (rich | poor).items():
        assert detail.endswith("：满足" if passed else "：不满足"), (label, detail)


def test_receiving_assistance_is_named_in_chinese(params):
    c = check_edge_income(facts(1500, on=frozenset({"dibao"})), *params)
    assert c.steps[0] == {"label": "未享受本项排除的救助", "value": None, "passed": False,
                          "detail": "正在享受低保；本项不适用于正在享受低保、特困的家庭：不满足"}
    free = check_expenditure_hardship(facts(1500), *params).steps[0]
    assert free["detail"] == "未享受低保、特困、低保边缘：满足" and free["passed"] is True


def test_income_for_all_twelve_months_is_a_sum(params):
    c = check_dibao(facts(1000, n=2), *params)
    assert c.steps[:2] == [
        {"label": "家庭年收入", "detail": "近12个月收入合计 24,000.00 元，12 个月均有收入记录：家庭年收入 24,000.00 元",
         "value": 24000.0, "passed": None},
        {"label": "人均月收入", "detail": "家庭年收入 24,000.00 元 ÷ 2 人 ÷ 12 月 = 1,000.00 元", "value": 1000.0,
         "passed": None}]


def test_one_month_of_income_says_it_was_annualised(policy):
    """The contract's example: one member, 1,500 yuan of income in one month of the 12."""
    from domain.bundle import CONTRACT_EXAMPLE
    from features.tables import tables_from_bundle

    answer = check_programs(tables_from_bundle(CONTRACT_EXAMPLE), AS_OF, policy, load_eligibility())
    dibao = answer["programs"][0]
    assert [s["detail"] for s in dibao["steps"][:3]] == [
        "近12个月收入合计 1,500.00 元；仅 1 个月有收入记录（无记录的月份不按 0 计），按月均 1,500.00 元 × 12 折算为"
        "家庭年收入 18,000.00 元",
        "家庭年收入 18,000.00 元 ÷ 1 人 ÷ 12 月 = 1,500.00 元",
        "1,500.00 元 ≥ 1,100.00 元：不满足"]
    for p in answer["programs"]:  # every programme that uses income says how it was counted
        assert any("仅 1 个月有收入记录" in s["detail"] for s in p["steps"]), p["program"]


def _steps(f: Facts, params) -> dict[tuple[str, str], tuple[str, bool]]:
    """(programme, step label) → (detail, passed) of every step that tests a condition."""
    checks = (check_dibao, check_edge_income, check_edge_expenditure, check_expenditure_hardship, check_tekun)
    return {(c.program, s["label"]): (s["detail"], s["passed"]) for c in (check(f, *params) for check in checks)
            for s in c.steps if s["passed"] is not None}


def test_no_income_at_all_cannot_be_divided_by_and_says_so(params):
    c = check_expenditure_hardship(facts(0.0, rigid_12m=100.0), *params)
    assert step(c, "刚性支出占家庭收入比例超过认定比例") == {
        "label": "刚性支出占家庭收入比例超过认定比例", "value": None, "passed": True,
        "detail": "家庭年收入为 0 元，比例无从计算，按超过 60% 计：满足"}
