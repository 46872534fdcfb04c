"""Latent hardship other than illness-induced poverty, month by month (the ``truth``).

Each finding is its own process with household-level noise the data does not show (family
support, unreported income, thresholds that differ between families). Each returns a boolean
(households × months) matrix, smoothed into episodes. Illness-induced poverty depends on medical
assistance and so lives in the monthly simulation (:mod:`synthcity._illness`).
"""

from __future__ import annotations

import numpy as np

from synthcity._claims import DX, Claims
from synthcity._common import Calendar, Policy, episode_matrix, episodes, rolling_sum
from synthcity._households import REL, Population
from synthcity._income import Income

ELDERLY_HAZARD = 0.003  # monthly onset of care need in a qualifying elderly-only household


def per_capita_true(inc: Income, pop: Population) -> np.ndarray:
    """(households × months) true monthly income per person incl. unobserved income, 3-month mean."""
    total = inc.household_true + inc.hidden[:, None]
    months = np.minimum(np.arange(total.shape[1]) + 1, 3)
    return rolling_sum(total, 3) / months / pop.size[:, None]


def _by_household(pop: Population, person_flag: np.ndarray) -> np.ndarray:
    return np.bincount(pop.hh, weights=person_flag.astype(np.float64), minlength=pop.n_households) > 0


def _person_episode_active(pop: Population, claims: Claims, n_m: int, kinds: tuple[int, ...],
                           persons: np.ndarray) -> np.ndarray:
    """(households × months) bool: one of ``persons`` (a mask) is inside a catastrophic episode."""
    sel = np.isin(claims.episode_kind, kinds) & persons[claims.episode_person]
    h = pop.hh[claims.episode_person[sel]]
    return episode_matrix(pop.n_households, n_m, h, claims.episode_start[sel], claims.episode_end[sel])


def latent_hardship(rng: np.random.Generator, pop: Population, inc: Income, claims: Claims,
                    cal: Calendar, policy: Policy) -> dict[str, np.ndarray]:
    """Activity matrices for disability, unemployment, elderly-care and child hardship."""
    n_h, n_m = pop.n_households, cal.n_months
    line = policy.dibao_line[None, :]
    pc = per_capita_true(inc, pop)
    noise = rng.normal(0.0, 1.0, (6, n_h))

    # disability poverty: a severely disabled member (grade 1–2), low income, few working earners
    severe = _by_household(pop, np.isin(pop.disability, (1, 2)))
    supported = rng.random(n_h) < 0.25  # strong family support the data does not show
    disability = ((severe & ~supported)[:, None] & (pc < 1.5 * line * np.exp(0.2 * noise[0])[:, None])
                  & (inc.work_earners <= 1))

    # unemployment poverty: the main earner of a low/middle-income household lost a job, and the
    # household has run through its savings (months of buffer from deposits, partly unobserved)
    pdi = np.where(pop.rural, policy.pdi_rural, policy.pdi_urban) / 12
    modest = inc.base_per_capita < 0.9 * pdi * np.exp(0.2 * noise[1])
    monthly_need = np.maximum(inc.base_per_capita * pop.size, 1.0)
    buffer_months = np.clip(pop.financial_assets * rng.uniform(0.1, 0.5, n_h) / monthly_need, 0, 6)
    months_out = np.cumsum(inc.main_earner_out, axis=1)
    unemployment = (modest[:, None] & inc.main_earner_out & (months_out > np.round(buffer_months)[:, None])
                    & (pc < 2.5 * line * np.exp(0.25 * noise[2])[:, None]))

    # elderly care need: only elderly at home, someone ≥75 or ≥65 with disability/chronic illness;
    # onset by a hazard (higher with severe disability, low income, age), or after a stroke or injury
    head_age = pop.age
    all_old = np.bincount(pop.hh, weights=(head_age >= 60), minlength=n_h) == pop.size
    qualifies_p = (head_age >= 75) | ((head_age >= 65) & ((pop.disability > 0) | claims.chronic))
    qualifies = all_old & _by_household(pop, qualifies_p)
    oldest = np.zeros(n_h)
    np.maximum.at(oldest, pop.hh, head_age)
    hazard = (ELDERLY_HAZARD * np.where(severe, 2.5, 1.0) * np.where(pc[:, 0] < 2 * line[0, 0], 1.5, 1.0)
              * np.exp(0.06 * (oldest - 80)))
    prior = rng.random(n_h) < 1 - np.exp(-hazard * 24)  # already in need at the start
    onset = np.where(prior, 0, 1 + np.floor(np.log(rng.random(n_h)) / np.log1p(-np.minimum(hazard, 0.5))))
    onset = np.where(qualifies, onset, n_m)
    old_person = (pop.age >= 65) & all_old[pop.hh]
    event = _person_episode_active(pop, claims, n_m, (DX["cardio_cerebrovascular"], DX["injury"]), old_person)
    first_event = np.where(event.any(axis=1), event.argmax(axis=1) + 1, n_m)
    onset = np.where(rng.random(n_h) < 0.5, np.minimum(onset, first_event), onset)
    elderly = np.arange(n_m)[None, :] >= onset[:, None]

    # child in difficulty: children at home and no working adult, a severely ill or disabled parent,
    # or very low income — where the family has no support to fall back on
    has_child = _by_household(pop, pop.age < 18)
    parent = np.isin(pop.relation, (REL["head"], REL["spouse"]))
    parent_severe = (_by_household(pop, parent & np.isin(pop.disability, (1, 2)))[:, None]
                     | _person_episode_active(pop, claims, n_m, tuple(DX.values()), parent))
    fragile = rng.random(n_h) < 0.4
    child = ((has_child & fragile)[:, None]
             & (((inc.work_earners == 0) & (pc < 2 * line)) | (parent_severe & (pc < 3 * line))
                | (pc < line)))

    out = {}
    for name, matrix, min_len in (("disability_poverty", disability, 3),
                                  ("unemployment_poverty", unemployment, 2),
                                  ("elderly_care_need", elderly, 1),
                                  ("child_in_difficulty", child, 2)):
        row, start, end = episodes(matrix, min_len=min_len, fill_gap=2)
        out[name] = episode_matrix(n_h, n_m, row, start, end)
    return out
