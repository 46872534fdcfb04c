"""The audit store: one record per scored household, committed before the response is returned.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) in production. A record keeps what was
received (identifiers as the platform pseudonymised them), the model versions, the raw scores, the
full contribution vectors and the response exactly as returned.

Records are append-only and hash-chained: record ``seq`` carries ``prev_hash`` (the hash of record
``seq - 1``) and ``record_hash`` = SHA-256 over ``prev_hash`` and its own stored content. Writers
serialise on row 1 of ``audit_chain`` (a row lock in PostgreSQL, the write lock in SQLite), so the
chain stays linear across threads, workers and hosts. ``verify`` walks the chain and names the first
record that was edited, deleted or reordered.

The personal payload (the bundle received, the scores with every feature, the response) is hashed
apart (``payload_hash``) and the record's hash covers that hash, not the payload: :meth:`AuditStore.purge`
can empty the payload of records past their retention period and the chain still verifies. Records
written before this (``payload_hash`` NULL) have the payload in their hash and cannot be purged.

The chain alone cannot tell a rewrite whose author recomputed every later hash, nor a cut tail with
a reset head: the signed checkpoints of :mod:`store.checkpoint`, kept outside the database, do.

One module of some 500 lines on purpose: what a record's hash covers, how a row is written, walked,
purged and read back are one format; split apart, a change to one would silently break the others.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, create_engine, event, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from store.migrate import schema_lock, upgrade
from store.schema import assessments, audit_chain, audit_records, batch_runs, batch_scores, plan_events, plan_measures
from store.schema import metadata as metadata  # re-exported: tests and benchmarks/loadtest.py import it from here

GENESIS = "0" * 64
AUDIT_CHAIN, ACCESS_CHAIN = 1, 2  # rows of audit_chain: the audit trail's head, the access log's


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
    seq: int | None = None
    prev_hash: str | None = None
    record_hash: str | None = None
    caller: dict[str, str] | None = None      # {"role", "key_id"}; None on records written before 0002
    town: str | None = None
    purged_at: dt.datetime | None = None      # set: request, scores and response are gone (empty)
    stored_flagged: bool | None = None        # the row's flagged column (what a purged record still says)

    @property
    def flagged(self) -> bool:
        if self.stored_flagged is not None:
            return self.stored_flagged
        return any(bool(s.get("flagged")) for s in self.scores)


@dataclass(frozen=True)
class AuditEntry:
    """A record to append, its JSON already rendered: the scoring path renders the response once
    and keeps those very bytes, so what is stored is exactly what was returned."""

    request_id: str
    created_at: dt.datetime
    kind: str
    household_id: str
    as_of: str
    models: list[dict[str, str]]
    flagged: bool
    request: str    # JSON
    scores: str     # JSON
    response: str   # JSON
    caller: str | None = None   # JSON: {"role", "key_id"}
    town: str | None = None

    @classmethod
    def of(cls, r: AuditRecord) -> AuditEntry:
        return cls(request_id=r.request_id, created_at=r.created_at, kind=r.kind, household_id=r.household_id,
                   as_of=r.as_of, models=r.models, flagged=r.flagged, request=_dumps(r.request),
                   scores=_dumps(r.scores), response=_dumps(r.response),
                   caller=None if r.caller is None else _dumps(r.caller),
                   town=r.town if r.town is not None else _town_of(r.request))


@dataclass(frozen=True)
class Appended:
    """Where an entry landed in the chain."""

    request_id: str
    seq: int
    prev_hash: str
    record_hash: str


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    request_id: str | None
    reason: str


@dataclass(frozen=True)
class Purged:
    """What :meth:`AuditStore.purge` did: payloads emptied, records it could not purge (written
    before payloads were hashed apart), nightly batch score rows deleted, and for one household's
    erasure its casework rows deleted (needs assessments, plan measures and their events)."""

    records: int
    legacy_kept: int
    batch_rows: int
    casework_rows: int = 0


def _dumps(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _town_of(request: Any) -> str | None:
    try:
        town = request["household"]["town"]
    except (KeyError, TypeError):
        return None
    return town if isinstance(town, str) else None


def utc(t: dt.datetime) -> dt.datetime:
    """``t`` as an aware UTC time; a naive time is taken to be UTC (how the store writes them)."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _utc_text(t: dt.datetime) -> str:
    return utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _db_time(engine: Engine, t: dt.datetime) -> dt.datetime:
    """A time to compare with a stored one: UTC, and naive on SQLite (which keeps the UTC wall clock
    as text and would otherwise compare another zone's wall clock with it)."""
    t = utc(t)
    return t.replace(tzinfo=None) if engine.dialect.name == "sqlite" else t


def encode_parts(parts: list[str]) -> bytes:
    """``parts`` as the bytes :func:`hash_parts` hashes: each part's UTF-8 prefixed by its length (so no
    two lists encode alike); the encoding of a list is the encodings of its pieces one after another."""
    out = bytearray()
    for p in parts:
        b = p.encode("utf-8")
        out += len(b).to_bytes(8, "big")
        out += b
    return bytes(out)


def hash_parts(parts: list[str]) -> str:
    """SHA-256 over ``parts``, each prefixed by its length (so no two lists hash alike)."""
    return hashlib.sha256(encode_parts(parts)).hexdigest()


def payload_hash(request: str, scores: str, response: str) -> str:
    """The hash of a record's personal payload, kept in the record and covered by its chain hash."""
    return hash_parts(["payload", request, scores, response])


def record_parts(prev_hash: str, row: dict[str, Any]) -> list[str]:
    """What a record's hash is taken over: the previous hash and the record's stored columns, in a
    fixed order. Since 0002 they hold its payload's hash (so the payload can be purged); before, the
    payload itself."""
    head = [prev_hash, str(row["seq"]), row["request_id"], _utc_text(row["created_at"]), row["kind"],
            row["household_id"], row["as_of"], row["model_versions"], "1" if row["flagged"] else "0", row["models"]]
    if row.get("payload_hash") is None:
        return [*head, row["request"], row["scores"], row["response"]]
    return ["v2", *head, row.get("caller") or "", row.get("town") or "", row["payload_hash"]]


def record_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 over :func:`record_parts`: the previous hash and the record's stored columns."""
    return hash_parts(record_parts(prev_hash, row))


def _to_record(row: Any) -> AuditRecord:
    created = utc(row["created_at"])  # SQLite drops the zone; records are written in UTC
    purged = row["purged_at"]
    return AuditRecord(
        request_id=row["request_id"], created_at=created, kind=row["kind"], household_id=row["household_id"],
        as_of=row["as_of"], models=json.loads(row["models"]),
        request=json.loads(row["request"]) if purged is None else {},
        scores=json.loads(row["scores"]) if purged is None else [],
        response=json.loads(row["response"]) if purged is None else {}, seq=row["seq"],
        prev_hash=row["prev_hash"], record_hash=row["record_hash"],
        caller=json.loads(row["caller"]) if row["caller"] else None, town=row["town"],
        purged_at=None if purged is None else utc(purged), stored_flagged=bool(row["flagged"]),
    )


@dataclass(frozen=True)
class Chain:
    """How a chain's problems name its rows: ``record``/``records`` and the column that identifies one."""

    one: str
    many: str
    key: str | None = None


def walk_chain(rows: Iterable[Any], link: Callable[[str, dict[str, Any]], str], head: tuple[int, str], chain: Chain,
               check: Callable[[dict[str, Any]], str | None] | None = None) -> tuple[int, ChainProblem | None]:
    """Walks ``rows`` in seq order: each must come next, follow the one before (``prev_hash``), hash to
    its ``record_hash`` (``link(prev, row)``) and pass ``check``; the chain ``head`` must name the last.
    Returns (rows read, the first problem or None): the audit trail's and the access log's one walk."""
    expected, prev, n = 1, GENESIS, 0
    for mapping in rows:
        row = dict(mapping)
        n += 1
        key = row.get(chain.key) if chain.key else None
        if row["seq"] != expected:
            return n, ChainProblem(expected, None, f"{chain.one} {expected} is missing (next is {row['seq']}): "
                                                   "deleted")
        if row["prev_hash"] != prev:
            return n, ChainProblem(row["seq"], key, f"does not follow the {chain.one} before it: reordered or a "
                                                    f"{chain.one} before it was replaced")
        if link(prev, row) != row["record_hash"]:
            return n, ChainProblem(row["seq"], key, "its content does not match its hash: edited")
        if check is not None and (problem := check(row)) is not None:
            return n, ChainProblem(row["seq"], key, problem)
        prev, expected = row["record_hash"], expected + 1
    seq, last = head
    if seq != expected - 1 or last != prev:
        return n, ChainProblem(expected, None, f"the chain head says {seq} {chain.many} ending in {last[:12]}…, "
                                               f"the table ends at {expected - 1}: the last {chain.many} were "
                                               "deleted or the head was altered")
    return n, None


def like_escape(value: str) -> str:
    """``value`` matched literally by ``LIKE … ESCAPE '\\'``: its ``%``, ``_`` and ``\\`` escaped."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sqlite_wal(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite in write-ahead-log mode, still ``synchronous=FULL``: every commit is on disk before the
    score is returned (one fsync of the log instead of the rollback journal's several), and readers
    (auditors, the household file) never block the writers."""
    cur = dbapi_connection.cursor()
    for attempt in range(50):  # the switch to WAL needs the file to itself: a worker migrating at that
        try:                   # moment can make it answer "locked" at once, without the busy timeout
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.1)
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


class _WriterLock:
    """Writers of one SQLite file take turns on a lock file (``<db>.writer-lock``) before they begin.

    SQLite's own write lock makes a second writer poll (its busy handler sleeps 1, 2, 5, 10 … ms
    between tries), so two worker processes' commits would wait on sleeps, not on each other; an
    ``flock`` wakes the next writer as soon as the first is done. Threads of one process take a
    thread lock first (``flock`` is per open file, not per thread). Elsewhere (PostgreSQL's row
    lock wakes waiters itself; an in-memory database has one process) it does nothing."""

    def __init__(self, database: str | None) -> None:
        self.path = f"{database}.writer-lock" if database and database != ":memory:" else None
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self.path is None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


class AuditStore:
    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
        else:
            kwargs["connect_args"] = {"connect_timeout": 5}
        self.url = url
        self.engine: Engine = create_engine(url, **kwargs)
        self._writers = _WriterLock(self.engine.url.database if url.startswith("sqlite") else None)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_wal)

    def create(self) -> None:
        """Brings the database to the schema this code expects (:func:`store.migrate.upgrade`: an empty
        database is created, one made before migrations is recognised and stamped, one newer than this
        code is refused), then makes the chain heads (the audit trail's and the access log's), once,
        whichever worker gets there first."""
        upgrade(self.engine)
        with schema_lock(self.engine) as conn:
            have = set(conn.execute(select(audit_chain.c.id)).scalars())
            for chain in (AUDIT_CHAIN, ACCESS_CHAIN):
                if chain not in have:
                    conn.execute(insert(audit_chain).values(id=chain, seq=0, head_hash=GENESIS))

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not reachable"; the reason is logged by the caller
            return False

    def write(self, records: list[AuditRecord]) -> list[AuditRecord]:
        """Appends all records in one transaction, chained; raises :class:`AuditUnavailable` if the
        transaction does not commit (then nothing of it is stored)."""
        placed = self.append([AuditEntry.of(r) for r in records])
        return [AuditRecord(**{**r.__dict__, "seq": a.seq, "prev_hash": a.prev_hash, "record_hash": a.record_hash})
                for r, a in zip(records, placed, strict=True)]

    def append(self, entries: list[AuditEntry], conn: Connection | None = None) -> list[Appended]:
        """Appends all entries in one transaction (one commit, one fsync), chained in list order;
        raises :class:`AuditUnavailable` if the transaction does not commit (then nothing of it is
        stored). Writers serialise on the chain head's row, so the chain stays linear across
        threads, worker processes and hosts. ``conn``: a connection the caller keeps open (the
        group committer's), outside any transaction; by default one from the pool."""
        if conn is None:
            try:
                own = self.engine.connect()
            except Exception as exc:
                raise AuditUnavailable(f"audit store did not commit: {type(exc).__name__}") from exc
            with own:
                return self.append(entries, own)
        rows: list[dict[str, Any]] = []
        try:
            with self._writers, conn.begin():
                seq, head = self.lock_chain(conn, AUDIT_CHAIN)
                for e in entries:
                    seq += 1
                    row = {"request_id": e.request_id, "created_at": e.created_at, "kind": e.kind,
                           "household_id": e.household_id, "as_of": e.as_of,
                           "model_versions": ",".join(f"{m['name']}:{m['version']}" for m in e.models),
                           "flagged": e.flagged, "models": _dumps(e.models), "request": e.request,
                           "scores": e.scores, "response": e.response, "seq": seq, "prev_hash": head,
                           "caller": e.caller, "town": e.town,
                           "payload_hash": payload_hash(e.request, e.scores, e.response)}
                    head = row["record_hash"] = record_hash(head, row)
                    rows.append(row)
                conn.execute(insert(audit_records), rows)
                self.set_head(conn, AUDIT_CHAIN, seq, head)
        except Exception as exc:
            raise AuditUnavailable(f"audit store did not commit: {type(exc).__name__}") from exc
        return [Appended(r["request_id"], r["seq"], r["prev_hash"], r["record_hash"]) for r in rows]

    def writing(self) -> _WriterLock:
        """The writers' turn: held around every transaction that appends to a chain."""
        return self._writers

    def lock_chain(self, conn: Connection, chain: int) -> tuple[int, str]:
        """Takes the chain's lock (a no-op update locks the head's row in PostgreSQL, the database in
        SQLite) and reads the head, in one statement where the database can return from an update."""
        lock = update(audit_chain).where(audit_chain.c.id == chain).values(seq=audit_chain.c.seq)
        if self.engine.dialect.update_returning:
            seq, head = conn.execute(lock.returning(audit_chain.c.seq, audit_chain.c.head_hash)).one()
        else:
            conn.execute(lock)
            seq, head = conn.execute(select(audit_chain.c.seq, audit_chain.c.head_hash)
                                     .where(audit_chain.c.id == chain)).one()
        return int(seq), str(head)

    @staticmethod
    def set_head(conn: Connection, chain: int, seq: int, head: str) -> None:
        conn.execute(update(audit_chain).where(audit_chain.c.id == chain).values(seq=seq, head_hash=head))

    def get(self, request_id: str) -> AuditRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_records).where(audit_records.c.request_id == request_id)).mappings().first()
        return None if row is None else _to_record(row)

    def query(self, *, household_id: str | None = None, since: dt.datetime | None = None,
              until: dt.datetime | None = None, model_name: str | None = None, model_version: str | None = None,
              flagged: bool | None = None, before_seq: int | None = None, limit: int = 50,
              towns: frozenset[str] | None = None) -> list[AuditRecord]:
        """Newest first; page with ``before_seq`` = the last ``seq`` of the previous page. Times in any
        zone (naive: UTC); ``model_name``/``model_version`` match literally; ``towns``: only records of
        these towns (a key limited to towns)."""
        c = audit_records.c
        cond = []
        if household_id is not None:
            cond.append(c.household_id == household_id)
        if since is not None:
            cond.append(c.created_at >= _db_time(self.engine, since))
        if until is not None:
            cond.append(c.created_at < _db_time(self.engine, until))
        if model_name is not None or model_version is not None:
            # model_versions is "name:version,…": match one whole element, so version 1 is not 10
            p = f"{like_escape(model_name) if model_name is not None else '%'}:" \
                f"{like_escape(model_version) if model_version is not None else '%'}"
            cond.append(or_(*(c.model_versions.like(x, escape="\\") for x in (p, f"{p},%", f"%,{p}", f"%,{p},%"))))
        if flagged is not None:
            cond.append(c.flagged == flagged)
        if before_seq is not None:
            cond.append(c.seq < before_seq)
        if towns is not None:
            cond.append(c.town.in_(sorted(towns)))
        stmt = select(audit_records).where(and_(True, *cond)).order_by(c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_to_record(r) for r in conn.execute(stmt).mappings()]

    def scores_window(self, since: dt.datetime, until: dt.datetime | None = None, limit: int = 100_000
                      ) -> list[tuple[str, str]]:
        """``(as_of, scores JSON)`` of the records created in [``since``, ``until``), newest first, at
        most ``limit``; purged records (their scores gone) are left out. What drift monitoring reads."""
        c = audit_records.c
        cond = [c.created_at >= _db_time(self.engine, since), c.purged_at.is_(None)]
        if until is not None:
            cond.append(c.created_at < _db_time(self.engine, until))
        stmt = select(c.as_of, c.scores).where(and_(*cond)).order_by(c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [(a, s) for a, s in conn.execute(stmt) if s]

    def latest_town(self, household_id: str) -> str | None:
        """The town of the household's latest record (API or nightly batch), None if none says."""
        with self.engine.connect() as conn:
            town = conn.execute(select(audit_records.c.town).where(audit_records.c.household_id == household_id)
                                .order_by(audit_records.c.seq.desc()).limit(1)).scalar()
            if town is None:
                town = conn.execute(select(batch_scores.c.town).where(batch_scores.c.household_id == household_id)
                                    .order_by(batch_scores.c.id.desc()).limit(1)).scalar()
        return town

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(text("count(*)")).select_from(audit_records)).scalar_one())

    def head(self, chain: int = AUDIT_CHAIN) -> tuple[int, str]:
        with self.engine.connect() as conn:
            found = conn.execute(select(audit_chain.c.seq, audit_chain.c.head_hash)
                                 .where(audit_chain.c.id == chain)).first()
        return (0, GENESIS) if found is None else (int(found[0]), str(found[1]))

    def rows(self, table: Table = audit_records, after: int = 0, upto: int | None = None,
             batch: int = 1000) -> Iterator[Any]:
        """The rows of a chained table in ``seq`` order, from ``after + 1`` (to ``upto``), as mappings."""
        last = after
        with self.engine.connect() as conn:
            while True:
                stmt = select(table).where(table.c.seq > last)
                if upto is not None:
                    stmt = stmt.where(table.c.seq <= upto)
                rows = list(conn.execute(stmt.order_by(table.c.seq).limit(batch)).mappings())
                if not rows:
                    return
                yield from rows
                last = rows[-1]["seq"]

    def verify(self) -> tuple[int, ChainProblem | None]:
        """Walks the whole chain; returns (records checked, the first problem or None)."""

        def payload_holds(row: dict[str, Any]) -> str | None:
            if row["payload_hash"] is None or row["purged_at"] is not None or \
                    payload_hash(row["request"], row["scores"], row["response"]) == row["payload_hash"]:
                return None
            return "its request, scores or response do not match their hash: edited"

        return walk_chain(self.rows(), record_hash, self.head(), Chain("record", "records", "request_id"),
                          payload_holds)

    def purge(self, before: dt.datetime, household_id: str | None = None, *, dry_run: bool = False) -> Purged:
        """Empties the personal payload (request, scores, response) of the records created before
        ``before`` (of one household, for an erasure request), and deletes the nightly batch's score
        rows of runs before it. The records keep their place in the chain, their hash and what is
        not personal payload (request id, time, household id, model versions, caller, town), so
        ``verify`` still passes. Records written before payloads were hashed apart are kept whole
        (purging them would break the chain) and counted in ``legacy_kept``. For one household (an
        erasure request) its needs assessments and plan (measures and their events) recorded before
        ``before`` are deleted too: they are casework about that household, outside the chain. A
        retention purge of every household leaves casework alone: a plan still being carried out
        must keep its history. ``dry_run``: counts what it would do, changes nothing."""
        c = audit_records.c
        cut = _db_time(self.engine, before)
        where = [c.created_at < cut, c.purged_at.is_(None)]
        if household_id is not None:
            where.append(c.household_id == household_id)
        runs = select(batch_runs.c.run_id).where(batch_runs.c.created_at < cut)
        scored = [batch_scores.c.run_id.in_(runs)]
        if household_id is not None:
            scored.append(batch_scores.c.household_id == household_id)

        def count(table: Table, *cond: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table).where(*cond)).scalar_one())

        casework: list[tuple[Table, list[Any]]] = [] if household_id is None else [
            (t, [t.c.household_id == household_id, t.c[when] < cut])
            for t, when in ((plan_events, "recorded_at"), (plan_measures, "created_at"), (assessments, "recorded_at"))]
        with self.engine.begin() as conn:
            legacy = count(audit_records, *where, c.payload_hash.is_(None))
            if dry_run:
                return Purged(records=count(audit_records, *where, c.payload_hash.is_not(None)), legacy_kept=legacy,
                              batch_rows=count(batch_scores, *scored),
                              casework_rows=sum(count(t, *cond) for t, cond in casework))
            done = conn.execute(update(audit_records).where(*where, c.payload_hash.is_not(None))
                                .values(request="", scores="", response="", purged_at=dt.datetime.now(dt.UTC)))
            deleted = conn.execute(batch_scores.delete().where(*scored))
            gone = sum(int(conn.execute(t.delete().where(*cond)).rowcount or 0) for t, cond in casework)
        return Purged(records=int(done.rowcount or 0), legacy_kept=legacy, batch_rows=int(deleted.rowcount or 0),
                      casework_rows=gone)

    def dispose(self) -> None:
        self.engine.dispose()
