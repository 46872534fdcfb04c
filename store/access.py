"""The access log: who read which household's personal data, when, and how much.

Every read of personal data through the service (a household file, an audit record, an audit
search or its CSV export, a case page, a policy check, the access log itself) appends one event:
the time, the caller (role and key fingerprint, never the key), the action, the households and
requests it showed, and how many records. Events are append-only and hash-chained exactly like the
audit trail (their chain head is row 2 of ``audit_chain``; writers take the same turn), so an edit,
a deletion or a reordering is found by :meth:`AccessLog.verify`, and the signed checkpoints of
:mod:`store.checkpoint` cover this chain too.

An event is written before the data is answered: a read the log cannot record is not answered.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, insert, select

from features.labels import ACTIONS as ACTION_LABELS
from store.audit import (
    ACCESS_CHAIN,
    AuditStore,
    Chain,
    ChainProblem,
    _db_time,
    _utc_text,
    hash_parts,
    utc,
    walk_chain,
)
from store.schema import access_log, access_targets

ACTIONS = tuple(ACTION_LABELS)  # the actions an event may name: the keys of their Chinese names, one list
TARGETS_PER_EVENT = 2000  # an audit page holds at most 1,000 records: their request and household ids


class AccessUnavailable(RuntimeError):
    """The access log did not commit: the read is not answered."""


@dataclass(frozen=True)
class Caller:
    """Who asked: the role the key used and the key's fingerprint (:func:`serving.settings.key_id`),
    and the towns the key is limited to (None: every town)."""

    role: str
    key_id: str
    towns: frozenset[str] | None = None

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "key_id": self.key_id}

    def json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    def may_see(self, town: str | None) -> bool:
        """Whether the caller may see a household of ``town`` (unknown town: only unscoped callers)."""
        return self.towns is None or (town is not None and town in self.towns)


@dataclass(frozen=True)
class AccessEvent:
    action: str
    caller: Caller
    households: tuple[str, ...] = ()
    requests: tuple[str, ...] = ()
    count: int = 0
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    seq: int | None = None
    prev_hash: str | None = None
    record_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "created_at": utc(self.created_at).isoformat().replace("+00:00", "Z"),
                "caller": self.caller.as_dict(), "action": self.action, "households": list(self.households),
                "requests": list(self.requests), "result_count": self.count}


def _targets_json(households: Iterable[str], requests: Iterable[str]) -> str:
    return json.dumps({"households": list(households), "requests": list(requests)}, ensure_ascii=False,
                      separators=(",", ":"))


def event_parts(prev_hash: str, row: dict[str, Any]) -> list[str]:
    """What an event's hash is taken over: the previous hash and the event's columns, in a fixed order."""
    return ["access", prev_hash, str(row["seq"]), _utc_text(row["created_at"]), row["role"], row["key_id"],
            row["action"], row["targets"], str(row["result_count"])]


def event_hash(prev_hash: str, row: dict[str, Any]) -> str:
    return hash_parts(event_parts(prev_hash, row))


def _unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _to_event(row: Any) -> AccessEvent:
    targets = json.loads(row["targets"])
    return AccessEvent(action=row["action"], caller=Caller(row["role"], row["key_id"]),
                       households=tuple(targets["households"]), requests=tuple(targets["requests"]),
                       count=row["result_count"], created_at=utc(row["created_at"]), seq=row["seq"],
                       prev_hash=row["prev_hash"], record_hash=row["record_hash"])


class AccessLog:
    """The access log on the audit store's database (its tables are made by ``AuditStore.create``)."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    def record(self, action: str, caller: Caller, households: Iterable[str] = (), requests: Iterable[str] = (),
               count: int | None = None) -> AccessEvent:
        """Appends one event in its own transaction; raises :class:`AccessUnavailable` if it did not
        commit (then the read must not be answered)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown access action {action!r}; known: {ACTIONS}")
        hh, rq = _unique(households), _unique(requests)
        event = AccessEvent(action=action, caller=caller, households=hh, requests=rq,
                            count=len(rq) if count is None else count)
        row = {"created_at": event.created_at, "role": caller.role, "key_id": caller.key_id, "action": action,
               "targets": _targets_json(hh, rq), "result_count": event.count}
        try:
            with self.store.engine.connect() as conn, self.store.writing(), conn.begin():
                seq, head = self.store.lock_chain(conn, ACCESS_CHAIN)
                row |= {"seq": seq + 1, "prev_hash": head}
                row["record_hash"] = event_hash(head, row)
                conn.execute(insert(access_log).values(**row))
                targets = _unique([*hh, *rq])[:TARGETS_PER_EVENT]
                if targets:
                    conn.execute(insert(access_targets), [{"seq": row["seq"], "target": t} for t in targets])
                self.store.set_head(conn, ACCESS_CHAIN, row["seq"], row["record_hash"])
        except Exception as exc:
            raise AccessUnavailable(f"access log did not commit: {type(exc).__name__}") from exc
        return AccessEvent(**{**event.__dict__, "seq": row["seq"], "prev_hash": row["prev_hash"],
                              "record_hash": row["record_hash"]})

    def query(self, *, key_id: str | None = None, role: str | None = None, target: str | None = None,
              action: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
              before_seq: int | None = None, limit: int = 50) -> list[AccessEvent]:
        """Newest first; page with ``before_seq`` = the last ``seq`` of the previous page."""
        c = access_log.c
        cond = []
        if key_id is not None:
            cond.append(c.key_id == key_id)
        if role is not None:
            cond.append(c.role == role)
        if action is not None:
            cond.append(c.action == action)
        if since is not None:
            cond.append(c.created_at >= _db_time(self.store.engine, since))
        if until is not None:
            cond.append(c.created_at < _db_time(self.store.engine, until))
        if before_seq is not None:
            cond.append(c.seq < before_seq)
        if target is not None:
            cond.append(c.seq.in_(select(access_targets.c.seq).where(access_targets.c.target == target)))
        stmt = select(access_log).where(and_(True, *cond)).order_by(c.seq.desc()).limit(limit)
        with self.store.engine.connect() as conn:
            return [_to_event(r) for r in conn.execute(stmt).mappings()]

    def verify(self) -> tuple[int, ChainProblem | None]:
        """Walks the access log's chain; (events checked, the first problem or None)."""
        return walk_chain(self.store.rows(access_log), event_hash, self.store.head(ACCESS_CHAIN),
                          Chain("access event", "access events"))
