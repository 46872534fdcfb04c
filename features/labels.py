"""Chinese names of the contract's codes (towns, relations, programmes, ...), as caseworkers and
auditors read them. Data only; a code missing here (a town added to the policy file later, say) is
shown as the code itself by whoever displays it."""

from __future__ import annotations

from typing import Any

from features.risks import FINDING_LABELS

RISKS = FINDING_LABELS
BANDS = {"high": "高", "medium": "中", "low": "低"}
TOWNS = {
    "yangshe": "杨舍", "tangqiao": "塘桥", "jingang": "金港", "jinfeng": "锦丰", "leyu": "乐余",
    "fenghuang": "凤凰", "nanfeng": "南丰", "daxin": "大新", "changyinsha": "常阴沙",
    # 常熟市's (the policy file's second city)
    "yushan": "虞山", "guli": "古里", "shajiabang": "沙家浜", "meili": "梅李", "haiyu": "海虞", "xinzhuang": "辛庄",
    "zhitang": "支塘", "dongbang": "董浜", "shanghu": "尚湖", "bixi": "碧溪",
}
HUKOU = {"urban": "城镇", "rural": "农村"}
HOUSING = {"owned": "自有", "rented": "租住", "public_rental": "公租房", "none": "无住房"}
RELATIONS = {"head": "户主", "spouse": "配偶", "child": "子女", "parent": "父母", "grandchild": "孙辈",
             "sibling": "兄弟姐妹", "other": "其他"}
SEXES = {"M": "男", "F": "女"}
EMPLOYMENT = {"employed": "受雇", "self_employed": "自营", "farmer": "务农", "unemployed": "失业",
              "retired": "退休", "student": "学生", "unable_to_work": "无劳动能力", "other": "其他"}
DISABILITY = {0: "无", 1: "一级（最重）", 2: "二级", 3: "三级", 4: "四级（最轻）"}
INCOME_SOURCES = {"wage": "工资", "pension": "养老金", "unemployment_benefit": "失业金", "business": "经营",
                  "agriculture": "农业", "transfer": "转移性收入", "other": "其他"}
SETTINGS = {"outpatient": "门诊", "inpatient": "住院", "special_outpatient": "门诊慢特病", "pharmacy": "药店"}
DIAGNOSES = {"cancer": "恶性肿瘤", "renal": "肾病", "cardio_cerebrovascular": "心脑血管",
             "diabetes_metabolic": "糖尿病/代谢", "mental": "精神疾病", "respiratory": "呼吸系统", "injury": "损伤",
             "maternity": "生育", "rare_disease": "罕见病", "other": "其他"}
PROGRAMS = {"dibao": "低保", "dibao_edge": "低保边缘", "tekun": "特困", "expenditure_hardship": "支出型困难",
            "temporary": "临时救助"}

ROLES = {"platform": "救助平台", "auditor": "审计员", "admin": "管理员"}
ACTIONS = {"household_file": "查看户档案", "audit_record": "查看审计记录", "audit_search": "查询审计记录",
           "audit_export": "导出审计记录", "case_page": "查看个案页", "policy_check": "政策计算",
           "access_search": "查询访问日志", "needs": "查看需求评估",
           "plan": "查看帮扶计划", "plan_draft": "制定帮扶计划", "plan_event": "记录帮扶措施进展"}

TABLES: dict[str, dict[Any, str]] = {
    "town": TOWNS, "hukou_type": HUKOU, "housing": HOUSING, "relation": RELATIONS, "sex": SEXES,
    "employment": EMPLOYMENT, "disability_grade": DISABILITY, "source": INCOME_SOURCES, "setting": SETTINGS,
    "diagnosis_group": DIAGNOSES, "program": PROGRAMS, "risk": RISKS, "band": BANDS, "role": ROLES,
    "action": ACTIONS,
}

