"""Each household's plan (一户一策) kept beside the audit trail: its measures (``plan_measures``: what,
the owner department, the due date, what proposed it) and every move of a measure's status
(``plan_events``: the status, who, on which day, why). Both tables are append-only: a measure is
never edited, its status is its latest event's, and history is never rewritten.

Which moves are allowed is the domain's business (:mod:`domain.plans`); this module only makes sure
a move is appended to the state it was checked against (:class:`StaleStatus` otherwise), so two
caseworkers moving one measure at once cannot both succeed from the same status.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from store.schema import plan_events, plan_measures


@dataclass(frozen=True)
class PlanEvent:
    status: str
    actor: str
    happened_on: str  # YYYY-MM-DD, as the caseworker gave it
    note: str | None
    recorded_at: dt.datetime
    caller: dict[str, str] | None = None


@dataclass(frozen=True)
class PlanMeasure:
    measure_id: str
    household_id: str
    town: str | None
    measure: str  # a [[measure]] id of the policy file
    owner: str    # a [[department]] id
    due: str      # YYYY-MM-DD
    proposed_because: list[dict[str, Any]]
    created_at: dt.datetime
    caller: dict[str, str] | None = None
    events: list[PlanEvent] = field(default_factory=list)  # oldest first

    @property
    def status(self) -> str | None:
        """The latest event's status (None only for a measure written without its first event)."""
        return self.events[-1].status if self.events else None


class StaleStatus(RuntimeError):
    """The measure's status is no longer the one the move was checked against (or it is unknown)."""

    def __init__(self, measure_id: str, expected: str | None, found: str | None) -> None:
        super().__init__(f"measure {measure_id} is {found!r}, not {expected!r}")
        self.expected, self.found = expected, found


def measure_key(household_id: str, measure: str) -> str:
    """A plan measure's id: the same for the same household and measure, so a measure is in a plan at
    most once even when two drafts race (the column is unique)."""
    return hashlib.sha256(f"{household_id}\x1f{measure}".encode()).hexdigest()[:32]


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _caller_json(caller: Mapping[str, str] | None) -> str:
    return json.dumps(dict(caller or {}), separators=(",", ":"))


def _event(row: Any) -> PlanEvent:
    return PlanEvent(status=row["status"], actor=row["actor"], happened_on=row["happened_on"], note=row["note"],
                     recorded_at=_utc(row["recorded_at"]), caller=json.loads(row["caller"]) or None)


def _measure(row: Any, events: list[PlanEvent]) -> PlanMeasure:
    return PlanMeasure(measure_id=row["measure_id"], household_id=row["household_id"], town=row["town"],
                       measure=row["measure"], owner=row["owner"], due=row["due"],
                       proposed_because=json.loads(row["proposed_because"]), created_at=_utc(row["created_at"]),
                       caller=json.loads(row["caller"]) or None, events=events)


class PlanStore:
    """Reads and appends households' plans on the audit store's engine (tables created by ``AuditStore.create``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_measures(self, household_id: str, town: str | None, drafted: Iterable[Mapping[str, Any]], *,
                     actor: str, on: dt.date, caller: Mapping[str, str] | None = None) -> list[PlanMeasure]:
        """Adds each drafted measure (``{"measure", "owner", "due", "proposed_because"}``) the plan does
        not hold yet (in any status) with its ``proposed`` event by ``actor`` on ``on``, in one
        transaction; returns the measures added (none when the plan already held them all)."""
        now = dt.datetime.now(dt.UTC)
        rows, events = [], []
        with self.engine.connect() as conn:
            held = set(conn.execute(select(plan_measures.c.measure)
                                    .where(plan_measures.c.household_id == household_id)).scalars())
        for d in drafted:
            if d["measure"] in held:
                continue
            held.add(d["measure"])
            mid = measure_key(household_id, d["measure"])
            rows.append({"measure_id": mid, "household_id": household_id, "town": town, "measure": d["measure"],
                         "owner": d["owner"], "due": d["due"],
                         "proposed_because": json.dumps(list(d["proposed_because"]), ensure_ascii=False,
                                                        separators=(",", ":")),
                         "created_at": now, "caller": _caller_json(caller)})
            events.append({"measure_id": mid, "household_id": household_id, "status": "proposed", "actor": actor,
                           "happened_on": on.isoformat(), "note": None, "recorded_at": now,
                           "caller": _caller_json(caller)})
        if not rows:
            return []
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(plan_measures), rows)
                conn.execute(insert(plan_events), events)
        except IntegrityError:  # a draft running at the same time added them first: nothing is new
            return []
        ev = {e["measure_id"]: [_event(e)] for e in events}
        return [_measure(r, ev[r["measure_id"]]) for r in rows]

    def add_event(self, measure_id: str, expected: str, status: str, *, actor: str, on: dt.date,
                  note: str | None = None, caller: Mapping[str, str] | None = None) -> PlanMeasure:
        """Appends a move of the measure to ``status``, provided its status is still ``expected``
        (:class:`StaleStatus` otherwise, and nothing is written); returns the measure with it."""
        with self.engine.begin() as conn:
            # PostgreSQL: hold the measure's row so a concurrent move waits, then sees the new status
            row = conn.execute(select(plan_measures).where(plan_measures.c.measure_id == measure_id)
                               .with_for_update()).mappings().first()
            found = self._events(conn, [measure_id]).get(measure_id, []) if row is not None else []
            current = found[-1].status if found else None
            if row is None or current != expected:
                raise StaleStatus(measure_id, expected, current)
            values = {"measure_id": measure_id, "household_id": row["household_id"], "status": status,
                      "actor": actor, "happened_on": on.isoformat(), "note": note,
                      "recorded_at": dt.datetime.now(dt.UTC), "caller": _caller_json(caller)}
            conn.execute(insert(plan_events).values(**values))
        return _measure(row, [*found, _event(values)])

    @staticmethod
    def _events(conn: Connection, measure_ids: Collection[str]) -> dict[str, list[PlanEvent]]:
        out: dict[str, list[PlanEvent]] = {}
        if not measure_ids:
            return out
        for r in conn.execute(select(plan_events).where(plan_events.c.measure_id.in_(list(measure_ids)))
                              .order_by(plan_events.c.id)).mappings():
            out.setdefault(r["measure_id"], []).append(_event(r))
        return out

    def _read(self, *where: Any) -> list[PlanMeasure]:
        with self.engine.connect() as conn:
            stmt = select(plan_measures).order_by(plan_measures.c.id)
            rows = conn.execute(stmt.where(*where) if where else stmt).mappings().all()
            events = self._events(conn, [r["measure_id"] for r in rows])
        return [_measure(r, events.get(r["measure_id"], [])) for r in rows]

    def plan(self, household_id: str) -> list[PlanMeasure]:
        """The household's measures in the order they were added, each with its events oldest first."""
        return self._read(plan_measures.c.household_id == household_id)

    def measure(self, measure_id: str) -> PlanMeasure | None:
        found = self._read(plan_measures.c.measure_id == measure_id)
        return found[0] if found else None

    def overdue(self, as_of: dt.date, final: Collection[str]) -> list[PlanMeasure]:
        """Measures not in a ``final`` status whose due date is before ``as_of``, by town, then due date."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(plan_measures).where(plan_measures.c.due < as_of.isoformat())
                                .order_by(plan_measures.c.id)).mappings().all()
            events: dict[str, list[PlanEvent]] = {}
            ids = [r["measure_id"] for r in rows]
            for k in range(0, len(ids), 1000):  # bounded IN lists
                events |= self._events(conn, ids[k:k + 1000])
        out = [_measure(r, events.get(r["measure_id"], [])) for r in rows]
        out = [m for m in out if m.status not in final]
        return sorted(out, key=lambda m: (m.town or "", m.due, m.household_id, m.measure))

    def all(self) -> list[PlanMeasure]:
        """Every measure with its events (the funnel reads them)."""
        return self._read()
