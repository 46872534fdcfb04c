"""The audit store: one record per scored household, written before the response is returned.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) in production. A record keeps what was
received (identifiers as the platform pseudonymised them), the model versions, the raw scores, the
full contribution vectors and the response exactly as returned.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

metadata = MetaData()

audit_records = Table(
    "audit_records", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("kind", String(16), nullable=False),          # "score" or "batch"
    Column("household_id", String(64), nullable=False),
    Column("as_of", String(10), nullable=False),
    Column("models", Text, nullable=False),              # JSON: [{"name", "version"}]
    Column("request", Text, nullable=False),             # JSON: the bundle as received and validated
    Column("scores", Text, nullable=False),              # JSON: per risk raw_score, base_value, contributions
    Column("response", Text, nullable=False),            # JSON: exactly what was returned
    Index("ix_audit_household", "household_id"),
    Index("ix_audit_created", "created_at"),
)


class AuditUnavailable(RuntimeError):
    """The store could not be reached or did not commit: the score must not be returned."""


@dataclass(frozen=True)
class AuditRecord:
    request_id: str
    created_at: dt.datetime
    kind: str
    household_id: str
    as_of: str
    models: list[dict[str, str]]
    request: dict[str, Any]
    scores: list[dict[str, Any]]
    response: dict[str, Any]


def _dumps(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class AuditStore:
    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
        self.url = url
        self.engine: Engine = create_engine(url, **kwargs)

    def create(self) -> None:
        metadata.create_all(self.engine)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not reachable"; the reason is logged by the caller
            return False

    def write(self, records: list[AuditRecord]) -> None:
        """All records in one transaction; raises :class:`AuditUnavailable` if it does not commit."""
        rows = [{
            "request_id": r.request_id, "created_at": r.created_at, "kind": r.kind, "household_id": r.household_id,
            "as_of": r.as_of, "models": _dumps(r.models), "request": _dumps(r.request),
            "scores": _dumps(r.scores), "response": _dumps(r.response),
        } for r in records]
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(audit_records), rows)
        except Exception as exc:
            raise AuditUnavailable(f"audit store did not commit: {type(exc).__name__}") from exc

    def get(self, request_id: str) -> AuditRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_records).where(audit_records.c.request_id == request_id)).mappings().first()
        if row is None:
            return None
        created = row["created_at"]
        if created.tzinfo is None:  # SQLite drops the zone; records are written in UTC
            created = created.replace(tzinfo=dt.UTC)
        return AuditRecord(
            request_id=row["request_id"], created_at=created, kind=row["kind"], household_id=row["household_id"],
            as_of=row["as_of"], models=json.loads(row["models"]), request=json.loads(row["request"]),
            scores=json.loads(row["scores"]), response=json.loads(row["response"]),
        )

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(text("count(*)")).select_from(audit_records)).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()
