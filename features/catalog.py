"""What each feature is: the ASCII id, its Chinese label, unit, range and the direction policy expects.

This is data, not code: ``models.schema`` freezes it into the schema that is logged with every model
and validated on the training and serving paths; the explanation reasons take their labels from
here. ``direction`` is +1 where policy says more of it never lowers risk (more out-of-pocket
spending), -1 where more of it never raises risk (more income), 0 where policy says nothing.
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
    # assets (features/household.py)
    FeatureSpec("financial_assets_per_capita", "人均金融资产", "元", 0, INF, -1, "assets"),
    FeatureSpec("property_count", "登记房产数", "套", 0, INF, -1, "assets"),
    FeatureSpec("vehicle_count", "登记车辆数", "辆", 0, INF, -1, "assets"),
    FeatureSpec("housing_owned", "自有住房", "是否", 0, 1, 0, "assets"),
    # income (features/income.py)
    FeatureSpec("income_12m_per_capita_month", "近12个月家庭人均月收入", "元/人·月", 0, INF, -1, "income"),
    FeatureSpec("income_months_reported_12m", "近12个月有收入记录的月数", "月", 0, 12, 0, "income"),
    FeatureSpec("income_trend_3m", "近3个月收入与此前9个月月均之比", "比值", 0, INF, -1, "income"),
    FeatureSpec("wage_share_12m", "近12个月工资性收入占比", "比值", 0, 1, 0, "income"),
    FeatureSpec("income_pc_to_dibao", "人均月收入与低保标准之比", "比值", 0, INF, -1, "income"),
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
