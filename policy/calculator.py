"""Which programmes a household likely qualifies for (docs/policy.md, "Where the figures come from"),
each with the steps of its arithmetic, so a caseworker can check it by hand.

"Likely": the data cannot show everything a definition asks (legal supporters outside the household,
rigid spending other than medical, assets the bank check missed); those steps say so, and a
caseworker's visit decides. Thresholds are strict: income exactly at a line is not below it.
Rigid spending (刚性支出) here is the household's medical out-of-pocket spending over 12 months;
education, rehabilitation and accident costs are not in the platform's data.

Income is the 12 months up to and including the month of T. A month with no income row is not
reported, not a month of zero income: the household's yearly income is the mean of its reported
months × 12, and the steps say so when fewer than 12 months were reported. Every step that tests a
condition shows the relation that actually holds between the household's figure and the line
(``1,500.00 元 ≥ 1,100.00 元``) and its verdict (满足 / 不满足).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.build import build_features, household_cities
from features.known import Known, is_in
from features.labels import PROGRAMS as PROGRAM_NAMES
from features.policy import PolicyBook, PolicyVersion
from features.tables import Tables
from policy.parameters import EligibilityBook, EligibilityVersion
from policy.steps import VERDICT, comparison, yuan

PROGRAM_LABELS = {
    "dibao": "最低生活保障（低保）",
    "dibao_edge_income": "低保边缘（收入型）",
    "dibao_edge_expenditure": "低保边缘（支出型）",
    "expenditure_hardship": "支出型困难家庭",
    "tekun": "特困人员救助供养",
}


@dataclass
class ProgramCheck:
    program: str
    eligible: bool
    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(self, label: str, detail: str, passed: bool | None = None, value: float | None = None) -> bool | None:
        self.steps.append({"label": label, "detail": detail, "value": value, "passed": passed})
        return passed

    def compare(self, label: str, left: float, op: str, right: float, unit: str = "元", *, left_text: str = "",
                right_text: str = "", value: float | None = None) -> bool:
        """A step testing ``left op right`` (:func:`policy.steps.comparison`); returns whether it holds."""
        passed, detail = comparison(left, op, right, unit, left_text, right_text)
        self.step(label, detail, passed, value)
        return passed

    def as_dict(self) -> dict[str, Any]:
        return {"program": self.program, "label": PROGRAM_LABELS[self.program], "eligible": self.eligible,
                "steps": self.steps}


@dataclass(frozen=True)
class Facts:
    """What the definitions need, for one household as of T (money in yuan)."""

    n: int
    income_12m: float | None          # yearly: the reported months' mean × 12; None: none reported in 12 months
    income_months: int                # months of the 12 with an income row (0-12)
    rigid_12m: float
    assets_pc: float
    properties: int
    vehicles: int
    rural: bool
    on: frozenset[str]
    n_unable: int                     # aged ≥ 60 or < 16, or disability grade 1-2

    @property
    def income_pc_month(self) -> float | None:
        return None if self.income_12m is None else self.income_12m / self.n / 12

    @property
    def income_reported(self) -> float | None:
        """The sum of the income rows of the 12 months (the reported months only)."""
        return None if self.income_12m is None else self.income_12m / 12 * self.income_months


def household_facts(tables: Tables, as_of: dt.date, policy: PolicyBook, features: Mapping[str, float] | None = None
                    ) -> Facts:
    """One household's facts. ``features``: its feature row as of ``as_of`` (a Series or a mapping of
    feature id to value) when the caller already built it (the API builds it once for the models,
    the lists and this)."""
    f = build_features(tables, as_of, policy).iloc[0] if features is None else features
    n_unable, rural = household_inputs(tables, as_of)
    return facts_from(f, int(n_unable[0]), bool(rural[0]))


def household_inputs(tables: Tables, as_of: dt.date | str) -> tuple[np.ndarray, np.ndarray]:
    """What the definitions need beyond the features, for every household of ``tables`` in the
    order of :func:`features.build.build_features`' rows (sorted ids): members unable to work
    (aged ≥ 60 or < 16, or disability grade 1-2, among those born by ``as_of``) and a rural hukou."""
    known = Known(tables, pd.Timestamp(as_of).date())
    p = known.persons()
    age = known.ages()
    unable = (age >= 60) | (age < 16) | np.isin(p["disability_grade"], (1, 2))
    n_unable = np.bincount(p["hh"][unable], minlength=known.n)
    return n_unable, is_in(known.household("hukou_type"), "rural")


def facts_from(f: Mapping[str, float], n_unable: int, rural: bool) -> Facts:
    """:class:`Facts` from a household's features (id → value) and :func:`household_inputs`."""
    n = int(f["n_members"])
    # an income nobody reported is unknown here, not the 0 the models read (features.catalog.UNREPORTED_BY)
    inc = math.nan if f["no_income_reported_12m"] > 0 else float(f["income_12m_per_capita_month"])
    months = float(f["income_months_reported_12m"])
    on = frozenset(k.removeprefix("on_") for k in ("on_dibao", "on_dibao_edge", "on_tekun", "on_expenditure_hardship")
                   if f[k] > 0)
    return Facts(n=n, income_12m=None if math.isnan(inc) else inc * n * 12,
                 income_months=0 if math.isnan(months) else int(months), rigid_12m=float(f["oop_12m"]),
                 assets_pc=float(f["financial_assets_per_capita"]), properties=int(f["property_count"]),
                 vehicles=int(f["vehicle_count"]), rural=rural, on=on, n_unable=n_unable)


def _income_known(c: ProgramCheck, x: Facts) -> bool:
    if x.income_12m is None or x.income_reported is None:
        c.step("收入", "近12个月无收入记录：收入未知，需入户核实；核实前按不满足计", False)
        return False
    k = x.income_months
    if k >= 12:
        how = f"近12个月收入合计 {yuan(x.income_reported)}，12 个月均有收入记录：家庭年收入 {yuan(x.income_12m)}"
    else:
        how = (f"近12个月收入合计 {yuan(x.income_reported)}；仅 {k} 个月有收入记录（无记录的月份不按 0 计），"
               f"按月均 {yuan(x.income_reported / k)} × 12 折算为家庭年收入 {yuan(x.income_12m)}")
    c.step("家庭年收入", how, None, x.income_12m)
    c.step("人均月收入", f"家庭年收入 {yuan(x.income_12m)} ÷ {x.n} 人 ÷ 12 月 = {yuan(x.income_pc_month)}", None,
           x.income_pc_month)
    return True


def _assets_ok(c: ProgramCheck, x: Facts, v: PolicyVersion, e: EligibilityVersion) -> bool:
    limit = e.assets_months_of_line * v.dibao_line
    ok_money = c.compare("人均金融资产不超过限额", x.assets_pc, "≤", limit,
                         right_text=f"{e.assets_months_of_line:g} × {yuan(v.dibao_line)} = ", value=x.assets_pc)
    ok_prop = c.compare("房产不超过限额", x.properties, "≤", e.max_properties, "套")
    ok_car = c.compare("车辆不超过限额", x.vehicles, "≤", e.max_vehicles, "辆")
    return ok_money and ok_prop and ok_car


def _not_receiving(c: ProgramCheck, x: Facts, programs: tuple[str, ...]) -> bool:
    now = [p for p in programs if p in x.on]
    names = "、".join(PROGRAM_NAMES.get(p, p) for p in programs)
    if now:
        detail = (f"正在享受{'、'.join(PROGRAM_NAMES.get(p, p) for p in now)}；本项不适用于正在享受{names}的家庭："
                  f"{VERDICT[False]}")
    else:
        detail = f"未享受{names}：{VERDICT[True]}"
    return bool(c.step("未享受本项排除的救助", detail, not now))


def check_dibao(x: Facts, v: PolicyVersion, e: EligibilityVersion) -> ProgramCheck:
    c = ProgramCheck("dibao", False)
    if _income_known(c, x):
        below = c.compare("收入低于低保标准", x.income_pc_month, "<", v.dibao_line)
        c.eligible = bool(_assets_ok(c, x, v, e) and below)
    return c


def check_edge_income(x: Facts, v: PolicyVersion, e: EligibilityVersion) -> ProgramCheck:
    c = ProgramCheck("dibao_edge_income", False)
    free = _not_receiving(c, x, ("dibao", "tekun"))
    if _income_known(c, x):
        below = c.compare("收入低于低保边缘标准", x.income_pc_month, "<", v.edge_line,
                          right_text=f"{v.edge_multiple:g} × {yuan(v.dibao_line)} = ")
        above = c.compare("不低于低保标准（否则应纳入低保）", x.income_pc_month, "≥", v.dibao_line)
        c.eligible = bool(_assets_ok(c, x, v, e) and free and below and above)
    return c


def _after_rigid(c: ProgramCheck, x: Facts) -> float:
    assert x.income_12m is not None
    after = (x.income_12m - x.rigid_12m) / x.n / 12
    c.step("扣除刚性支出后人均月收入", f"(家庭年收入 {yuan(x.income_12m)} − 近12个月自付医疗费用 "
           f"{yuan(x.rigid_12m)}) ÷ {x.n} 人 ÷ 12 月 = {yuan(after)}", None, after)
    return after


def check_edge_expenditure(x: Facts, v: PolicyVersion, e: EligibilityVersion) -> ProgramCheck:
    c = ProgramCheck("dibao_edge_expenditure", False)
    free = _not_receiving(c, x, ("dibao", "tekun"))
    if _income_known(c, x):
        after = _after_rigid(c, x)
        below = c.compare("扣除刚性支出后低于低保边缘标准", after, "<", v.edge_line,
                          right_text=f"{v.edge_multiple:g} × {yuan(v.dibao_line)} = ")
        c.eligible = bool(_assets_ok(c, x, v, e) and free and below)
    return c


def check_expenditure_hardship(x: Facts, v: PolicyVersion, e: EligibilityVersion) -> ProgramCheck:
    c = ProgramCheck("expenditure_hardship", False)
    free = _not_receiving(c, x, ("dibao", "tekun", "dibao_edge"))
    if _income_known(c, x):
        assert x.income_12m is not None
        pdi = v.pdi_rural if x.rural else v.pdi_urban
        under_pdi = c.compare("人均年收入低于上年当地居民人均可支配收入", x.income_12m / x.n, "<", pdi,
                              left_text=f"家庭年收入 {yuan(x.income_12m)} ÷ {x.n} 人 = ",
                              right_text=f"上年{'农村' if x.rural else '城镇'}居民人均可支配收入 ")
        label = "刚性支出占家庭收入比例超过认定比例"
        if x.income_12m > 0:
            high_share = c.compare(label, x.rigid_12m / x.income_12m, ">", v.rigid_share, "%",
                                   left_text=f"近12个月自付医疗费用 {yuan(x.rigid_12m)} ÷ 家庭年收入 "
                                             f"{yuan(x.income_12m)} = ")
        else:  # nothing to divide by: any spending is beyond a share of no income
            high_share = bool(c.step(label, f"家庭年收入为 0 元，比例无从计算，按超过 {v.rigid_share:.0%} 计："
                                            f"{VERDICT[True]}", True))
        after = _after_rigid(c, x)
        times = e.expenditure_older_multiple
        low_after = c.compare(f"或：扣除刚性支出后人均月收入低于 {times:g} 倍低保标准", after, "<",
                              times * v.dibao_line, right_text=f"{times:g} × {yuan(v.dibao_line)} = ")
        c.step("认定期限", "认定有效期最长12个月", None)
        c.eligible = bool(free and under_pdi and (high_share or low_after))
    return c


def check_tekun(x: Facts, v: PolicyVersion, e: EligibilityVersion) -> ProgramCheck:
    c = ProgramCheck("tekun", False)
    unable = x.n_unable == x.n
    c.step("全部成员无劳动能力", f"{x.n} 名成员中 {x.n_unable} 名年满60周岁、未满16周岁或重度残疾（一、二级），"
           f"需全部成员如此：{VERDICT[unable]}", unable)
    poor = False
    if _income_known(c, x):
        poor = c.compare("无生活来源（人均月收入低于低保标准）", x.income_pc_month, "<", v.dibao_line)
    c.step("无法定赡养、抚养、扶养义务人或其无履行能力", "户外义务人不在平台数据中：需入户核实", None)
    c.eligible = bool(unable and poor)
    return c


CHECKS = (check_dibao, check_edge_income, check_edge_expenditure, check_expenditure_hardship, check_tekun)


def check_programs(tables: Tables, as_of: dt.date, policy: PolicyBook, eligibility: EligibilityBook,
                   features: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The calculator's answer for one household: every programme with its steps, and the
    parameter versions used: those in force on ``as_of`` in the household's own city (its ``city``,
    else its town's; :func:`features.build.household_cities`)."""
    city = str(household_cities(tables, policy)[0])
    return programs_for(household_facts(tables, as_of, policy, features), as_of, policy, eligibility, city)


def programs_for(x: Facts, as_of: dt.date, policy: PolicyBook, eligibility: EligibilityBook,
                 city: str | None = None) -> dict[str, Any]:
    """:func:`check_programs` from the household's :class:`Facts`, judged by the parameters of
    ``city`` (None: the home city) in force on ``as_of``; the eligibility limits are one set for all
    cities (the asset limit is a number of months of the city's own line)."""
    v, e = policy.at(as_of, city), eligibility.at(as_of)
    return {"programs": [check(x, v, e).as_dict() for check in CHECKS],
            "parameters": {"version": v.version, "effective_from": v.effective_from.isoformat(),
                           "eligibility_version": e.version, "city": v.city,
                           "city_name": policy.city(v.city).name_zh, "dibao_standard_monthly": v.dibao_line}}
