"""Medical claims: ordinary care, chronic special-outpatient care and catastrophic episodes.

Costs are yuan, handled in integer cents so that ``total = fund + critical illness + assistance +
out of pocket`` holds exactly. This module settles basic insurance and critical-illness insurance
(大病保险); medical assistance (医疗救助) depends on the household's assistance status in the claim
month and is settled month by month in :mod:`synthcity._visits`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.tables import DIAGNOSIS_GROUPS, SETTINGS
from synthcity._common import Calendar, to_cents
from synthcity._households import Population

SET = {name: code for code, name in enumerate(SETTINGS)}
DX = {name: code for code, name in enumerate(DIAGNOSIS_GROUPS)}
CII_DEDUCTIBLE = 15_000.0  # 大病保险 yearly deductible per person, yuan (illustrative, 15–20k)
CII_RATE = 0.6
# setting: (employee fund rate, resident fund rate, policy-covered share lo, hi); fund rates apply to the
# covered part above the inpatient deductible (800 yuan employee, 1,000 resident insurance)
FUND = {"inpatient": (0.75, 0.62, 0.75, 0.92), "special_outpatient": (0.75, 0.62, 0.80, 0.95),
        "outpatient": (0.55, 0.45, 0.85, 0.95), "pharmacy": (0.40, 0.20, 0.70, 0.90)}
# catastrophic episodes: yearly rate a·exp(b·(age − c)) for ages ≥ min_age, capped
CATASTROPHIC = {"cancer": (0.0008, 0.06, 40, 18, 0.015),
                "cardio_cerebrovascular": (0.0006, 0.07, 45, 30, 0.02),
                "renal": (0.00015, 0.04, 40, 20, 0.003),
                "rare_disease": (0.00004, 0.0, 0, 0, 1.0),
                "injury": (0.0012, 0.0, 0, 16, 1.0)}
ORDINARY_DX = np.array([[0, .01, .06, .05, .02, .42, .07, 0, 0, .37],  # under 50
                        [0, .02, .18, .12, .02, .30, .05, 0, 0, .31]])  # 50 and over
INPATIENT_DX = np.array([0, .05, .18, .05, .01, .28, .10, 0, 0, .33])


@dataclass
class Claims:
    """Claims sorted by service date (then person); money in integer cents."""

    person: np.ndarray
    month: np.ndarray
    day: np.ndarray  # datetime64[D]
    setting: np.ndarray
    diagnosis: np.ndarray
    total: np.ndarray
    fund: np.ndarray
    critical: np.ndarray
    assist_base: np.ndarray  # covered part left to the patient after fund and critical illness
    inpatient_days: np.ndarray
    episode_person: np.ndarray  # catastrophic episodes: person, first and last month (inclusive)
    episode_kind: np.ndarray
    episode_start: np.ndarray
    episode_end: np.ndarray
    chronic: np.ndarray  # (persons,) bool: registered chronic condition (门慢) from the start


class _Builder:
    """Collects claim rows (person, month, setting, diagnosis, cost in yuan) from several processes."""

    def __init__(self, rng: np.random.Generator, n_months: int) -> None:
        self.rng, self.n_months = rng, n_months
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, person: np.ndarray, month: np.ndarray, setting: str, dx: np.ndarray | int,
            median: float | np.ndarray, sigma: float, keep: np.ndarray | None = None) -> None:
        ok = (month >= 0) & (month < self.n_months) & (True if keep is None else keep)
        person, month = person[ok], month[ok]
        dx_arr = np.broadcast_to(np.asarray(dx), ok.shape)[ok]
        med = np.broadcast_to(np.asarray(median, dtype=np.float64), ok.shape)[ok]
        cost = med * np.exp(self.rng.normal(0.0, sigma, len(person)))
        self.parts.append((person, month, np.full(len(person), SET[setting], dtype=np.int8),
                           dx_arr.astype(np.int8), np.maximum(cost, 5.0)))


def _rate(age: np.ndarray, a: float, b: float, c: float, min_age: float, cap: float) -> np.ndarray:
    return np.where(age >= min_age, np.minimum(a * np.exp(b * (age - c)), cap), a * 0.1)


def generate_claims(rng: np.random.Generator, pop: Population, cal: Calendar,
                    employee_insured: np.ndarray) -> Claims:
    """All claims of the span with fund and critical-illness shares settled."""
    n_p, n_m = pop.n_persons, cal.n_months
    age, years = pop.age, n_m / 12
    b = _Builder(rng, n_m)
    persons = np.arange(n_p)

    # ordinary care: about 1.3 outpatient and 0.7 pharmacy claims per person-year, more when old
    old = (age >= 50).astype(int)
    for setting, rate, median, sigma in (
            ("outpatient", 0.9 + 0.025 * np.maximum(age - 40, 0) + 0.4 * (age < 10), 220.0, 0.8),
            ("pharmacy", 0.5 + 0.015 * np.maximum(age - 40, 0), 130.0, 0.7)):
        who = np.repeat(persons, rng.poisson(rate * years))
        dx = (rng.random(len(who))[:, None] > np.cumsum(ORDINARY_DX[old[who]], axis=1)).sum(axis=1)
        b.add(who, rng.integers(0, n_m, len(who)), setting, np.minimum(dx, len(DX) - 1), median, sigma)
    stay_rate = 0.035 + 0.004 * np.maximum(age - 45, 0)
    who = np.repeat(persons, rng.poisson(stay_rate * years))
    dx = rng.choice(len(DX), size=len(who), p=INPATIENT_DX)
    stay_median = 9_000.0 * np.where(age[who] >= 65, 1.2, 1.0)
    b.add(who, rng.integers(0, n_m, len(who)), "inpatient", dx, stay_median, 0.6)
    mothers = ~pop.male & (age >= 22) & (age < 40)
    who = np.repeat(persons[mothers], rng.poisson(0.04 * years, mothers.sum()))
    b.add(who, rng.integers(0, n_m, len(who)), "inpatient", DX["maternity"], 7_000.0, 0.3)

    # chronic conditions registered for special-outpatient care (门慢): monthly claims
    chronic = np.zeros(n_p, dtype=bool)
    for dx_name, p, median, sigma, monthly in (
            ("diabetes_metabolic", np.where(age >= 40, 0.02 + 0.0025 * (age - 40), 0), 450.0, 0.4, 0.85),
            ("cardio_cerebrovascular", np.where(age >= 45, 0.015 + 0.003 * (age - 45), 0), 500.0, 0.5, 0.85),
            ("mental", np.where(age >= 18, 0.008, 0.0), 600.0, 0.5, 0.85),
            ("renal", np.where(age >= 30, 0.0008 + 0.00003 * (age - 30), 0.0), 7_000.0, 0.15, 1.0)):
        who = persons[rng.random(n_p) < p]
        chronic[who] = True
        pm, mm = np.repeat(who, n_m), np.tile(np.arange(n_m), len(who))
        b.add(pm, mm, "special_outpatient", DX[dx_name], median, sigma, keep=rng.random(len(pm)) < monthly)

    ep = _catastrophic(rng, b, age, n_m)
    claims = _settle(rng, b, pop, cal, employee_insured)
    return Claims(**claims, episode_person=ep[0], episode_kind=ep[1], episode_start=ep[2], episode_end=ep[3],
                  chronic=chronic)


def _catastrophic(rng: np.random.Generator, b: _Builder, age: np.ndarray, n_m: int) -> tuple[np.ndarray, ...]:
    """Serious illness or injury starting at a random month: stays plus months of follow-up care."""
    eps: list[tuple[np.ndarray, ...]] = []
    for kind, params in CATASTROPHIC.items():
        monthly = _rate(age, *params) / 12
        start = np.floor(np.log(rng.random(len(age))) / np.log1p(-monthly)).astype(np.int64)
        who = np.nonzero(start < n_m)[0]
        t, k, dx = start[who], len(who), DX[kind]
        follow = {"cancer": rng.integers(6, 25, k), "cardio_cerebrovascular": rng.integers(6, 13, k),
                  "injury": np.full(k, 3)}.get(kind, np.full(k, n_m))
        end = np.minimum(t + follow, n_m - 1)
        if kind == "cancer":
            stays = 1 + rng.poisson(2.0, k)
            sp = np.repeat(who, stays)
            offset = rng.integers(0, 9, len(sp))
            offset[np.cumsum(stays) - stays] = 0  # the first stay opens the episode
            b.add(sp, np.repeat(t, stays) + offset, "inpatient", dx, 28_000.0, 0.5)
            follow_median, follow_sigma, follow_setting = 3_500.0, 0.8, "special_outpatient"
        elif kind == "cardio_cerebrovascular":
            b.add(who, t, "inpatient", dx, 42_000.0, 0.6)
            b.add(who, t + rng.integers(1, 7, k), "inpatient", dx, 15_000.0, 0.5, keep=rng.random(k) < 0.3)
            follow_median, follow_sigma, follow_setting = 900.0, 0.5, "special_outpatient"
        elif kind == "renal":
            b.add(who, t, "inpatient", dx, 30_000.0, 0.5)
            follow_median, follow_sigma, follow_setting = 7_000.0, 0.15, "special_outpatient"
        elif kind == "rare_disease":
            b.add(who, t, "inpatient", dx, 40_000.0, 0.5)
            follow_median, follow_sigma, follow_setting = 12_000.0, 0.7, "special_outpatient"
        else:  # injury
            b.add(who, t, "inpatient", dx, 35_000.0, 0.7)
            b.add(who, t + rng.integers(1, 4, k), "inpatient", dx, 18_000.0, 0.5, keep=rng.random(k) < 0.35)
            follow_median, follow_sigma, follow_setting = 600.0, 0.6, "outpatient"
        n_follow = end - t
        fp = np.repeat(who, n_follow)
        within = np.arange(n_follow.sum()) - np.repeat(np.cumsum(n_follow) - n_follow, n_follow)
        fm = np.repeat(t + 1, n_follow) + within
        b.add(fp, fm, follow_setting, dx, follow_median, follow_sigma, keep=rng.random(len(fp)) < 0.9)
        eps.append((who, np.full(k, dx, dtype=np.int8), t, end))
    return tuple(np.concatenate([e[i] for e in eps]) for i in range(4))


def _settle(rng: np.random.Generator, b: _Builder, pop: Population, cal: Calendar,
            employee_insured: np.ndarray) -> dict[str, np.ndarray]:
    """Dates, inpatient days, fund and critical-illness shares (integer cents)."""
    person, month, setting, dx, cost = (np.concatenate([p[i] for p in b.parts]) for i in range(5))
    day = cal.random_day(rng, month)
    order = np.lexsort((person, day))
    person, month, setting, dx, cost, day = (a[order] for a in (person, month, setting, dx, cost, day))
    n = len(person)
    total = to_cents(cost)
    employee = employee_insured[person]
    covered_share = np.empty(n)
    fund_rate = np.empty(n)
    for name, (rate_emp, rate_res, lo, hi) in FUND.items():
        s = setting == SET[name]
        covered_share[s] = rng.uniform(lo, hi, s.sum())
        fund_rate[s] = np.where(employee[s], rate_emp, rate_res) + rng.uniform(-0.03, 0.03, s.sum())
    hard = np.isin(dx, (DX["cancer"], DX["rare_disease"])) & (setting != SET["outpatient"])
    covered_share[hard] -= 0.08  # targeted drugs partly outside the policy list
    inpatient = setting == SET["inpatient"]
    deductible = np.where(inpatient, np.where(employee, 80_000, 100_000), 0)  # cents
    covered = np.floor(total * covered_share).astype(np.int64)
    fund = np.floor(np.maximum(covered - deductible, 0) * fund_rate).astype(np.int64)
    personal = covered - fund

    # critical-illness insurance: 60% of each person's yearly covered personal spending above the
    # deductible, on inpatient and special-outpatient claims, in date order
    eligible = inpatient | (setting == SET["special_outpatient"])
    year = cal.year[month]
    key = np.lexsort((day, year, person))
    contrib = np.where(eligible, personal, 0)[key]
    cum = np.cumsum(contrib)
    group_start = np.r_[True, (person[key][1:] != person[key][:-1]) | (year[key][1:] != year[key][:-1])]
    base = np.maximum.accumulate(np.where(group_start, cum - contrib, 0))
    s_after = cum - base
    s_before = s_after - contrib
    ded = int(CII_DEDUCTIBLE * 100)
    def cii(cumulative: np.ndarray) -> np.ndarray:
        return np.floor(CII_RATE * np.maximum(cumulative - ded, 0))

    paid = cii(s_after) - cii(s_before)
    critical = np.empty(n, dtype=np.int64)
    critical[key] = np.minimum(paid.astype(np.int64), contrib)
    days = np.where(inpatient, np.clip(np.round(cost / (1_200 * np.exp(rng.normal(0, 0.3, n)))), 1, 90), 0)
    days = np.where(inpatient & (dx == DX["maternity"]), rng.integers(3, 7, n), days)
    return {"person": person, "month": month, "day": day, "setting": setting, "diagnosis": dx,
            "total": total, "fund": fund, "critical": critical, "assist_base": personal - critical,
            "inpatient_days": days.astype(np.int64)}
