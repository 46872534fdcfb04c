"""What each feature is: the ASCII id, its Chinese label, unit, range and the direction policy expects.

This is data, not code: ``models.schema`` freezes it into the schema that is logged with every model
and validated on the training and serving paths; the explanation reasons take their labels from
here. ``direction`` is +1 where policy says more of it never lowers risk (more out-of-pocket
spending), -1 where more of it never raises risk (more income), 0 where policy says nothing; each
risk adds its own directions where policy says nothing (``RISK_DIRECTIONS``) and may leave features
out (``RISK_EXCLUDED``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    id: str
    label_zh: str
    unit: str  # "元", "元/人·月", "人", "天", "次", "岁", "月", "比值", "是否"
    minimum: float
    maximum: float
    direction: int = 0
    group: str = ""


INF = float("inf")

FEATURES: tuple[FeatureSpec, ...] = (
    # composition (features/household.py)
    FeatureSpec("n_members", "家庭人口数", "人", 1, 50, 0, "household"),
    FeatureSpec("n_elderly", "60岁及以上成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("n_children", "16岁以下成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("dependency_ratio", "老人和儿童占家庭人口比例", "比值", 0, 1, 0, "household"),
    FeatureSpec("head_age", "户主年龄", "岁", 0, 150, 0, "household"),
    FeatureSpec("n_earners", "在业成员数（受雇、自营、务农）", "人", 0, 50, 0, "household"),
    FeatureSpec("n_unemployed", "失业成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("n_working_age_not_working", "劳动年龄（16-59岁）未就业成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("n_disabled", "残疾成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("n_severe_disabled", "重度残疾（一、二级）成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("elderly_only", "仅有60岁及以上老人居住", "是否", 0, 1, 0, "household"),
    FeatureSpec("n_elderly_80plus", "80岁及以上成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("oldest_age", "家庭成员最高年龄", "岁", 0, 150, 0, "household"),
    FeatureSpec("lives_alone_elderly", "60岁及以上老人独居", "是否", 0, 1, 0, "household"),
    FeatureSpec("n_minors", "未成年（18岁以下）成员数", "人", 0, 50, 0, "household"),
    FeatureSpec("n_minors_no_earner", "无在业成员家庭的未成年（18岁以下）成员数", "人", 0, 50, 0, "household"),
    # assets (features/household.py)
    FeatureSpec("financial_assets_per_capita", "人均金融资产", "元", 0, INF, -1, "assets"),
    FeatureSpec("property_count", "登记房产数", "套", 0, INF, -1, "assets"),
    FeatureSpec("vehicle_count", "登记车辆数", "辆", 0, INF, -1, "assets"),
    FeatureSpec("housing_owned", "自有住房", "是否", 0, 1, 0, "assets"),
    # income (features/income.py)
    FeatureSpec("income_12m_per_capita_month", "近12个月家庭人均月收入", "元/人·月", 0, INF, -1, "income"),
    FeatureSpec("income_months_reported_12m", "近12个月有收入记录的月数", "月", 0, 12, 0, "income"),
    # Nothing reported in the window: its income amounts are then 0 (UNREPORTED_BY, below). Policy's
    # direction follows income's: 0 is the least income there is, so saying so never lowers risk.
    FeatureSpec("no_income_reported_12m", "近12个月无任何收入记录", "是否", 0, 1, 1, "income"),
    FeatureSpec("no_income_reported_3m", "近3个月无任何收入记录", "是否", 0, 1, 1, "income"),
    FeatureSpec("income_trend_3m", "近3个月收入与此前9个月月均之比", "比值", 0, INF, -1, "income"),
    FeatureSpec("wage_share_12m", "近12个月工资性收入占比", "比值", 0, 1, 0, "income"),
    FeatureSpec("income_pc_to_dibao", "人均月收入与低保标准之比", "比值", 0, INF, -1, "income"),
    FeatureSpec("income_3m_per_capita_month", "近3个月家庭人均月收入", "元/人·月", 0, INF, -1, "income"),
    FeatureSpec("n_working_age_work_income_3m", "近3个月有劳动收入（工资、经营、农业）的16-59岁成员数", "人", 0, 50, 0,
                "income"),
    FeatureSpec("n_unemployment_benefit_3m", "近3个月领取失业保险金的成员数", "人", 0, 50, 0, "income"),
    FeatureSpec("n_wage_stopped_3m", "此前9个月有工资、近3个月停发工资的成员数", "人", 0, 50, 0, "income"),
    # medical spending (features/spending.py)
    FeatureSpec("oop_3m", "近3个月自付医疗费用", "元", 0, INF, 1, "medical"),
    FeatureSpec("oop_6m", "近6个月自付医疗费用", "元", 0, INF, 1, "medical"),
    FeatureSpec("oop_12m", "近12个月自付医疗费用", "元", 0, INF, 1, "medical"),
    FeatureSpec("oop_12m_per_capita", "近12个月人均自付医疗费用", "元", 0, INF, 1, "medical"),
    FeatureSpec("oop_12m_max_person", "近12个月成员个人最高自付医疗费用", "元", 0, INF, 1, "medical"),
    FeatureSpec("total_cost_12m", "近12个月医疗总费用", "元", 0, INF, 1, "medical"),
    FeatureSpec("max_stay_oop_12m", "近12个月单次住院最高自付费用", "元", 0, INF, 1, "medical"),
    FeatureSpec("inpatient_days_12m", "近12个月住院天数", "天", 0, INF, 1, "medical"),
    FeatureSpec("inpatient_stays_12m", "近12个月住院次数", "次", 0, INF, 1, "medical"),
    FeatureSpec("serious_claims_12m", "近12个月重大疾病住院及门特就诊次数", "次", 0, INF, 1, "medical"),
    FeatureSpec("n_members_serious_dx_12m", "近12个月患重大疾病成员数", "人", 0, 50, 1, "medical"),
    FeatureSpec("special_outpatient_claims_12m", "近12个月门诊慢特病就诊次数", "次", 0, INF, 1, "medical"),
    FeatureSpec("elderly_acute_stays_12m", "近12个月60岁及以上成员因心脑血管病或外伤住院次数", "次", 0, INF, 1,
                "medical"),
    # spending against income (features/spending.py)
    FeatureSpec("oop_12m_to_income", "近12个月自付医疗费用占家庭收入比", "比值", 0, 50, 1, "burden"),
    FeatureSpec("oop_to_capacity", "自付医疗费用占支付能力（收入扣除低保线生活费）比", "比值", 0, 50, 1, "burden"),
    FeatureSpec("income_after_oop_pc_month", "扣除自付医疗费用后人均月收入", "元/人·月", -INF, INF, -1, "burden"),
    FeatureSpec("after_oop_to_dibao", "扣除自付医疗费用后人均月收入与低保标准之比", "比值", -INF, INF, -1, "burden"),
    # assistance (features/assistance.py)
    FeatureSpec("on_dibao", "正在享受低保", "是否", 0, 1, 0, "assistance"),
    FeatureSpec("on_dibao_edge", "正在享受低保边缘救助", "是否", 0, 1, 0, "assistance"),
    FeatureSpec("on_tekun", "正在享受特困供养", "是否", 0, 1, 0, "assistance"),
    FeatureSpec("on_expenditure_hardship", "正在享受支出型困难救助", "是否", 0, 1, 0, "assistance"),
    FeatureSpec("assistance_monthly_amount", "当前救助月金额", "元", 0, INF, 0, "assistance"),
    FeatureSpec("temporary_assistance_12m", "近12个月临时救助次数", "次", 0, INF, 0, "assistance"),
    FeatureSpec("left_assistance_12m", "近12个月退出救助", "是否", 0, 1, 0, "assistance"),
)

FEATURE_IDS: tuple[str, ...] = tuple(f.id for f in FEATURES)
BY_ID: dict[str, FeatureSpec] = {f.id: f for f in FEATURES}

# The income features whose value, where the indicator named is 1, is the 0 that stands for nothing
# reported (features/income.py): the models read the 0; whatever must tell "unknown" from "none"
# (the policy calculator, the lists' conditions, the rule baselines) reads the indicator and takes
# the value as missing.
UNREPORTED_BY: dict[str, str] = {
    "income_12m_per_capita_month": "no_income_reported_12m",
    "income_pc_to_dibao": "no_income_reported_12m",
    "wage_share_12m": "no_income_reported_12m",
    "income_3m_per_capita_month": "no_income_reported_3m",
    "income_trend_3m": "no_income_reported_3m",
}

# ---- per risk: the directions each risk's model is constrained to, where they differ from ``direction``
# ``direction`` above is what policy fixes for every risk (income never raises risk, out-of-pocket
# spending never lowers it). A risk adds the directions its own cause fixes, for features on which
# policy is silent: more severely disabled members never lower the risk of 因残致贫, and so on. The
# service is tried on twins (one household with the cause, its twin without), so every feature such a
# change moves is constrained here, each way stated as "more of it never lowers (+1) / raises (-1)
# this risk". A risk only adds directions where policy is silent (checked below); models.schema
# records for every feature which of the two a model was constrained by.
RISK_DIRECTIONS: dict[str, dict[str, int]] = {
    "illness_poverty": {},
    "disability_poverty": {
        "n_disabled": 1, "n_severe_disabled": 1,
        "n_unemployed": 1, "n_working_age_not_working": 1, "n_minors_no_earner": 1,
        "n_earners": -1, "n_working_age_work_income_3m": -1, "n_wage_stopped_3m": 1,
        "wage_share_12m": -1, "income_months_reported_12m": -1,
    },
    "unemployment_poverty": {
        "n_unemployed": 1, "n_working_age_not_working": 1, "n_minors_no_earner": 1,
        "n_unemployment_benefit_3m": 1, "n_wage_stopped_3m": 1,
        "n_earners": -1, "n_working_age_work_income_3m": -1, "income_months_reported_12m": -1,
    },
    "elderly_care_need": {
        "n_elderly": 1, "n_elderly_80plus": 1, "oldest_age": 1, "head_age": 1,
        "elderly_only": 1, "lives_alone_elderly": 1, "dependency_ratio": 1,
        "n_disabled": 1, "n_severe_disabled": 1,
        # anyone of working age at home, working or not, is someone who can care
        "n_members": -1, "n_earners": -1, "n_unemployed": -1, "n_working_age_not_working": -1,
        "n_working_age_work_income_3m": -1, "wage_share_12m": -1, "income_months_reported_12m": -1,
    },
    "child_in_difficulty": {
        "n_children": 1, "n_minors": 1, "n_minors_no_earner": 1,
        "n_disabled": 1, "n_severe_disabled": 1,
        "n_unemployed": 1, "n_working_age_not_working": 1, "n_unemployment_benefit_3m": 1, "n_wage_stopped_3m": 1,
        "n_earners": -1, "n_working_age_work_income_3m": -1,
        "wage_share_12m": -1, "income_months_reported_12m": -1,
    },
}

# Features a risk's model leaves out, each for the reason given: a twin pair would move them against the cause.
_BURDEN = ("oop_12m_to_income", "oop_to_capacity", "income_after_oop_pc_month", "after_oop_to_dibao")
RISK_EXCLUDED: dict[str, tuple[str, ...]] = {
    "illness_poverty": (),
    # Spending against income is illness poverty's own measure. With no income reported these ratios
    # are NaN (features/income.py), and where a NaN goes is learned, not constrained: a twin who lost
    # all income could look better off than its twin with wages, whose burden is measured.
    "disability_poverty": _BURDEN,
    # Wage-dependent households are the ones a job loss can hit (more wage share, more risk), yet the
    # loss itself lowers the wage share; n_wage_stopped_3m carries the loss without the contradiction.
    "unemployment_poverty": (*_BURDEN, "wage_share_12m"),
    # Per-capita savings fall when anyone moves in, yet a carer moving in lowers the need for care:
    # an elderly person alone would look richer, and so less at risk, than the same person with a carer.
    "elderly_care_need": (*_BURDEN, "financial_assets_per_capita"),
    "child_in_difficulty": _BURDEN,
}


def _check_risk_tables() -> None:
    """Every risk of the contract has both entries, and a risk's direction never overrides policy's."""
    from features.contract import FINDINGS

    risks = set(FINDINGS) - {"not_in_need"}
    for table in (RISK_DIRECTIONS, RISK_EXCLUDED):
        if set(table) != risks:
            raise ValueError(f"per-risk tables must cover exactly {sorted(risks)}, got {sorted(table)}")
    for risk, own in RISK_DIRECTIONS.items():
        for fid, d in own.items():
            if fid not in BY_ID or d not in (-1, 1):
                raise ValueError(f"{risk}: direction {d!r} for {fid!r}: unknown feature or not ±1")
            if BY_ID[fid].direction != 0:
                raise ValueError(f"{risk}: {fid!r} has the direction policy fixes ({BY_ID[fid].direction}); "
                                 "a risk may only add directions where policy is silent")
            if fid in RISK_EXCLUDED[risk]:
                raise ValueError(f"{risk}: {fid!r} is both constrained and left out")
    for risk, left_out in RISK_EXCLUDED.items():
        if unknown := set(left_out) - set(BY_ID):
            raise ValueError(f"{risk}: leaves out unknown features {sorted(unknown)}")


_check_risk_tables()


def risk_feature_ids(risk: str) -> tuple[str, ...]:
    """The features a model of ``risk`` is trained on, in catalogue order."""
    left_out = set(RISK_EXCLUDED[risk])
    return tuple(f for f in FEATURE_IDS if f not in left_out)


def risk_directions(risk: str) -> dict[str, int]:
    """The directions ``risk`` adds to policy's (features policy is silent on)."""
    return dict(RISK_DIRECTIONS[risk])
