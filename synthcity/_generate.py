"""``generate_city``: runs the stages in order and assembles the contract tables and the truth."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from features.tables import (
    DIAGNOSIS_GROUPS,
    EMPLOYMENT,
    FINDINGS,
    HOUSING,
    HUKOU_TYPES,
    RELATIONS,
    SETTINGS,
    SEXES,
    TABLE_COLUMNS,
    TOWNS_DEFAULT,
)
from synthcity._assistance import AssistanceBook
from synthcity._claims import Claims, generate_claims
from synthcity._common import Calendar, episodes, from_cents, id_strings, load_policy, spawn, string_column
from synthcity._households import Population, generate_population
from synthcity._income import generate_income, income_frame
from synthcity._latent import latent_hardship, per_capita_true
from synthcity._visits import RISKS, Outcome, simulate

log = logging.getLogger(__name__)
STAGES = ("households", "income", "claims", "latent hardship", "visits", "tables")


@dataclass(frozen=True)
class City:
    """A synthetic city: the six contract tables plus the latent ``truth`` (never a contract table).

    ``truth`` has one row per latent hardship episode: ``household_id``, ``finding`` (a contract
    finding other than ``not_in_need``), ``start_month`` and ``end_month`` (``'YYYY-MM'``, inclusive).
    It is for honest evaluation only: the service never sees it.
    """

    households: pd.DataFrame
    persons: pd.DataFrame
    income: pd.DataFrame
    claims: pd.DataFrame
    assistance: pd.DataFrame
    verifications: pd.DataFrame
    truth: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The six contract tables by name, in contract order."""
        return {name: getattr(self, name) for name in TABLE_COLUMNS}


def generate_city(n_households: int, *, end_month: str = "2026-10", n_months: int = 36, seed: int = 0,
                  progress: bool = False) -> City:
    """Generates ``n_households`` households over ``n_months`` months ending with ``end_month``.

    Deterministic: the same arguments give identical frames. Every date and month lies inside the
    span; money is yuan rounded to the cent. See ``synthcity/README.md`` for the generative story.
    """
    if n_households < 1:
        raise ValueError(f"n_households must be at least 1, got {n_households}")
    if n_months < 1:
        raise ValueError(f"n_months must be at least 1, got {n_months}")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", end_month):
        raise ValueError(f"end_month must be 'YYYY-MM', got {end_month!r}")
    cal = Calendar(end_month, n_months)
    policy = load_policy(cal)
    rng = spawn(seed, (*STAGES, "assistance"))
    bar = tqdm(total=len(STAGES), desc="synthcity", unit="stage", disable=not progress)

    def stage(name: str) -> None:
        bar.set_postfix_str(name)
        log.debug("synthcity stage %s", name)

    stage("households")
    pop = generate_population(rng["households"], n_households, cal)
    bar.update()
    stage("income")
    inc = generate_income(rng["income"], pop, cal, policy)
    bar.update()
    stage("claims")
    claims = generate_claims(rng["claims"], pop, cal, inc.employee_insured)
    bar.update()
    stage("latent hardship")
    latent = latent_hardship(rng["latent hardship"], pop, inc, claims, cal, policy)
    book = AssistanceBook(rng["assistance"], pop, cal)
    book.start_of_span(per_capita_true(inc, pop)[:, min(2, n_months - 1)] - inc.hidden / pop.size,
                       float(policy.dibao_line[0]))
    bar.update()
    stage("visits")
    outcome = simulate(rng["visits"], pop, inc, claims, latent, cal, policy, book)
    bar.update()
    stage("tables")
    # build the big frames one at a time and drop each stage's arrays once used (peak memory)
    hh_ids = id_strings("H", pop.n_households, 7)
    person_ids = id_strings("P", pop.n_persons, 8)
    persons = _persons_frame(pop, inc.employment_latest, hh_ids, person_ids)
    claims_frame = _claims_frame(claims, outcome, person_ids)
    del claims
    income = income_frame(inc, cal, person_ids)
    del inc
    city = City(
        households=_households_frame(pop, hh_ids),
        persons=persons,
        income=income,
        claims=claims_frame,
        assistance=book.frame(hh_ids),
        verifications=_verifications_frame(outcome, hh_ids),
        truth=_truth_frame(latent, outcome, cal, hh_ids),
    )
    bar.update()
    bar.close()
    log.info("synthcity: rows %s", {k: len(v) for k, v in {**city.tables(), "truth": city.truth}.items()})
    log.info("synthcity: visits %s", {k: int(v.sum()) for k, v in outcome.stats.items()})
    return city


def _households_frame(pop: Population, hh_ids: pa.Array) -> pd.DataFrame:
    return pd.DataFrame({
        "household_id": string_column(np.arange(pop.n_households), hh_ids),
        "town": string_column(pop.town, TOWNS_DEFAULT),
        "hukou_type": string_column(pop.rural.astype(np.int8), HUKOU_TYPES),
        "housing": string_column(pop.housing, HOUSING),
        "property_count": pop.property_count.astype(np.int64),
        "vehicle_count": pop.vehicle_count.astype(np.int64),
        "financial_assets": pop.financial_assets.astype(np.float64),
    })


def _persons_frame(pop: Population, employment: np.ndarray, hh_ids: pa.Array,
                   person_ids: pa.Array) -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": string_column(np.arange(pop.n_persons), person_ids),
        "household_id": string_column(pop.hh, hh_ids),
        "relation": string_column(pop.relation, RELATIONS),
        "sex": string_column((~pop.male).astype(np.int8), SEXES),
        "birth_date": pop.birth.astype("datetime64[ns]"),
        "employment": string_column(employment, EMPLOYMENT),
        "disability_grade": pop.disability.astype(np.int64),
    })


def _claims_frame(c: Claims, out: Outcome, person_ids: pa.Array) -> pd.DataFrame:
    return pd.DataFrame({
        "claim_id": string_column(np.arange(len(c.person)), id_strings("C", len(c.person), 9)),
        "person_id": string_column(c.person, person_ids),
        "service_date": c.day.astype("datetime64[ns]"),
        "setting": string_column(c.setting, SETTINGS),
        "diagnosis_group": string_column(c.diagnosis, DIAGNOSIS_GROUPS),
        "total_cost": from_cents(c.total),
        "fund_paid": from_cents(c.fund),
        "critical_illness_paid": from_cents(c.critical),
        "assistance_paid": from_cents(out.assistance_paid),
        "out_of_pocket": from_cents(out.out_of_pocket),
        "inpatient_days": c.inpatient_days.astype(np.int64),
    })


def _verifications_frame(out: Outcome, hh_ids: pa.Array) -> pd.DataFrame:
    order = np.lexsort((out.visit_finding, out.visit_household, out.visit_day))
    return pd.DataFrame({
        "household_id": string_column(out.visit_household[order], hh_ids),
        "visited_on": out.visit_day[order].astype("datetime64[ns]"),
        "finding": string_column(out.visit_finding[order], FINDINGS),
    })


def _truth_frame(latent: dict[str, np.ndarray], out: Outcome, cal: Calendar,
                 hh_ids: pa.Array) -> pd.DataFrame:
    parts = [(*out.illness_episodes, np.zeros(len(out.illness_episodes[0]), dtype=np.int64))]
    for code, risk in enumerate(RISKS[1:], start=1):
        row, start, end = episodes(latent[risk])
        parts.append((row, start, end, np.full(len(row), code)))
    hh, start, end, finding = (np.concatenate([p[i] for p in parts]) for i in range(4))
    order = np.lexsort((start, finding, hh))
    labels = cal.labels.tolist()
    return pd.DataFrame({
        "household_id": string_column(hh[order], hh_ids),
        "finding": string_column(finding[order], FINDINGS),
        "start_month": string_column(start[order], labels),
        "end_month": string_column(end[order], labels),
    })
