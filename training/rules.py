"""Today's rule-based warnings (../shared/domain.md) as scorers over the same features as the model.

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

from features.policy import PolicyBook, PolicyVersion

FIRED = 1000.0  # added to a flagged household's score so that flagged rank above unflagged


def _low_income(f: pd.DataFrame, v: PolicyVersion) -> np.ndarray:
    on_any = f[["on_dibao", "on_dibao_edge", "on_tekun", "on_expenditure_hardship"]].max(axis=1) > 0
    below_edge = f["income_pc_to_dibao"].fillna(np.inf) < v.edge_multiple
    return (on_any | below_edge).to_numpy()


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


RULES: tuple[Rule, ...] = (
    Rule("yangyuan", "阳原：个人年度医疗负担超农村人均可支配收入50%/100%", yangyuan),
    Rule("xian", "西安：个人自付超1万元（低收入）/2.6万元（一般）", xian),
    Rule("single_stay", "单次住院自付超6000元（监测对象）/1万元（其他）", single_stay),
    Rule("catastrophic", "WHO：自付超支付能力40%", catastrophic),
)


def rule_scores(features: pd.DataFrame, as_of: pd.Timestamp, policy: PolicyBook) -> pd.DataFrame:
    """One column per rule: its ranking score (≥ 1000 where the rule fires)."""
    v = policy.at(pd.Timestamp(as_of).date())
    return pd.DataFrame({rule.name: rule.score(features, v, dict(policy.rules)) for rule in RULES},
                        index=features.index)
