"""Monthly income streams per earning person and source, job losses and reporting gaps.

Each person has at most one work stream (wage, business or agriculture, by employment status) plus
pension, transfer, rental (``other``) and unemployment-benefit streams where they apply. Levels are
calibrated so that reported per-capita income averages Suzhou's per-capita disposable income
(urban 86,640, rural 48,946 yuan/year; domain.md) with a heavy lower tail. All amounts are yuan per
month. A month the platform did not receive is missing (no row), not zero: the true amount still
counts for the latent hardship processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.tables import INCOME_SOURCES
from synthcity._common import Calendar, Policy, round_yuan, string_column
from synthcity._households import EMP, Population

SRC = {name: code for code, name in enumerate(INCOME_SOURCES)}
WORK_SOURCES = (SRC["wage"], SRC["business"], SRC["agriculture"])
HARVEST = np.array([0.4, 0.4, 0.5, 0.6, 0.8, 1.6, 1.4, 0.8, 0.9, 1.8, 1.5, 0.5])
HARVEST = HARVEST / HARVEST.mean()
UNEMPLOYMENT_BENEFIT = 2_100.0  # yuan/month, illustrative (about 90% of the local minimum wage)
RESIDENT_PENSION = 1_000.0  # 城乡居民养老保险 incl. personal account, yuan/month, illustrative
LAND_PENSION = 800.0  # 征地保养金 for rural elderly whose land was requisitioned, yuan/month
JOB_LOSS_HAZARD = 0.0022  # per employed person-month at z = 0 (≈7.5% lose a job within 36 months)
WAGE_BONUS = 0.05  # year-end bonus: December pays on average +60% of a month's wage


@dataclass
class Income:
    """Streams (index s, sorted by person then source) and household-month totals (yuan)."""

    person: np.ndarray
    source: np.ndarray
    amount: np.ndarray  # (streams × months) true amounts, 0 where the stream is inactive
    active: np.ndarray  # (streams × months) bool
    reported: np.ndarray  # (streams × months) bool: the platform received this month
    household_true: np.ndarray  # (households × months) all true stream income
    household_reported: np.ndarray  # (households × months) reported income
    hidden: np.ndarray  # (households,) unobserved monthly income: informal work, family support
    work_earners: np.ndarray  # (households × months) persons 18–59 with a work stream that month
    main_earner_out: np.ndarray  # (households × months) bool: the main earner lost a job, not back
    base_per_capita: np.ndarray  # (households,) expected monthly income per person before shocks
    employee_insured: np.ndarray  # (persons,) bool: employee medical insurance (else resident)
    employment_latest: np.ndarray  # (persons,) employment code at the end of the span


def _levels(rng: np.random.Generator, pop: Population) -> dict[str, np.ndarray]:
    """Uncalibrated monthly base levels per person for each source (0 where none)."""
    n = pop.n_persons
    z, rural, emp, age = pop.z[pop.hh], pop.rural[pop.hh], pop.employment, pop.age
    eps = rng.normal(0.0, 1.0, (4, n))
    profile = np.where(age < 25, 0.7, np.where(age < 50, 1.0, 0.9)) * np.where(pop.male, 1.0, 0.85)
    wage = np.where(rural, 4_500, 6_500) * np.exp(0.45 * z + 0.35 * eps[0]) * profile
    business = np.where(rural, 5_000, 7_000) * np.exp(0.5 * z + 0.5 * eps[1])
    agriculture = 1_600 * np.exp(0.3 * z + 0.4 * eps[2]) * np.where(age >= 70, 0.6, 1.0)
    employee_pension = (emp == EMP["retired"]) & (rng.random(n) < np.where(rural, 0.3, 0.88))
    pension = np.where(employee_pension, np.where(rural, 2_800, 3_900) * np.exp(0.25 * z + 0.2 * eps[3]),
                       np.where(age >= 60, RESIDENT_PENSION * np.exp(0.1 * eps[3]), 0.0))
    transfer = np.where(np.isin(pop.disability, (1, 2)), 260.0, 0.0) + np.where(age >= 80, 150.0, 0.0)
    head = np.zeros(n, dtype=bool)
    head[pop.first_person] = True
    props = pop.property_count[pop.hh]
    rental = head & (props >= 2) & (rng.random(n) < 0.7)
    other = np.where(rental, 2_200 * (props - 1) * np.exp(0.3 * rng.normal(0.0, 1.0, n)), 0.0)
    land = rural & (age >= 55) & (rng.random(n) < 0.4)
    other = other + np.where(land, LAND_PENSION * np.exp(0.15 * rng.normal(0.0, 1.0, n)), 0.0)
    return {
        "wage": np.where(emp == EMP["employed"], wage, 0.0),
        "business": np.where(emp == EMP["self_employed"], business, 0.0),
        "agriculture": np.where(emp == EMP["farmer"], agriculture, 0.0),
        "pension": pension, "transfer": transfer, "other": other,
        "employee_pension": employee_pension,
    }


def _calibrate(levels: dict[str, np.ndarray], pop: Population, policy: Policy) -> None:
    """Scales work income per hukou so mean per-capita income hits the reference PDI (in place)."""
    rural = pop.rural[pop.hh]
    work = levels["wage"] * (1 + WAGE_BONUS) + levels["business"] + levels["agriculture"]
    fixed = levels["pension"] + levels["transfer"] + levels["other"]
    for mask, pdi in ((~rural, policy.pdi_urban), (rural, policy.pdi_rural)):
        target = pdi / 12 * mask.sum()
        scale = max(target - fixed[mask].sum(), 0.0) / max(work[mask].sum(), 1.0)
        for key in ("wage", "business", "agriculture"):
            levels[key][mask] *= scale


def generate_income(rng: np.random.Generator, pop: Population, cal: Calendar, policy: Policy) -> Income:
    """Streams, job losses, month-to-month noise and reporting gaps, all vectorised."""
    n_p, n_m = pop.n_persons, cal.n_months
    levels = _levels(rng, pop)
    _calibrate(levels, pop, policy)
    rural = pop.rural[pop.hh]
    cm = cal.calendar_month

    # job loss of employed wage earners 22–59: first loss month, re-employment month (n_m = never)
    h = JOB_LOSS_HAZARD * np.exp(-0.5 * pop.z[pop.hh]) * np.where(rural, 1.3, 1.0)
    at_risk = (levels["wage"] > 0) & (pop.age >= 22) & (pop.age < 60)
    loss = np.where(at_risk, np.floor(np.log(rng.random(n_p)) / np.log1p(-h)), n_m).astype(np.int64)
    loss = np.minimum(loss, n_m)
    back = np.minimum(loss + 1 + rng.geometric(1 / 7, n_p), n_m)
    lost = loss < n_m
    months = np.arange(n_m)
    out = lost[:, None] & (months >= loss[:, None]) & (months < back[:, None])

    parts: list[tuple[np.ndarray, int, np.ndarray]] = []  # (persons, source, amounts)
    for name in ("wage", "business", "agriculture", "pension", "transfer", "other"):
        who = np.nonzero(levels[name] > 0)[0]
        base = levels[name][who][:, None] * np.ones(n_m)
        if name == "wage":
            base = base * np.exp(rng.normal(0.0, 0.06, base.shape))
            base[:, cm == 12] *= 1 + 1.0 * (rng.random((len(who), 1)) < 0.6)
            after = (months >= back[who][:, None]) & lost[who][:, None]
            base = np.where(after, base * rng.uniform(0.75, 1.05, (len(who), 1)), base)
            base[out[who]] = 0.0
        elif name == "business":
            base = base * np.exp(rng.normal(-0.045, 0.3, base.shape))
        elif name == "agriculture":
            base = base * HARVEST[cm - 1] * np.exp(rng.normal(-0.03, 0.25, base.shape))
        elif name == "pension":
            base = base * 1.03 ** np.cumsum(cm == 1)  # yearly raise every January
        elif name == "other":
            base = base * np.exp(rng.normal(-0.005, 0.1, base.shape))
        parts.append((who, SRC[name], base))

    # unemployment benefit after a job loss (some), and for some unemployed at the start
    claims_ub = lost & (rng.random(n_p) < np.where(rural, 0.35, 0.6))
    ub_len = rng.integers(3, 13, n_p)
    ub_end = np.minimum(back, loss + 1 + ub_len)
    ub_on = claims_ub[:, None] & (months > loss[:, None]) & (months < ub_end[:, None])
    start_ub = (pop.employment == EMP["unemployed"]) & (rng.random(n_p) < 0.3)
    ub_on |= start_ub[:, None] & (months < rng.integers(1, 11, n_p)[:, None])
    who = np.nonzero(ub_on.any(axis=1))[0]
    parts.append((who, SRC["unemployment_benefit"],
                  np.where(ub_on[who], UNEMPLOYMENT_BENEFIT * rng.uniform(0.95, 1.05, (len(who), 1)), 0.0)))

    person = np.concatenate([p[0] for p in parts])
    source = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int8) for p in parts])
    amount = np.vstack([p[2] for p in parts])
    order = np.lexsort((source, person))
    person, source, amount = person[order], source[order], round_yuan(amount[order])
    active = amount > 0
    reported = active & (rng.random(amount.shape) >= 0.015)
    gap = rng.random(len(person)) < 0.04
    g_start = rng.integers(0, n_m, len(person))
    g_len = rng.integers(1, 7, len(person))
    reported &= ~(gap[:, None] & (months >= g_start[:, None]) & (months < (g_start + g_len)[:, None]))

    hh_of = pop.hh[person]
    n_h = pop.n_households

    def by_household(values: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(hh_of, weights=values[:, m], minlength=n_h) for m in range(n_m)], axis=1)

    working_age = (pop.age[person] >= 18) & (pop.age[person] < 60) & np.isin(source, WORK_SOURCES)
    main = _main_earner(pop, levels)
    head_out = np.zeros((n_h, n_m), dtype=bool)
    head_out[pop.hh[main]] = out[main]
    fixed_income = levels["pension"] + levels["transfer"] + levels["other"]
    base_total = levels["wage"] * (1 + WAGE_BONUS) + levels["business"] + levels["agriculture"] + fixed_income
    hidden_median = np.where(pop.rural, 600.0, 300.0) * np.where(pop.age[pop.first_person] >= 60, 2.0, 1.0)
    hidden = hidden_median * np.exp(rng.normal(0.0, 0.8, n_h)) * (rng.random(n_h) < 0.5)

    employment_latest = pop.employment.copy()
    employment_latest[lost & (back >= n_m)] = EMP["unemployed"]
    working = np.isin(pop.employment, (EMP["employed"], EMP["self_employed"]))
    employee = (levels["employee_pension"] | (~rural & working)
                | (rural & (pop.employment == EMP["employed"]) & (rng.random(n_p) < 0.6)))
    earners = by_household((active & working_age[:, None]).astype(np.float64)).astype(np.int64)
    return Income(
        person=person, source=source, amount=amount, active=active, reported=reported,
        household_true=by_household(amount), household_reported=by_household(np.where(reported, amount, 0.0)),
        hidden=hidden, work_earners=earners,
        main_earner_out=head_out,
        base_per_capita=np.bincount(pop.hh, weights=base_total, minlength=n_h) / pop.size,
        employee_insured=employee, employment_latest=employment_latest,
    )


def _main_earner(pop: Population, levels: dict[str, np.ndarray]) -> np.ndarray:
    """Per household with any work income, the person with the highest work income."""
    work = levels["wage"] + levels["business"] + levels["agriculture"]
    order = np.lexsort((-work, pop.hh))
    first = order[np.r_[True, pop.hh[order][1:] != pop.hh[order][:-1]]]
    return first[work[first] > 0]


def income_frame(inc: Income, cal: Calendar, person_ids: pa.Array) -> pd.DataFrame:
    """The contract's income table: one row per reported person-month-source, amount > 0."""
    flat = np.flatnonzero(inc.reported)
    amount = inc.amount.ravel()[flat]
    stream = (flat // cal.n_months).astype(np.int32)
    month = (flat % cal.n_months).astype(np.int32)
    del flat
    return pd.DataFrame({
        "person_id": string_column(inc.person[stream], person_ids),
        "month": string_column(month, cal.labels.tolist()),
        "source": string_column(inc.source[stream], INCOME_SOURCES),
        "amount": amount,
    })
