"""Brings the store's database to the schema this code expects, with Alembic (``store/migrations``).

:func:`upgrade` is what :meth:`store.audit.AuditStore.create` calls at every start-up, and what
``relief-risk db upgrade`` runs. It handles four kinds of database:

- empty: every migration runs, the database ends at head;
- made before the store had migrations (by ``metadata.create_all``: the tables, no
  ``alembic_version``): recognised by its tables and their columns, stamped as the baseline
  (``0001``), then upgraded. The old code always made ``audit_records`` and ``audit_chain``, but
  ``feedback``, ``batch_runs`` and ``batch_scores`` only in a process that had imported
  ``store.feedback`` / ``store.history`` (the nightly batch alone made no ``feedback``), so those
  three are created here, from the baseline migration, if missing: what the old code did on its
  next start. Anything else (no audit chain beside the records, a table with other columns) is not
  a database this code made, and is refused with what is missing, never stamped;
- at a revision this code does not know (migrated by newer code): refused, never touched;
- several workers starting at once: the whole check-and-migrate runs in one transaction holding a
  lock (:func:`schema_lock`), so one migrates and the others, once they get the lock, find head.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"

# What metadata.create_all made before migrations, table by table: exactly what 0001 creates (a
# test checks that). Frozen here, not read from store.schema, which will move on.
LEGACY_TABLES: dict[str, frozenset[str]] = {
    "audit_records": frozenset({"seq", "request_id", "created_at", "kind", "household_id", "as_of", "model_versions",
                                "flagged", "models", "request", "scores", "response", "prev_hash", "record_hash"}),
    "audit_chain": frozenset({"id", "seq", "head_hash"}),
    "feedback": frozenset({"id", "feedback_id", "request_id", "household_id", "as_of", "visited_on", "findings",
                           "flagged_risks", "model_versions", "recorded_at"}),
    "batch_runs": frozenset({"run_id", "created_at", "as_of", "models", "households", "flagged", "output"}),
    "batch_scores": frozenset({"id", "run_id", "household_id", "scores"}),
}
# every old AuditStore.create() made these two, whatever the process had imported
LEGACY_CORE = ("audit_records", "audit_chain")

# the key of the PostgreSQL advisory lock that serialises schema changes: "relief" in ASCII, then 1
PG_LOCK_KEY = 0x7265_6C69_6566_0001


class SchemaError(RuntimeError):
    """The database cannot be brought to this code's schema; the message says why and what to do."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code (no alembic.ini): the migrations folder of this package,
    and the connection the environment (``migrations/env.py``) runs on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS}"
    return head


def current(engine: Engine) -> str | None:
    """The database's revision, None when it has none (empty, or made before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the store's schema lock until it commits (or rolls
    back, on an exception): SQLite's write lock (``BEGIN IMMEDIATE``, waiting up to the connection's
    busy timeout), on PostgreSQL a transaction-scoped advisory lock (released by the commit, so a
    crashed worker never leaves it held). Other databases get no lock: start one worker first."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite would defer BEGIN to the first write (and run DDL outside any transaction):
            # take the write lock before reading anything, so the check and the change are one step
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
        else:
            log.warning("no schema lock on %s: start one worker before the others", conn.dialect.name)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def upgrade(engine: Engine) -> str:
    """Brings the database to head (see the module's docstring for which databases are accepted);
    returns the head revision. Raises :class:`SchemaError` for a database it must not touch."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    known = {s.revision for s in script.walk_revisions()}
    where = engine.url.render_as_string(hide_password=True)
    with schema_lock(engine) as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision is None and _adopt_legacy(conn, script, where):
            revision = BASELINE
        if revision is not None and revision not in known:
            raise SchemaError(f"the database {where} is at revision {revision!r}, which this code does not know "
                              f"(its newest is {head!r}): it was migrated by a newer relief-risk; run that version, "
                              "or restore a backup taken before the upgrade")
        if revision != head:
            command.upgrade(alembic_config(conn), "head")
            log.info("store schema of %s upgraded from %s to %s", where, revision or "empty", head)
    assert head is not None
    return head


def _adopt_legacy(conn: Connection, script: ScriptDirectory, where: str) -> bool:
    """Stamps a database made before migrations as the baseline, after checking it is one; False if
    the database has none of the store's tables (then the migrations create them all)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names()) & LEGACY_TABLES.keys()
    if not present:
        return False
    missing_core = [t for t in LEGACY_CORE if t not in present]
    if missing_core:
        raise SchemaError(f"the database {where} has the tables {', '.join(sorted(present))} but not "
                          f"{', '.join(missing_core)}, and no alembic_version: it is not one the store made "
                          "before migrations, so it is not stamped; restore it, or use an empty database")
    wrong = []
    for table in sorted(present):
        columns = {c["name"] for c in inspector.get_columns(table)}
        expected = LEGACY_TABLES[table]
        if columns != expected:
            wrong.append(f"{table} lacks {sorted(expected - columns)} and has {sorted(columns - expected)}")
    if wrong:
        raise SchemaError(f"the database {where} has no alembic_version and its tables are not the baseline's: "
                          f"{'; '.join(wrong)}; it is not stamped")
    lacking = [t for t in LEGACY_TABLES if t not in present]
    if lacking:
        baseline = script.get_revision(BASELINE)
        assert baseline is not None
        with Operations.context(MigrationContext.configure(conn)):
            for table in lacking:
                baseline.module.TABLES[table]()
        log.warning("store schema of %s: made before migrations without %s (its process never used them); "
                    "created them as the baseline has them", where, ", ".join(lacking))
    command.stamp(alembic_config(conn), BASELINE)
    log.info("store schema of %s: made before migrations, recognised and stamped %s", where, BASELINE)
    return True
