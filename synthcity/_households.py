"""Households and their members: composition, ages, hukou, housing, assets, disability, work.

A latent wealth level ``z`` (standard normal, shifted by town) drives housing, property, vehicles,
deposits and, later, earnings; it is never written out. Ages are in years on the first day of the
span, and everyone is born before the span starts (a bundle scored at any date in the span then
has no member born after its as-of date).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.tables import EMPLOYMENT, RELATIONS, TOWNS_DEFAULT
from synthcity._common import Calendar, choice_rows, round_yuan

# Town sizes (share of households) and rural-hukou shares: a central street, suburban towns, an
# agricultural island. Illustrative; the real split is the bureau's.
TOWN_SHARE = np.array([0.26, 0.12, 0.11, 0.13, 0.08, 0.10, 0.08, 0.08, 0.04])
TOWN_RURAL = np.array([0.15, 0.45, 0.45, 0.35, 0.50, 0.50, 0.55, 0.50, 0.80])
TOWN_WEALTH = np.array([0.20, 0.0, 0.05, 0.10, -0.05, 0.0, -0.10, -0.05, -0.20])
assert len(TOWN_SHARE) == len(TOWNS_DEFAULT)

# Household templates: (name, share urban, share rural, head age lo, hi, skewed old?, P(head male),
# further members). Mean size ≈ 2.7 (Suzhou-like: many 2–3 person households, elderly alone).
TEMPLATES: tuple[tuple[str, float, float, float, float, bool, float, tuple[str, ...]], ...] = (
    ("elder_alone", 0.08, 0.09, 65, 96, True, 0.40, ()),
    ("adult_alone", 0.11, 0.06, 20, 64, False, 0.62, ()),
    ("elder_couple", 0.14, 0.15, 60, 92, True, 0.80, ("spouse",)),
    ("couple", 0.12, 0.08, 22, 59, False, 0.80, ("spouse",)),
    ("single_parent", 0.04, 0.03, 28, 55, False, 0.35, ("child",)),
    ("couple_child", 0.23, 0.17, 25, 60, False, 0.80, ("spouse", "child")),
    ("couple_2child", 0.08, 0.11, 28, 52, False, 0.80, ("spouse", "child", "child2")),
    ("elder_adult_child", 0.04, 0.07, 62, 88, True, 0.75, ("spouse", "adult_child")),
    ("three_gen_4", 0.06, 0.08, 28, 50, False, 0.80, ("spouse", "child", "parent")),
    ("three_gen_5", 0.05, 0.08, 28, 50, False, 0.80, ("spouse", "child", "parent", "parent2")),
    ("three_gen_6", 0.02, 0.05, 30, 48, False, 0.80, ("spouse", "child", "child2", "parent", "parent2")),
    ("grandparents_grandchild", 0.01, 0.02, 55, 76, False, 0.70, ("spouse", "grandchild")),
    ("siblings", 0.01, 0.01, 25, 70, False, 0.55, ("sibling",)),
    ("with_other", 0.01, 0.00, 22, 70, False, 0.60, ("other",)),
)
SLOT_RELATION = {"spouse": "spouse", "child": "child", "child2": "child", "adult_child": "child",
                 "parent": "parent", "parent2": "parent", "grandchild": "grandchild",
                 "sibling": "sibling", "other": "other"}
# P(disability) by age band (<18, 18–44, 45–59, 60–74, 75+), ≈6% overall; grades 1 (severe)…4.
DISABILITY_BY_AGE = np.array([0.01, 0.03, 0.06, 0.11, 0.20])
DISABILITY_GRADES = np.array([0.12, 0.20, 0.30, 0.38])
EMP = {name: code for code, name in enumerate(EMPLOYMENT)}
REL = {name: code for code, name in enumerate(RELATIONS)}


@dataclass
class Population:
    """Arrays for households (index h) and persons (index p, grouped by household, head first)."""

    town: np.ndarray
    rural: np.ndarray  # bool: rural hukou
    housing: np.ndarray  # code into features.tables.HOUSING
    property_count: np.ndarray
    vehicle_count: np.ndarray
    financial_assets: np.ndarray  # yuan, rounded to the cent
    z: np.ndarray  # latent wealth, standard normal
    template: np.ndarray
    size: np.ndarray
    first_person: np.ndarray  # index of the head in the person arrays
    hh: np.ndarray  # person -> household
    relation: np.ndarray
    male: np.ndarray
    age: np.ndarray  # years on the first day of the span
    birth: np.ndarray  # datetime64[D]
    disability: np.ndarray  # 0 none, 1 most severe … 4 mildest
    employment: np.ndarray  # code into EMPLOYMENT, status at the span start

    @property
    def n_households(self) -> int:
        return len(self.town)

    @property
    def n_persons(self) -> int:
        return len(self.hh)


def _slot_ages(rng: np.random.Generator, slot: str, head: np.ndarray,
               prev: dict[str, np.ndarray]) -> np.ndarray:
    """Age of one further member, consistent with the head's (parents older, children younger)."""
    n = len(head)
    if slot == "spouse":
        return np.clip(head + rng.normal(-2.0, 3.0, n), 18, 100)
    if slot == "child":
        gap = 22 + rng.random(n) * np.clip(head - 22, 0, 16)
        return np.clip(head - gap, 0, None)
    if slot == "child2":
        return np.clip(prev["child"] - 1 - 7 * rng.random(n), 0, None)
    if slot == "adult_child":
        return np.clip(head - rng.uniform(24, 34, n), 18, None)
    if slot == "parent":
        return np.clip(head + rng.uniform(22, 34, n), None, 99)
    if slot == "parent2":
        return np.clip(prev["parent"] + rng.normal(-2.0, 3.0, n), head + 18, 99)
    if slot == "grandchild":
        return rng.uniform(3, 17.9, n)
    return np.clip(head + rng.normal(0.0, 6.0, n), 18, 95)  # sibling, other


def _employment(rng: np.random.Generator, age: np.ndarray, male: np.ndarray, rural: np.ndarray,
                z: np.ndarray, disability: np.ndarray) -> np.ndarray:
    """Status consistent with age, hukou, wealth and severe disability (codes into EMPLOYMENT)."""
    n = len(age)
    k = len(EMPLOYMENT)
    p = np.zeros((n, k))
    retire_age = np.where(male | rural, 60.0, 55.0)
    working = (age >= 22) & (age < retire_age)
    young = (age >= 16) & (age < 22)
    old = age >= retire_age
    unemp = np.exp(-0.5 * z)
    # working age: urban / rural rows of probabilities
    for col, urban_p, rural_p in (("employed", 0.80, 0.55), ("self_employed", 0.09, 0.10),
                                  ("farmer", 0.02, 0.21), ("unemployed", 0.04, 0.05),
                                  ("other", 0.025, 0.04), ("unable_to_work", 0.01, 0.02)):
        base = np.where(rural, rural_p, urban_p)
        p[working, EMP[col]] = (base * (unemp if col == "unemployed" else 1.0))[working]
    p[young, EMP["student"]] = 0.75
    p[young, EMP["employed"]] = 0.25
    younger_old = old & (age < 70)
    p[old, EMP["retired"]] = np.where(rural, np.where(age < 75, 0.57, 0.9), 0.9)[old]
    p[old, EMP["farmer"]] = np.where(rural & (age < 75), 0.33, 0.0)[old]
    p[younger_old, EMP["employed"]] = np.where(rural, 0.05, 0.07)[younger_old]
    p[old, EMP["other"]] = 0.03
    status = choice_rows(rng, p + 1e-12 * (p.sum(axis=1, keepdims=True) == 0))
    status = np.where(age < 6, EMP["other"], np.where(age < 16, EMP["student"], status))
    severe = np.isin(disability, (1, 2)) & (age >= 16) & (status != EMP["retired"])
    status[severe & (rng.random(n) < 0.65)] = EMP["unable_to_work"]
    return status


def generate_population(rng: np.random.Generator, n: int, cal: Calendar) -> Population:
    """``n`` households and their members; deterministic given ``rng``."""
    town = rng.choice(len(TOWN_SHARE), size=n, p=TOWN_SHARE)
    rural = rng.random(n) < TOWN_RURAL[town]
    z = rng.normal(0.0, 1.0, n) + TOWN_WEALTH[town]
    share = np.array([[t[1], t[2]] for t in TEMPLATES])
    template = choice_rows(rng, share[:, rural.astype(int)].T)

    hh_parts, slot_parts, rel_parts, male_parts, age_parts = [], [], [], [], []
    for t, (_, _, _, lo, hi, old, p_male, slots) in enumerate(TEMPLATES):
        idx = np.nonzero(template == t)[0]
        m = len(idx)
        head = lo + (hi - lo) * (rng.beta(1.4, 3.0, m) if old else rng.random(m))
        head_male = rng.random(m) < p_male
        ages: dict[str, np.ndarray] = {}
        males: dict[str, np.ndarray] = {}
        for slot in slots:
            ages[slot] = _slot_ages(rng, slot, head, ages)
            males[slot] = (~head_male if slot == "spouse" else
                           ~males["parent"] if slot == "parent2" else rng.random(m) < 0.5)
        for j, slot in enumerate(("head", *slots)):
            hh_parts.append(idx)
            slot_parts.append(np.full(m, j))
            rel_parts.append(np.full(m, REL[SLOT_RELATION.get(slot, "head")]))
            male_parts.append(head_male if slot == "head" else males[slot])
            age_parts.append(head if slot == "head" else ages[slot])
    hh = np.concatenate(hh_parts)
    order = np.lexsort((np.concatenate(slot_parts), hh))
    hh = hh[order].astype(np.int64)
    relation = np.concatenate(rel_parts)[order].astype(np.int8)
    male = np.concatenate(male_parts)[order]
    age = np.concatenate(age_parts)[order]
    size = np.bincount(hh, minlength=n)
    first_person = np.r_[0, np.cumsum(size)[:-1]]
    # born at least one day before the span starts
    days = np.floor(age * 365.25).astype(np.int64) + 1 + rng.integers(0, 365, len(age))
    birth = cal.span_start - days.astype("timedelta64[D]")
    age = (cal.span_start - birth).astype(np.int64) / 365.25

    band = np.digitize(age, (18, 45, 60, 75))
    disabled = rng.random(len(age)) < DISABILITY_BY_AGE[band] * np.exp(-0.3 * z[hh])
    grade = rng.choice(4, size=len(age), p=DISABILITY_GRADES) + 1
    disability = np.where(disabled, grade, 0).astype(np.int8)
    employment = _employment(rng, age, male, rural[hh], z[hh], disability)

    head_age = age[first_person]
    housing = choice_rows(rng, np.column_stack([
        np.ones(n),  # owned
        np.where(rural, 0.04, 0.08) * np.exp(-0.5 * z) * np.where(head_age < 40, 2.0, 1.0),  # rented
        np.where(rural, 0.005, 0.04) * np.exp(-0.8 * z),  # public_rental
        0.004 * np.exp(-1.0 * z),  # none
    ]))
    owned = housing == 0
    extra_property = rng.poisson(np.where(owned, 0.3, 0.05) * np.exp(0.7 * z))
    property_count = np.minimum(np.where(owned, 1, 0) + extra_property, 6)
    vehicle_count = np.minimum(rng.poisson(0.7 * np.exp(0.5 * z) * np.where(head_age >= 70, 0.3, 1.0)), 4)
    median_assets = 60_000 * np.exp(0.9 * z) * np.where(head_age >= 55, 1.5, 1.0)
    assets = median_assets * np.exp(rng.normal(0.0, 0.9, n))
    assets[rng.random(n) < 0.06 * np.exp(-0.8 * z)] = 0.0
    return Population(
        town=town, rural=rural, housing=housing, property_count=property_count.astype(np.int64),
        vehicle_count=vehicle_count.astype(np.int64), financial_assets=round_yuan(assets), z=z,
        template=template, size=size, first_person=first_person, hh=hh, relation=relation, male=male,
        age=age, birth=birth, disability=disability, employment=employment.astype(np.int8),
    )
