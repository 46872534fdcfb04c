"""The three lists added in 2026 (支出型困难, 经济困难高龄老人, 突发变故), each catching a household built
for it through the real feature path and not its twin, and every definition rendered as Chinese text
with the thresholds in force, without any household."""

from __future__ import annotations

import dataclasses

import pytest

from features.io import load_policy_book
from policy.lists import definition_text, describe_lists, household_lists, lists_in_force, load_lists
from tests.factories import AS_OF, assistance_row, bundle, claim, features_of, member, monthly_income, months_back

BOOK = load_lists()
MONTHS = months_back(AS_OF, 12)  # 2025-07 .. 2026-06; the last three are 2026-04 .. 2026-06


def lists_of(b, policy) -> list[str]:
    f = features_of(b, policy).to_frame().T
    return [i["list"] for i in household_lists(f, AS_OF, policy, BOOK)[0]]


def pair(earner: float, pensioner: float = 0.0) -> dict:
    """Two members' income rows: the head's pension, the spouse's wage, every month."""
    rows = monthly_income(MONTHS, earner, person_id="P2") if earner else []
    return rows + (monthly_income(MONTHS, pensioner, source="pension") if pensioner else [])


SPOUSE = member("P2", "spouse", "1985-02-01", employment="employed")


# ---- 支出型困难 ------------------------------------------------------------------------------------
def spender(out_of_pocket: float, **over) -> dict:
    # 2,000 a head (4,000 a month for two): capacity 48,000 − 26,400 = 21,600 a year; the claim is
    # older than three months, so the sudden-hardship list stays out of it
    return bundle(members=[member(), SPOUSE], income=pair(4000),
                  claims=[claim(service_date="2025-12-10", out_of_pocket=out_of_pocket)], **over)


def test_expenditure_hardship_catches_spending_beyond_capacity_not_its_twin(policy):
    # 10,000: 46% of the capacity, 1,583 a head left (< the 低边 line 1,650, > the 低保 line 1,100)
    assert "expenditure_hardship" in lists_of(spender(10000), policy)
    # the sustained-burden list does not see it: 21% of income, and more than the 低保 line left
    assert "medical_burden" not in lists_of(spender(10000), policy)
    # the twin spent 8,000: 37% of the capacity
    assert "expenditure_hardship" not in lists_of(spender(8000), policy)
    # the twin on 低保 is covered by it already
    assert "expenditure_hardship" not in lists_of(spender(10000, assistance=[assistance_row("dibao")]), policy)


def test_expenditure_hardship_catches_who_receives_that_assistance_not_who_left_it(policy):
    on = bundle(members=[member(), SPOUSE], income=pair(4000), claims=[],
                assistance=[assistance_row("expenditure_hardship", "2026-01-01", None, 500)])
    ended = bundle(members=[member(), SPOUSE], income=pair(4000), claims=[],
                   assistance=[assistance_row("expenditure_hardship", "2025-01-01", "2025-12-31", 500)])
    assert "expenditure_hardship" in lists_of(on, policy)
    assert "expenditure_hardship" not in lists_of(ended, policy)
    assert "left_assistance" in lists_of(ended, policy)


# ---- 经济困难高龄老人 -------------------------------------------------------------------------------
def elder(birth: str, wage: float) -> dict:
    # an old parent living with a working son: not an elderly-only household
    son = member("P2", "child", "1975-06-01", employment="employed")
    return bundle(members=[member(birth_date=birth, employment="retired"), son], income=pair(wage), claims=[])


def test_very_old_catches_an_80_year_old_in_a_low_income_family_not_its_twins(policy):
    assert "very_old" in lists_of(elder("1945-06-30", 1500), policy)  # 81 today, 750 a head
    assert "elderly_alone" not in lists_of(elder("1945-06-30", 1500), policy)  # lives with the son
    assert "very_old" not in lists_of(elder("1946-07-01", 1500), policy)  # 79
    assert "very_old" not in lists_of(elder("1945-06-30", 6000), policy)  # 3,000 a head


# ---- 突发变故 -------------------------------------------------------------------------------------
def dropped_to(recent: float) -> dict:
    income = [{"person_id": "P2", "month": m, "source": "wage", "amount": 6000.0 if k < 9 else recent}
              for k, m in enumerate(MONTHS)]
    return bundle(members=[member(), SPOUSE], income=income, claims=[])


def test_sudden_hardship_catches_an_income_drop_not_a_smaller_one(policy):
    assert "sudden_hardship" in lists_of(dropped_to(1500), policy)  # a quarter; 750 a head
    assert "sudden_hardship" not in lists_of(dropped_to(4000), policy)  # two thirds


def wage_stopped(spouse_birth: str) -> dict:
    # the head's pension of 4,000 keeps 2,000 a head: no income drop below the 低边 line
    income = pair(0, pensioner=4000) + [{"person_id": "P2", "month": m, "source": "wage", "amount": 5000.0}
                                        for m in MONTHS[:9]]
    spouse = member("P2", "spouse", spouse_birth, employment="unemployed")
    return bundle(members=[member(), spouse], income=income, claims=[])


def test_sudden_hardship_catches_lost_wages_not_a_retirement(policy):
    assert "sudden_hardship" in lists_of(wage_stopped("1985-02-01"), policy)
    # the twin's spouse is 62: an elderly-only household whose wages stopped has most likely retired
    assert "sudden_hardship" not in lists_of(wage_stopped("1964-02-01"), policy)
    kept = bundle(members=[member(), SPOUSE], income=pair(5000, pensioner=4000), claims=[])
    assert "sudden_hardship" not in lists_of(kept, policy)


def test_sudden_hardship_catches_a_recent_medical_cost_not_an_older_one(policy):
    def treated(day: str) -> dict:
        return bundle(members=[member(), SPOUSE], income=pair(4000),
                      claims=[claim(service_date=day, out_of_pocket=12000)])
    assert "sudden_hardship" in lists_of(treated("2026-05-10"), policy)
    assert "sudden_hardship" not in lists_of(treated("2025-12-10"), policy)


# ---- the definitions as text ----------------------------------------------------------------------
def test_every_list_in_force_is_described_with_its_thresholds(policy):
    listed = lists_in_force(AS_OF, policy, BOOK)
    assert [x["list"] for x in listed] == [d.id for d in BOOK.at(AS_OF)] and len(listed) == 13
    assert all(set(x) == {"list", "label", "description", "version", "effective_from", "definition"}
               for x in listed)
    by_id = {x["list"]: x for x in listed}
    assert by_id["low_income_margin"]["definition"] == (
        "近12个月家庭人均月收入 ≥ 低保标准（1,100 元/人·月），且近12个月家庭人均月收入 < 低保边缘标准"
        "（1,650 元/人·月）；不包括：正在享受低保，或正在享受特困供养")
    assert by_id["serious_illness"]["definition"] == (
        "满足其一：近12个月患重大疾病成员数 ≥ 1 人；或近12个月成员个人最高自付医疗费用 > "
        "一般人群个人自付预警线（西安规则，26,000 元）")
    assert by_id["very_old"] | {"description": ""} == {
        "list": "very_old", "label": "经济困难高龄老人", "description": "", "version": "2026.1",
        "effective_from": "2026-01-01",
        "definition": "80岁及以上成员数 ≥ 1 人，且低收入人口（正在享受低保、低保边缘、特困供养、支出型困难救助，"
                      "或近12个月家庭人均月收入 < 低保边缘标准（1,650 元/人·月））"}
    sudden = by_id["sudden_hardship"]["definition"]
    assert sudden.startswith("满足其一：近3个月收入与此前9个月月均之比 < 0.5，且")
    assert "，且并非仅有60岁及以上老人居住；或" in sudden
    assert sudden.endswith("近3个月自付医疗费用 > 10,000 元，且近12个月家庭人均月收入 < "
                           "低保边缘标准的 2 倍（3,300 元/人·月）")
    assert "灾难性医疗支出占支付能力比例（WHO，0.4）" in by_id["expenditure_hardship"]["definition"]


def test_the_thresholds_come_from_the_parameters_given():
    policy = load_policy_book()
    d = next(x for x in BOOK.at(AS_OF) if x.id == "low_income_margin")
    rules = {**BOOK.rules, **policy.rules}
    older = policy.at(policy.versions[0].effective_from)  # 低保 1,050, 低边 1.5 × 1,050
    assert "低保标准（1,050 元/人·月）" in definition_text(d, older, rules)
    assert "低保边缘标准（1,575 元/人·月）" in definition_text(d, older, rules)
    other_city = dataclasses.replace(older, dibao_line=1000, edge_multiple=1.6)
    assert describe_lists((d,), other_city, rules)[0]["definition"].endswith(
        "低保边缘标准（1,600 元/人·月）；不包括：正在享受低保，或正在享受特困供养")


def test_lists_by_date_and_before_any_parameters():
    policy = load_policy_book()
    assert len(lists_in_force("2025-12-31", policy, BOOK)) == 10
    assert "低保标准（1,050 元/人·月）" in lists_in_force("2024-06-30", policy, BOOK)[0]["definition"]
    with pytest.raises(ValueError, match="no policy parameters in force on 1999-12-31"):
        lists_in_force("1999-12-31", policy, BOOK)
