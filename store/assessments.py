"""Caseworkers' needs assessments (困难群众需求评估): what a visit found, domain by domain, tied to
the score request that prompted it.

An assessment holds, per domain it looked at, a level 0 (no need) to 3 (urgent) and the evidence in
the caseworker's words, with the assessor's pseudonymous id, the day of the visit and the version of
the instrument it filled. It lives beside the audit trail, in the same database (the table is in
``store.schema``, since migration 0003), and is append-only: a later visit adds a row, never edits
one; :mod:`domain.needs` lets the latest visit win per domain.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from store.schema import assessments


@dataclass(frozen=True)
class DomainFinding:
    domain: str
    level: int
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "level": self.level, "evidence": self.evidence}


@dataclass(frozen=True)
class Assessment:
    assessment_id: str
    request_id: str
    household_id: str
    town: str | None
    assessed_on: str  # YYYY-MM-DD, the day of the visit
    assessor: str
    instrument_version: str
    domains: tuple[DomainFinding, ...]
    note: str | None
    recorded_at: dt.datetime
    caller: dict[str, str]  # {"role", "key_id"} of who recorded it

    def as_dict(self) -> dict[str, Any]:
        return {"assessment_id": self.assessment_id, "request_id": self.request_id,
                "household_id": self.household_id, "town": self.town, "assessed_on": self.assessed_on,
                "assessor": self.assessor, "instrument_version": self.instrument_version,
                "domains": [d.as_dict() for d in self.domains], "note": self.note,
                "recorded_at": self.recorded_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "caller": self.caller}


def _to_assessment(row: Any) -> Assessment:
    recorded = row["recorded_at"]
    if recorded.tzinfo is None:  # SQLite keeps no time zone: it was stored as UTC
        recorded = recorded.replace(tzinfo=dt.UTC)
    return Assessment(assessment_id=row["assessment_id"], request_id=row["request_id"],
                      household_id=row["household_id"], town=row["town"], assessed_on=row["assessed_on"],
                      assessor=row["assessor"], instrument_version=row["instrument_version"],
                      domains=tuple(DomainFinding(d["domain"], int(d["level"]), d["evidence"])
                                    for d in json.loads(row["domains"])),
                      note=row["note"], recorded_at=recorded, caller=json.loads(row["caller"]))


class AssessmentStore:
    """Reads and writes the ``assessments`` table on the audit store's engine (created by
    ``AuditStore.create``). Append-only: there is no update and no delete."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, *, request_id: str, household_id: str, town: str | None, assessed_on: dt.date, assessor: str,
            instrument_version: str, domains: Sequence[DomainFinding], note: str | None,
            caller: dict[str, str]) -> Assessment:
        """Stores one visit's assessment and returns it (with its new ``assessment_id``). The caller
        has checked it (domains of the instrument, levels 0–3, dates)."""
        row = {"assessment_id": uuid.uuid4().hex, "request_id": request_id, "household_id": household_id,
               "town": town, "assessed_on": assessed_on.isoformat(), "assessor": assessor,
               "instrument_version": instrument_version,
               "domains": json.dumps([d.as_dict() for d in domains], ensure_ascii=False, separators=(",", ":")),
               "note": note, "recorded_at": dt.datetime.now(dt.UTC),
               "caller": json.dumps(caller, separators=(",", ":"))}
        with self.engine.begin() as conn:
            conn.execute(insert(assessments).values(**row))
        return _to_assessment(row)

    def get(self, assessment_id: str) -> Assessment | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(assessments).where(assessments.c.assessment_id == assessment_id)
                               ).mappings().first()
        return None if row is None else _to_assessment(row)

    def for_household(self, household_id: str, limit: int = 200) -> list[Assessment]:
        """The household's assessments, newest recorded first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(assessments).where(assessments.c.household_id == household_id)
                                .order_by(assessments.c.id.desc()).limit(limit)).mappings().all()
        return [_to_assessment(r) for r in rows]
