"""The policy calculator at the edges of every definition: exactly at the line, a cent above, a
cent below; current recipients excluded where the definition says so."""

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
    base = Facts(n=n, income_12m=None if income_pc_month is None else income_pc_month * n * 12, rigid_12m=0.0,
                 assets_pc=1000.0, properties=1, vehicles=0, rural=True, on=frozenset(), n_unable=0)
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
    assert c.eligible is False and c.steps[-1] == {"label": "车辆", "detail": "1 辆 ≤ 0 辆", "value": None,
                                                   "passed": False}


def test_no_income_reported_is_not_eligible_and_says_why(params):
    c = check_dibao(facts(None), *params)
    assert c.eligible is False and c.steps[0]["detail"] == "近12个月无收入记录：收入未知，需入户核实"


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
    step = check_edge_expenditure(facts(income, rigid_12m=at_line + 0.24), *params).steps[2]
    assert step["label"] == "扣除刚性支出后人均月收入" and step["value"] == pytest.approx(EDGE - 0.01)


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
                                    "eligibility_version": "2024.1"}
