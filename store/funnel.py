"""What the funnel from discovery to help (:mod:`domain.funnel`) counts, read from the store: per risk
and household the first flag (an API audit record or a nightly batch score that flagged that
risk), and per household the days of visits (feedback), of assessments that found any need (a
domain level ≥ 1), of plan measures drafted and of measures delivered.

A flag's day is the ``as_of`` of the request or batch run that raised it: the day the household
was judged as of, which visits and help follow. A purged audit record no longer says which risk it
flagged, so it counts for none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from store.schema import (
    assessments,
    audit_records,
    batch_runs,
    batch_scores,
    feedback_table,
    plan_events,
)


@dataclass
class FunnelFacts:
    # (risk, household_id) → (town, first flag day YYYY-MM-DD)
    flags: dict[tuple[str, str], tuple[str | None, str]] = field(default_factory=dict)
    visits: dict[str, list[str]] = field(default_factory=dict)      # household → visit days, sorted
    needs: dict[str, list[str]] = field(default_factory=dict)       # household → days an assessment found need
    plans: dict[str, list[str]] = field(default_factory=dict)       # household → days plan measures were drafted
    delivered: dict[str, list[str]] = field(default_factory=dict)   # household → days measures were delivered

    def flag(self, risk: str, household_id: str, town: str | None, day: str) -> None:
        seen = self.flags.get((risk, household_id))
        if seen is None or day < seen[1]:
            self.flags[(risk, household_id)] = (town if town is not None else (seen[0] if seen else None), day)


def _days(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for hid, day in pairs:
        out.setdefault(hid, []).append(day)
    return {h: sorted(d) for h, d in out.items()}


def _any_need(domains_json: str) -> bool:
    try:
        domains: Any = json.loads(domains_json)
        return any(isinstance(d, dict) and isinstance(d.get("level"), int) and d["level"] >= 1 for d in domains)
    except (ValueError, TypeError):
        return False


def funnel_facts(engine: Engine) -> FunnelFacts:
    """Everything the funnel needs, in one read of the store (counts are made by the domain)."""
    facts = FunnelFacts()
    with engine.connect() as conn:
        for row in conn.execute(select(audit_records.c.household_id, audit_records.c.town, audit_records.c.as_of,
                                       audit_records.c.response)
                                .where(audit_records.c.flagged.is_(True), audit_records.c.purged_at.is_(None))):
            try:
                scores = json.loads(row.response).get("scores", [])
            except (ValueError, AttributeError):
                continue
            for s in scores:
                if isinstance(s, dict) and s.get("flagged"):
                    facts.flag(s["risk"], row.household_id, row.town, row.as_of)
        # a flagged batch score holds a JSON true; most rows hold none and are skipped by the database
        for row in conn.execute(select(batch_scores.c.household_id, batch_scores.c.town, batch_scores.c.scores,
                                       batch_runs.c.as_of)
                                .join(batch_runs, batch_runs.c.run_id == batch_scores.c.run_id)
                                .where(batch_scores.c.scores.like("%true%"))):
            for risk, (_, _, flagged) in json.loads(row.scores).items():
                if flagged:
                    facts.flag(risk, row.household_id, row.town, row.as_of)
        facts.visits = _days(conn.execute(select(feedback_table.c.household_id, feedback_table.c.visited_on))
                             .tuples())
        facts.needs = _days((r.household_id, r.assessed_on) for r in conn.execute(
            select(assessments.c.household_id, assessments.c.assessed_on, assessments.c.domains))
            if _any_need(r.domains))
        # a measure's drafting day is its "proposed" event's, as the caseworker dated the draft
        facts.plans = _days(conn.execute(select(plan_events.c.household_id, plan_events.c.happened_on)
                                         .where(plan_events.c.status == "proposed")).tuples())
        facts.delivered = _days(conn.execute(select(plan_events.c.household_id, plan_events.c.happened_on)
                                             .where(plan_events.c.status == "delivered")).tuples())
    return facts
