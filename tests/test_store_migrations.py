"""The store's migrations (store/migrate.py, store/migrations) on SQLite and on the PostgreSQL at
127.0.0.1:5432, each test in a database of its own (a temporary file; a fresh schema, dropped after).

PostgreSQL is skipped, with the reason, when no server answers; under CI
(RELIEF_RISK_REQUIRE_POSTGRES=1) it must answer.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    inspect,
    select,
    text,
)

from store.audit import GENESIS, AuditRecord, AuditStore, _dumps, record_hash
from store.feedback import FeedbackStore
from store.migrate import (
    BASELINE,
    LEGACY_TABLES,
    SchemaError,
    alembic_config,
    current,
    head_revision,
    schema_lock,
    upgrade,
)
from store.schema import metadata

PG_URL = os.environ.get("RELIEF_RISK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]
STORE_TABLES = {"audit_records", "audit_chain", "feedback", "batch_runs", "batch_scores", "access_log",
                "access_targets", "revoked_sessions", "assessments", "plan_measures", "plan_events"}
HEAD = "0003"
CHAINS = [(1, 0, GENESIS), (2, 0, GENESIS)]  # the audit trail's head and the access log's

# ---- the schema as metadata.create_all made it before migrations, frozen here (store.schema moves on)
LEGACY = MetaData()
_SEQ = BigInteger().with_variant(Integer, "sqlite")
Table("audit_records", LEGACY,
      Column("seq", _SEQ, primary_key=True, autoincrement=False),
      Column("request_id", String(64), nullable=False, unique=True),
      Column("created_at", DateTime(timezone=True), nullable=False),
      Column("kind", String(16), nullable=False),
      Column("household_id", String(64), nullable=False),
      Column("as_of", String(10), nullable=False),
      Column("model_versions", String(512), nullable=False),
      Column("flagged", Boolean, nullable=False),
      Column("models", Text, nullable=False),
      Column("request", Text, nullable=False),
      Column("scores", Text, nullable=False),
      Column("response", Text, nullable=False),
      Column("prev_hash", String(64), nullable=False),
      Column("record_hash", String(64), nullable=False),
      Index("ix_audit_household", "household_id"),
      Index("ix_audit_created", "created_at"))
Table("audit_chain", LEGACY,
      Column("id", Integer, primary_key=True, autoincrement=False),
      Column("seq", _SEQ, nullable=False),
      Column("head_hash", String(64), nullable=False))
Table("feedback", LEGACY,
      Column("id", Integer, primary_key=True, autoincrement=True),
      Column("feedback_id", String(32), nullable=False, unique=True),
      Column("request_id", String(64), nullable=False, unique=True),
      Column("household_id", String(64), nullable=False),
      Column("as_of", String(10), nullable=False),
      Column("visited_on", String(10), nullable=False),
      Column("findings", String(256), nullable=False),
      Column("flagged_risks", String(256), nullable=False),
      Column("model_versions", String(512), nullable=False),
      Column("recorded_at", DateTime(timezone=True), nullable=False),
      Index("ix_feedback_household", "household_id"))
Table("batch_runs", LEGACY,
      Column("run_id", String(32), primary_key=True),
      Column("created_at", DateTime(timezone=True), nullable=False),
      Column("as_of", String(10), nullable=False),
      Column("models", Text, nullable=False),
      Column("households", Integer, nullable=False),
      Column("flagged", Integer, nullable=False),
      Column("output", Text, nullable=False))
Table("batch_scores", LEGACY,
      Column("id", Integer, primary_key=True, autoincrement=True),
      Column("run_id", String(32), nullable=False),
      Column("household_id", String(64), nullable=False),
      Column("scores", Text, nullable=False),
      Index("ix_batch_scores_household", "household_id"))


def make_legacy(url: str, tables=tuple(LEGACY.tables)) -> None:
    """A database as the old ``AuditStore.create()`` left it: ``create_all`` of the tables its process
    had imported, then the chain head."""
    engine = create_engine(url)
    LEGACY.create_all(engine, tables=[LEGACY.tables[t] for t in tables])
    if "audit_chain" in tables:
        with engine.begin() as conn:
            conn.execute(insert(LEGACY.tables["audit_chain"]).values(id=1, seq=0, head_hash=GENESIS))
    engine.dispose()


# ---- one database per test -------------------------------------------------------------------------
def _fresh_pg_schema() -> tuple[str, str]:
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            schema = f"relief_mig_{uuid.uuid4().hex[:12]}"
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception:
        if os.environ.get("RELIEF_RISK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (RELIEF_RISK_REQUIRE_POSTGRES=1) but {PG_URL} does not answer")
        pytest.skip(f"no PostgreSQL at {PG_URL}; set RELIEF_RISK_TEST_PG_URL or start the server")
    finally:
        engine.dispose()
    return schema, f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    schema, url = _fresh_pg_schema()
    yield url
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def stores():
    """AuditStores opened by the test, disposed after it."""
    opened: list[AuditStore] = []

    def open_store(url: str) -> AuditStore:
        opened.append(AuditStore(url))
        return opened[-1]

    yield open_store
    for s in opened:
        s.dispose()


def tables(store: AuditStore) -> set[str]:
    return set(inspect(store.engine).get_table_names())


def rows(store: AuditStore, table: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]


def everything(store: AuditStore) -> dict[str, list[tuple]]:
    """Every row of the baseline's tables there are, in the baseline's columns (later migrations add
    columns)."""
    present = tables(store)
    with store.engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(select(*[store_table(name).c[c.name] for c in t.c])
                                                      .order_by(store_table(name).c[t.c.keys()[0]]))]
                for name, t in sorted(LEGACY.tables.items()) if name in present}


def store_table(name: str) -> Table:
    return metadata.tables[name]


def legacy_write(store: AuditStore, records: list[AuditRecord]) -> list[AuditRecord]:
    """Appends records as the code before 0002 did: into the baseline's columns, the payload in the hash."""
    out = []
    with store.engine.begin() as conn:
        seq, head = conn.execute(select(LEGACY.tables["audit_chain"].c.seq,
                                        LEGACY.tables["audit_chain"].c.head_hash)).one()
        for r in records:
            seq += 1
            row = {"seq": seq, "request_id": r.request_id, "created_at": r.created_at, "kind": r.kind,
                   "household_id": r.household_id, "as_of": r.as_of,
                   "model_versions": ",".join(f"{m['name']}:{m['version']}" for m in r.models), "flagged": r.flagged,
                   "models": _dumps(r.models), "request": _dumps(r.request), "scores": _dumps(r.scores),
                   "response": _dumps(r.response), "prev_hash": head}
            head = row["record_hash"] = record_hash(head, row)
            conn.execute(insert(LEGACY.tables["audit_records"]).values(**row))
            out.append(AuditRecord(**{**r.__dict__, "seq": seq, "prev_hash": row["prev_hash"], "record_hash": head}))
        conn.execute(LEGACY.tables["audit_chain"].update().values(seq=seq, head_hash=head))
    return out


def record(household_id: str = "H1", flagged: bool = False) -> AuditRecord:
    rid = uuid.uuid4().hex
    return AuditRecord(request_id=rid, created_at=dt.datetime.now(dt.UTC), kind="score", household_id=household_id,
                       as_of="2026-06-30", models=[{"name": "illness_poverty", "version": "3"}],
                       request={"household": {"household_id": household_id, "town": "乐余"}},
                       scores=[{"risk": "illness_poverty", "raw_score": -1.25, "base_value": -3.0,
                                "contributions": {"oop_12m": 1.75}, "flagged": flagged}],
                       response={"request_id": rid, "scores": [{"probability": 0.123456789012345}]})


def _where(url: str) -> str:
    return create_engine(url).url.render_as_string(hide_password=True)


# ---- an empty database ----------------------------------------------------------------------------
def test_empty_database_is_brought_to_head_with_one_chain_head(url, stores):
    store = stores(url)
    assert current(store.engine) is None
    store.create()
    assert BASELINE == "0001" and head_revision() == HEAD
    assert current(store.engine) == HEAD
    assert tables(store) == STORE_TABLES | {"alembic_version"}
    assert rows(store, "alembic_version") == [(HEAD,)]
    assert rows(store, "audit_chain") == CHAINS
    store.create()  # every start-up calls it: the second changes nothing
    assert rows(store, "alembic_version") == [(HEAD,)]
    assert rows(store, "audit_chain") == CHAINS
    assert store.write([record()])[0].seq == 1


def test_the_code_schema_and_the_migrated_database_agree(url, stores):
    """store.schema changed without a migration (or a migration the schema does not have) shows here."""
    store = stores(url)
    upgrade(store.engine)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_the_baseline_is_exactly_what_create_all_made(url, stores):
    store = stores(url)
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), BASELINE)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), LEGACY) == []
    assert {t.name: frozenset(t.c.keys()) for t in LEGACY.tables.values()} == LEGACY_TABLES


# ---- a database made before migrations --------------------------------------------------------------
def _fill(store: AuditStore) -> int:
    """Rows as the code before migrations wrote them."""
    written = []
    for i in range(5):
        written += legacy_write(store, [record(household_id=f"H{i}", flagged=i % 2 == 0)])
    written += legacy_write(store, [record(), record()])
    with store.engine.begin() as conn:
        for i, (r, visited, finding) in enumerate([(written[0], "2026-07-03", "illness_poverty"),
                                                   (written[1], "2026-07-04", "not_in_need")]):
            conn.execute(insert(LEGACY.tables["feedback"]).values(
                feedback_id=f"f{i}", request_id=r.request_id, household_id=r.household_id, as_of=r.as_of,
                visited_on=visited, findings=finding, flagged_risks="", model_versions="illness_poverty:3",
                recorded_at=dt.datetime(2026, 7, 5, tzinfo=dt.UTC)))
        conn.execute(insert(LEGACY.tables["batch_runs"]).values(
            run_id="r1", created_at=dt.datetime(2026, 7, 1, 2, 0, tzinfo=dt.UTC), as_of="2026-06-30",
            models='[{"name": "illness_poverty", "version": "3"}]', households=2, flagged=1, output="/data/batch"))
        conn.execute(insert(LEGACY.tables["batch_scores"]), [
            {"run_id": "r1", "household_id": "H1", "scores": '{"illness_poverty":[0.4,"high",true]}'},
            {"run_id": "r1", "household_id": "H2", "scores": '{"illness_poverty":[0.01,"low",false]}'}])
    return len(written)


def test_legacy_database_is_stamped_and_keeps_every_row_and_its_chain(url, stores):
    make_legacy(url)
    store = stores(url)
    n = _fill(store)
    before = everything(store)
    assert [len(before[t]) for t in ("audit_records", "feedback", "batch_runs", "batch_scores")] == [n, 2, 1, 2]
    assert current(store.engine) is None

    store.create()

    assert current(store.engine) == HEAD
    assert rows(store, "alembic_version") == [(HEAD,)]
    after = everything(store)
    assert after.pop("audit_chain") == [*before.pop("audit_chain"), (2, 0, GENESIS)]  # the access log's head
    assert after == before
    assert store.verify() == (n, None)
    assert store.write([record()])[0].seq == n + 1  # the chain goes on from where it was
    assert store.verify() == (n + 1, None)


def test_legacy_database_of_the_nightly_batch_alone_gets_the_feedback_table(url, stores):
    """The old create_all made only the tables of the modules its process had imported: the nightly
    batch (store.audit and store.history) made no feedback table. Such a database is still the
    store's: the missing table is created as the baseline has it, then the database is stamped."""
    make_legacy(url, tables=("audit_records", "audit_chain", "batch_runs", "batch_scores"))
    store = stores(url)
    written = legacy_write(store, [record(), record()])
    before = everything(store)

    store.create()

    assert current(store.engine) == HEAD
    assert tables(store) == STORE_TABLES | {"alembic_version"}
    after = everything(store)
    assert after["audit_records"] == before["audit_records"]
    assert after["audit_chain"] == [*before["audit_chain"], (2, 0, GENESIS)]
    assert store.verify() == (2, None)
    FeedbackStore(store.engine).add(written[0], dt.date(2026, 7, 3), ["illness_poverty"])
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_partial_legacy_database_is_refused_naming_what_is_missing(url, stores):
    make_legacy(url, tables=("audit_records", "feedback"))
    store = stores(url)
    before = tables(store)
    with pytest.raises(SchemaError) as err:
        store.create()
    assert str(err.value) == (f"the database {_where(url)} has the tables audit_records, feedback but not "
                              "audit_chain, and no alembic_version: it is not one the store made before migrations, "
                              "so it is not stamped; restore it, or use an empty database")
    assert tables(store) == before  # not stamped, nothing created
    assert current(store.engine) is None


def test_legacy_table_with_other_columns_is_refused(url, stores):
    make_legacy(url)
    store = stores(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE batch_runs"))
        conn.execute(text("CREATE TABLE batch_runs (run_id VARCHAR(32) PRIMARY KEY, created_at TIMESTAMP, "
                          "note TEXT)"))
    with pytest.raises(SchemaError) as err:
        store.create()
    assert str(err.value) == (f"the database {_where(url)} has no alembic_version and its tables are not the "
                              "baseline's: batch_runs lacks ['as_of', 'flagged', 'households', 'models', 'output'] "
                              "and has ['note']; it is not stamped")
    assert "alembic_version" not in tables(store)


# ---- a database newer than this code ---------------------------------------------------------------
def test_database_at_an_unknown_newer_revision_is_refused_untouched(url, stores):
    store = stores(url)
    store.create()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0007_later'"))
    with pytest.raises(SchemaError) as err:
        store.create()
    assert str(err.value) == (f"the database {_where(url)} is at revision '0007_later', which this code does not "
                              "know (its newest is '0003'): it was migrated by a newer relief-risk; run that "
                              "version, or restore a backup taken before the upgrade")
    assert current(store.engine) == "0007_later"


# ---- several workers starting at once ---------------------------------------------------------------
CHILD = """
import pathlib, sys, time
from store.audit import AuditStore
store = AuditStore(sys.argv[1])
print("ready", flush=True)
go = pathlib.Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
store.create()
print("done", flush=True)
"""


def _start(url: str, go: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, str(go)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.stderr and proc.stderr.read()
    return proc


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_workers_starting_at_once_migrate_once(url, stores, tmp_path):
    go = tmp_path / "go"
    workers = [_start(url, go), _start(url, go)]  # both imported and waiting
    go.touch()
    results = [_finish(p) for p in workers]
    assert [(code, out) for code, out, _ in results] == [(0, "done\n"), (0, "done\n")], [e for *_, e in results]
    store = stores(url)
    assert rows(store, "alembic_version") == [(HEAD,)]
    assert rows(store, "audit_chain") == CHAINS
    assert tables(store) == STORE_TABLES | {"alembic_version"}


def test_a_worker_waits_for_the_schema_lock_then_finds_head(url, stores, tmp_path):
    go = tmp_path / "go"
    go.touch()
    store = stores(url)
    with schema_lock(store.engine) as conn:  # the test is the first worker, in the middle of migrating
        worker = _start(url, go)
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=1.5)  # the second waits for the lock
        command.upgrade(alembic_config(conn), "head")
        conn.execute(insert(metadata.tables["audit_chain"]).values(id=1, seq=0, head_hash=GENESIS))
    assert _finish(worker)[:2] == (0, "done\n")
    assert rows(store, "alembic_version") == [(HEAD,)]
    assert rows(store, "audit_chain") == CHAINS


# ---- the command line ------------------------------------------------------------------------------
def test_db_commands(url, capsys):
    from relief_risk.cli import main

    assert main(["db", "current", "--audit-url", url]) == 0
    assert capsys.readouterr().out == f"none (empty, or made before migrations); this code's head is {HEAD}\n"
    assert main(["db", "upgrade", "--audit-url", url]) == 0
    assert capsys.readouterr().out == f"upgraded from none to {HEAD} (head)\n"
    assert main(["db", "upgrade", "--audit-url", url]) == 0
    assert capsys.readouterr().out == f"already at {HEAD} (head)\n"
    assert main(["db", "current", "--audit-url", url]) == 0
    assert capsys.readouterr().out == f"{HEAD} (head)\n"
    engine = create_engine(url)
    with engine.begin() as conn:
        assert conn.execute(select(metadata.tables["audit_chain"].c.seq)).scalars().all() == [0, 0]
        conn.execute(text("UPDATE alembic_version SET version_num = '0007_later'"))
    engine.dispose()
    assert main(["db", "upgrade", "--audit-url", url]) == 1
    assert "is at revision '0007_later', which this code does not know" in capsys.readouterr().err
