"""The monthly simulation: medical assistance on claims, today's rules, tips, reviews and visits.

Each month (a loop over months, vectorised over households):

1. claims of the month get medical assistance if the household is on 低保/边缘/特困, and the rest is
   out of pocket;
2. today's rules (domain.md; thresholds from the policy file's ``[rules]``) fire on persons whose
   yearly out-of-pocket crosses 10,000 (low-income) / 26,000 yuan (others) or 50% / 100% of rural
   per-capita disposable income, or who had a stay with more than 6,000 / 10,000 yuan out of pocket;
   a fired household is visited with probability 0.35 after 1–3 months;
3. illness-induced poverty advances (:mod:`synthcity._illness`);
4. neighbours and village cadres tip off households in latent hardship (3.5% a month per active
   finding) and, rarely, others (0.06%); tips are visited within a month;
5. recipients of 低保/边缘/特困 are reviewed (4% a month) and a few households are drawn at random;
6. visits find each active hardship with probability 0.85 and an absent one rarely (0.4%);
   nobody is visited again within 6 months. Found households may get assistance next month.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features.tables import FINDINGS
from synthcity._assistance import MA_SHARE, NONE, PRG, AssistanceBook
from synthcity._claims import SET, Claims
from synthcity._common import Calendar, Policy
from synthcity._households import Population
from synthcity._illness import IllnessPoverty
from synthcity._income import Income

RISKS = FINDINGS[:-1]  # every finding but not_in_need, in contract order
NOT_IN_NEED = len(FINDINGS) - 1
P_RULE_VISIT, P_TIP_ACTIVE, P_TIP_OTHER, P_REVIEW, P_RANDOM = 0.35, 0.035, 0.0006, 0.04, 0.0003
P_FOUND, P_FALSE = 0.85, 0.004
REVISIT_GAP = 6  # months
REASONS = ("rule", "tip", "review")
RECIPIENTS = (PRG["dibao"], PRG["dibao_edge"], PRG["tekun"])


@dataclass
class Outcome:
    """What the loop produced: settled claims, visit findings, latent illness episodes, stats."""

    assistance_paid: np.ndarray  # cents, aligned with the claims
    out_of_pocket: np.ndarray  # cents
    visit_household: np.ndarray  # one entry per finding row
    visit_day: np.ndarray
    visit_finding: np.ndarray
    illness_episodes: tuple[np.ndarray, np.ndarray, np.ndarray]
    rule_fired: np.ndarray  # (households,) bool: a rule fired at least once
    stats: dict[str, np.ndarray] = field(default_factory=dict)  # per month: visits by reason, in need


def simulate(rng: np.random.Generator, pop: Population, inc: Income, claims: Claims,
             latent: dict[str, np.ndarray], cal: Calendar, policy: Policy, book: AssistanceBook) -> Outcome:
    """Runs the months in order; mutates ``book`` (assistance history) and returns the rest."""
    n_h, n_p, n_m = pop.n_households, pop.n_persons, cal.n_months
    rules = policy.rules
    bounds = np.searchsorted(claims.month, np.arange(n_m + 1))
    ma = np.zeros(len(claims.person), dtype=np.int64)
    oop = np.zeros(len(claims.person), dtype=np.int64)
    hh_oop = np.zeros((n_h, n_m))
    cash = np.zeros((n_h, n_m))  # assistance cash (低保, 特困) per household-month, yuan
    hh_income = inc.household_true + inc.hidden[:, None]
    reported_cum = np.cumsum(inc.household_reported, axis=1)
    eligible = _false_positive_eligibility(pop)
    illness = IllnessPoverty(rng, pop)
    ytd = np.zeros(n_p, dtype=np.int64)
    oop12 = np.zeros(n_h)
    income12 = np.zeros(n_h)
    last_visit = np.full(n_h, -REVISIT_GAP, dtype=np.int64)
    scheduled = np.full(n_h, -1, dtype=np.int64)
    reason = np.zeros(n_h, dtype=np.int64)
    rule_fired = np.zeros(n_h, dtype=bool)
    visits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    stats = {k: np.zeros(n_m, dtype=np.int64)
             for k in ("visits", "in_need", *REASONS, *(f"{r}_in_need" for r in REASONS))}
    pdi_rural = policy.pdi_rural

    for m in range(n_m):
        line = float(policy.dibao_line[m])
        book.expire(m)
        # 1. medical assistance and out of pocket for this month's claims
        sl = slice(bounds[m], bounds[m + 1])
        person = claims.person[sl]
        hh = pop.hh[person]
        ma[sl] = np.floor(MA_SHARE[book.program[hh] + 1] * claims.assist_base[sl]).astype(np.int64)
        oop[sl] = claims.total[sl] - claims.fund[sl] - claims.critical[sl] - ma[sl]
        hh_oop[:, m] = np.bincount(hh, weights=oop[sl], minlength=n_h) / 100
        cash[:, m] = book.cash()
        oop12 += hh_oop[:, m] - (hh_oop[:, m - 12] if m >= 12 else 0.0)
        income12 += hh_income[:, m] + cash[:, m]
        if m >= 12:
            income12 -= hh_income[:, m - 12] + cash[:, m - 12]

        # 2. today's rules, on persons (they ignore household income and size)
        if cal.calendar_month[m] == 1:
            ytd[:] = 0
        before = ytd.copy()
        ytd += np.bincount(person, weights=oop[sl], minlength=n_p).astype(np.int64)
        months_known = min(m + 1, 12)
        reported12 = reported_cum[:, m] - (reported_cum[:, m - 12] if m >= 12 else 0.0)
        low = (book.program != NONE) | (reported12 / months_known / pop.size < policy.edge_multiple * line)
        low_p = low[pop.hh]
        fired = np.zeros(n_p, dtype=bool)
        for share_low, share_general in ((rules["xian_burden_low_income"], rules["xian_burden_general"]),
                                         (rules["yangyuan_share_monitored"] * pdi_rural,
                                          rules["yangyuan_share_general"] * pdi_rural)):
            thr = np.where(low_p, share_low, share_general) * 100
            fired |= (before <= thr) & (ytd > thr)
        stay = claims.setting[sl] == SET["inpatient"]
        stay_thr = np.where(low[hh], rules["single_stay_monitored"], rules["single_stay_general"]) * 100
        fired[person[stay & (oop[sl] > stay_thr)]] = True
        rule_h = np.bincount(pop.hh[fired], minlength=n_h) > 0
        rule_fired |= rule_h

        # 3. latent illness-induced poverty and the other hardships now
        annualise = 12 / months_known
        active = np.column_stack([illness.step(m, oop12, income12 * annualise, line),
                                  *(latent[r][:, m] for r in RISKS[1:])])
        n_active = active.sum(axis=1)

        # 4–5. who gets a visit, and when
        u = rng.random((3, n_h))
        p_tip = np.where(n_active > 0, 1 - (1 - P_TIP_ACTIVE) ** n_active, P_TIP_OTHER)
        review = (np.isin(book.program, RECIPIENTS) & (u[2] < P_REVIEW)) | (u[2] > 1 - P_RANDOM)
        candidates = (
            (0, rule_h & (u[0] < P_RULE_VISIT), m + rng.integers(1, 4, n_h)),
            (1, u[1] < p_tip, m + rng.integers(0, 2, n_h)),
            (2, review, np.full(n_h, m)),
        )
        for code, want, when in candidates:
            ok = want & (scheduled < 0) & (when < n_m) & (when - last_visit >= REVISIT_GAP)
            scheduled[ok], reason[ok] = when[ok], code

        # 6. today's visits and their findings
        idx = np.nonzero(scheduled == m)[0]
        act = active[idx]
        draw = rng.random(act.shape)
        found = (act & (draw < P_FOUND)) | (~act & eligible[idx] & (draw < P_FALSE))
        day = cal.random_day(rng, np.full(len(idx), m))
        rows, cols = np.nonzero(found)
        none = ~found.any(axis=1)
        visits.append((np.r_[idx[rows], idx[none]], np.r_[day[rows], day[none]],
                       np.r_[cols, np.full(none.sum(), NOT_IN_NEED)]))
        last_visit[idx], scheduled[idx] = m, -1
        for code, key in enumerate(REASONS):
            stats[key][m] = int((reason[idx] == code).sum())
            stats[f"{key}_in_need"][m] = int(((reason[idx] == code) & ~none).sum())
        stats["visits"][m], stats["in_need"][m] = len(idx), int((~none).sum())
        pc_now = hh_income[idx, max(m - 2, 0):m + 1].mean(axis=1) - inc.hidden[idx]
        per_capita = np.zeros(n_h)
        per_capita[idx] = pc_now / pop.size[idx]
        book.after_visit(idx, ~none, found[:, 0], reason[idx] == 2, m, day, per_capita, oop12, line)

    hh_v, day_v, finding_v = (np.concatenate([v[i] for v in visits]) for i in range(3))
    return Outcome(assistance_paid=ma, out_of_pocket=oop, visit_household=hh_v, visit_day=day_v,
                   visit_finding=finding_v, illness_episodes=illness.episodes(n_m - 1), rule_fired=rule_fired,
                   stats=stats)


def _false_positive_eligibility(pop: Population) -> np.ndarray:
    """(households × risks) where a caseworker could plausibly record a finding that is not there."""
    n = pop.n_households

    def anyone(mask: np.ndarray) -> np.ndarray:
        return np.bincount(pop.hh, weights=mask, minlength=n) > 0

    return np.column_stack([
        np.ones(n, dtype=bool),  # illness poverty
        anyone(pop.disability > 0),
        anyone((pop.age >= 18) & (pop.age < 60)),
        anyone(pop.age >= 65),
        anyone(pop.age < 18),
    ])
