"""Today's rule-based warnings (docs/policy.md) as scorers over the same features as the model,
one set per risk (the illness rules are domain.md's; the other lists are the platform's usual ones).

A rule flags households; to compare with the model at the same caseworker capacity, each rule also
ranks: households it flags first, then by how far past the rule's threshold they are. A rule
that flags fewer households than the capacity is therefore given its best ranking of the rest.
"low-income / monitored" means on 低保, 低边, 特困 or 支出型 assistance, or per-capita income
below the 低边 line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import UNREPORTED_BY
from features.policy import PolicyBook, PolicyVersion

FIRED = 1000.0  # added to a flagged household's score so that flagged rank above unflagged


def _low_income(f: pd.DataFrame, v: PolicyVersion) -> np.ndarray:
    on_any = f[["on_dibao", "on_dibao_edge", "on_tekun", "on_expenditure_hardship"]].max(axis=1) > 0
    below_edge = np.nan_to_num(_income_ratio(f), nan=np.inf) < v.edge_multiple
    return on_any.to_numpy() | below_edge


def _ranked(fired: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    return np.where(fired, FIRED, 0.0) + np.nan_to_num(np.clip(magnitude, 0.0, FIRED - 1), nan=0.0)


def yangyuan(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """Yearly personal medical burden above 50% (monitored) / 100% (others) of rural PDI."""
    threshold = np.where(_low_income(f, v), r["yangyuan_share_monitored"], r["yangyuan_share_general"]) * v.pdi_rural
    burden = f["oop_12m_max_person"].to_numpy()
    return _ranked(burden > threshold, burden / threshold)


def xian(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """Personal burden after all insurance above 10,000 (low-income) / 26,000 yuan (general)."""
    threshold = np.where(_low_income(f, v), r["xian_burden_low_income"], r["xian_burden_general"])
    burden = f["oop_12m_max_person"].to_numpy()
    return _ranked(burden > threshold, burden / threshold)


def single_stay(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """One hospital stay with out-of-pocket above 6,000 (monitored) / 10,000 yuan (others)."""
    threshold = np.where(_low_income(f, v), r["single_stay_monitored"], r["single_stay_general"])
    stay = f["max_stay_oop_12m"].to_numpy()
    return _ranked(stay > threshold, stay / threshold)


def catastrophic(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """WHO catastrophic spending: out-of-pocket above 40% of capacity to pay."""
    ratio = f["oop_to_capacity"].to_numpy()
    share = r["catastrophic_capacity_share"]
    return _ranked(np.nan_to_num(ratio, nan=0.0) > share, ratio / share)


@dataclass(frozen=True)
class Rule:
    name: str
    label_zh: str
    score: Callable[[pd.DataFrame, PolicyVersion, dict[str, float]], np.ndarray]


# ---- the other active-discovery lists: today's rule for each, ranked by how far in it a household is
def _income_ratio(f: pd.DataFrame) -> np.ndarray:
    """Per-capita income over the 低保 line; NaN where no income was reported (today's rules do not
    count an unknown income as low: the 0 the features give it is for the models)."""
    unknown = f[UNREPORTED_BY["income_pc_to_dibao"]].to_numpy() > 0
    return np.where(unknown, np.nan, f["income_pc_to_dibao"].to_numpy(dtype="float64"))


def _poorer(f: pd.DataFrame) -> np.ndarray:
    """Higher for lower per-capita income (0 where income is not reported)."""
    return np.nan_to_num(1.0 / np.clip(_income_ratio(f), 0.05, None), nan=0.0)


def severe_disability_low_income(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """A severely disabled member (grade 1-2) in a low-income household."""
    fired = (f["n_severe_disabled"].to_numpy() > 0) & _low_income(f, v)
    return _ranked(fired, f["n_severe_disabled"].to_numpy() + _poorer(f))


def unemployed_low_income(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """An unemployed member in a low-income household."""
    fired = (f["n_unemployed"].to_numpy() > 0) & _low_income(f, v)
    return _ranked(fired, f["n_unemployed"].to_numpy() + _poorer(f))


def elderly_alone(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """Only elderly people in the household, the head 75 or older (空巢、独居高龄老人)."""
    fired = (f["elderly_only"].to_numpy() == 1) & (f["head_age"].to_numpy() >= 75)
    return _ranked(fired, f["head_age"].fillna(0).to_numpy() / 10 + f["n_disabled"].to_numpy())


def children_without_earner(f: pd.DataFrame, v: PolicyVersion, r: dict[str, float]) -> np.ndarray:
    """Children under 16 in a household with no earner or income below the 低保 line."""
    kids = f["n_children"].to_numpy() > 0
    fired = kids & ((f["n_earners"].to_numpy() == 0) | (np.nan_to_num(_income_ratio(f), nan=np.inf) < 1.0))
    return _ranked(fired, np.where(kids, _poorer(f) + (f["n_earners"].to_numpy() == 0), 0.0))


RULES_BY_RISK: dict[str, tuple[Rule, ...]] = {
    "illness_poverty": (
        Rule("yangyuan", "阳原：个人年度医疗负担超农村人均可支配收入50%/100%", yangyuan),
        Rule("xian", "西安：个人自付超1万元（低收入）/2.6万元（一般）", xian),
        Rule("single_stay", "单次住院自付超6000元（监测对象）/1万元（其他）", single_stay),
        Rule("catastrophic", "WHO：自付超支付能力40%", catastrophic),
    ),
    "disability_poverty": (
        Rule("severe_disability_low_income", "低收入家庭中有重度残疾人", severe_disability_low_income),),
    "unemployment_poverty": (Rule("unemployed_low_income", "低收入家庭中有失业人员", unemployed_low_income),),
    "elderly_care_need": (Rule("elderly_alone", "75岁以上老人独居或仅与老人同住", elderly_alone),),
    "child_in_difficulty": (Rule("children_without_earner", "有未成年子女且无人就业或收入低于低保标准",
                                 children_without_earner),),
}
RULES = RULES_BY_RISK["illness_poverty"]


def rule_scores(features: pd.DataFrame, as_of: pd.Timestamp, policy: PolicyBook,
                risk: str = "illness_poverty", cities: np.ndarray | None = None) -> pd.DataFrame:
    """One column per rule of ``risk``: its ranking score (≥ 1000 where the rule fires). Each
    household is judged by the parameters in force in its city (``cities``, one per row, as
    :func:`features.build.household_cities` gives them; None: the home city, the training data's)."""
    day = pd.Timestamp(as_of).date()
    rules = RULES_BY_RISK[risk]
    out = np.empty((len(features), len(rules)))
    for city, rows in policy.groups(cities):
        v = policy.at(day, city)
        part = features if rows is None else features.iloc[rows]
        for j, rule in enumerate(rules):
            out[slice(None) if rows is None else rows, j] = rule.score(part, v, dict(policy.rules))
    return pd.DataFrame(out, index=features.index, columns=[rule.name for rule in rules])
