"""Caseworkers' feedback: what a visit found, tied to the score request that prompted it.

A feedback row is a verification in the contract's sense (household_id, visited_on, finding, one
row per finding), so it can join the platform's ``verifications`` table as labels on the next
retrain (``relief-risk train --feedback-url``, as ``training.feedback.FeedbackLabels``). It lives
beside the audit trail, in the same database (the table is in ``store.schema``), and is
append-only: one feedback per prompting request; posting the same visit again returns the stored
one, posting a different outcome for the same request is a conflict.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from store.audit import AuditRecord
from store.schema import feedback_table

FINDINGS = ("illness_poverty", "disability_poverty", "unemployment_poverty", "elderly_care_need",
            "child_in_difficulty", "not_in_need")

@dataclass(frozen=True)
class Feedback:
    feedback_id: str
    request_id: str
    household_id: str
    as_of: str
    visited_on: str
    findings: list[str]
    flagged_risks: list[str]
    model_versions: dict[str, str]
    recorded_at: dt.datetime
    caller: dict[str, str] | None = None  # {"role", "key_id"} of who recorded it

    @property
    def confirmed(self) -> list[str]:
        """The flagged risks the visit found."""
        return [r for r in self.flagged_risks if r in self.findings]

    def as_dict(self) -> dict[str, Any]:
        return {"feedback_id": self.feedback_id, "request_id": self.request_id, "household_id": self.household_id,
                "as_of": self.as_of, "visited_on": self.visited_on, "findings": self.findings,
                "flagged_risks": self.flagged_risks, "confirmed": self.confirmed,
                "model_versions": self.model_versions,
                "recorded_at": self.recorded_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "caller": self.caller}


class FeedbackConflict(ValueError):
    def __init__(self, existing: Feedback) -> None:
        super().__init__(f"request {existing.request_id} already has feedback {existing.feedback_id} "
                         "with a different outcome")
        self.existing = existing


def _split(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def _to_feedback(row: Any) -> Feedback:
    recorded = row["recorded_at"]
    if recorded.tzinfo is None:
        recorded = recorded.replace(tzinfo=dt.UTC)
    versions = dict(x.split(":", 1) for x in _split(row["model_versions"]))
    return Feedback(feedback_id=row["feedback_id"], request_id=row["request_id"], household_id=row["household_id"],
                    as_of=row["as_of"], visited_on=row["visited_on"], findings=_split(row["findings"]),
                    flagged_risks=_split(row["flagged_risks"]), model_versions=versions, recorded_at=recorded,
                    caller=json.loads(row["caller"]) if row.get("caller") else None)


class FeedbackStore:
    """Reads and writes the ``feedback`` table on the audit store's engine (created by ``AuditStore.create``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, prompt: AuditRecord, visited_on: dt.date, findings: list[str],
            caller: dict[str, str] | None = None) -> tuple[Feedback, bool]:
        """Stores the visit; returns (feedback, created). The same outcome posted again returns the
        stored feedback with ``created`` False; a different one raises :class:`FeedbackConflict`.
        ``caller``: who recorded it ({"role", "key_id"})."""
        flagged = sorted({s["risk"] for s in prompt.scores if s.get("flagged")})
        row = {"feedback_id": uuid.uuid4().hex, "request_id": prompt.request_id, "household_id": prompt.household_id,
               "as_of": prompt.as_of, "visited_on": visited_on.isoformat(), "findings": ",".join(sorted(set(findings))),
               "flagged_risks": ",".join(flagged),
               "model_versions": ",".join(f"{m['name']}:{m['version']}" for m in prompt.models),
               "recorded_at": dt.datetime.now(dt.UTC),
               "caller": None if caller is None else json.dumps(caller, separators=(",", ":"))}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(feedback_table).values(**row))
            return _to_feedback(row), True
        except IntegrityError:
            existing = self.get(prompt.request_id)
            if existing is None:  # the unique clash was not ours: let the caller see a store failure
                raise
            if existing.visited_on == row["visited_on"] and existing.findings == _split(row["findings"]):
                return existing, False
            raise FeedbackConflict(existing) from None

    def get(self, request_id: str) -> Feedback | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(feedback_table).where(feedback_table.c.request_id == request_id)
                               ).mappings().first()
        return None if row is None else _to_feedback(row)

    def for_household(self, household_id: str, limit: int = 200) -> list[Feedback]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feedback_table).where(feedback_table.c.household_id == household_id)
                                .order_by(feedback_table.c.id.desc()).limit(limit)).mappings().all()
        return [_to_feedback(r) for r in rows]

    def all(self) -> list[Feedback]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feedback_table).order_by(feedback_table.c.id)).mappings().all()
        return [_to_feedback(r) for r in rows]

    def confirmation(self) -> dict[str, dict[str, float | int | None]]:
        """Per risk: of the visits prompted by a request that flagged it, how many found that need
        (``confirmed``) and how many found any need at all (``any_need``)."""
        out: dict[str, dict[str, float | int | None]] = {}
        for fb in self.all():
            need = any(f != "not_in_need" for f in fb.findings)
            for risk in fb.flagged_risks:
                c = out.setdefault(risk, {"flagged_visits": 0, "confirmed": 0, "any_need": 0})
                c["flagged_visits"] += 1
                c["confirmed"] += int(risk in fb.findings)
                c["any_need"] += int(need)
        for c in out.values():
            n = c["flagged_visits"] or 0
            c["confirmed_rate"] = (c["confirmed"] / n) if n else None
            c["any_need_rate"] = (c["any_need"] / n) if n else None
        return out


def feedback_verifications(url: str) -> pd.DataFrame:
    """The feedback as rows of the contract's ``verifications`` table (one row per finding)."""
    from store.audit import AuditStore

    store = AuditStore(url)
    try:
        rows = [{"household_id": fb.household_id, "visited_on": fb.visited_on, "finding": f}
                for fb in FeedbackStore(store.engine).all() for f in fb.findings]
    finally:
        store.dispose()
    frame = pd.DataFrame(rows, columns=["household_id", "visited_on", "finding"])
    frame["visited_on"] = pd.to_datetime(frame["visited_on"])
    return frame
