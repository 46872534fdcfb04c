"""The audit store on SQLite and on the PostgreSQL at 127.0.0.1:5432.

PostgreSQL is skipped, with the reason, when no server answers; under CI
(RELIEF_RISK_REQUIRE_POSTGRES=1) it must answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from store.audit import AuditRecord, AuditStore, AuditUnavailable

PG_URL = os.environ.get("RELIEF_RISK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def fresh_pg_schema() -> str:
    """A new, empty schema on the test server and a URL whose search_path points at it."""
    store = AuditStore(PG_URL)
    ok = store.ping()
    if not ok:
        store.dispose()
        if os.environ.get("RELIEF_RISK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (RELIEF_RISK_REQUIRE_POSTGRES=1) but {PG_URL} does not answer")
        pytest.skip(f"no PostgreSQL at {PG_URL}; set RELIEF_RISK_TEST_PG_URL or start the server")
    schema = f"relief_test_{uuid.uuid4().hex[:12]}"
    with store.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    store.dispose()
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def created_store(kind: str, tmp_path) -> Iterator[tuple[AuditStore, str]]:
    """(store, url): a fresh, created audit store on SQLite in ``tmp_path`` or in a new PostgreSQL
    schema (dropped afterwards)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}" if kind == "sqlite" else fresh_pg_schema()
    s = AuditStore(url)
    s.create()
    try:
        yield s, url
    finally:
        s.dispose()
        if kind == "postgres":
            drop = AuditStore(PG_URL)
            with drop.engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {url.rsplit('%3D', 1)[1]} CASCADE"))
            drop.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    with created_store(request.param, tmp_path) as (s, _):
        yield s


def record(**kw) -> AuditRecord:
    rid = uuid.uuid4().hex
    base = dict(request_id=rid, created_at=dt.datetime.now(dt.UTC), kind="score", household_id="H1",
                as_of="2026-06-30", models=[{"name": "illness_poverty", "version": "3"}],
                request={"household": {"household_id": "H1", "town": "乐余"}},
                scores=[{"risk": "illness_poverty", "raw_score": -1.25, "base_value": -3.0,
                         "contributions": {"oop_12m": 1.75}}],
                response={"request_id": rid, "scores": [{"probability": 0.123456789012345}]})
    return AuditRecord(**{**base, **kw})


def test_round_trip_keeps_everything_exactly(store):
    r = record()
    store.write([r])
    got = store.get(r.request_id)
    assert got is not None
    assert (got.request, got.scores, got.response, got.models) == (r.request, r.scores, r.response, r.models)
    assert abs((got.created_at - r.created_at).total_seconds()) < 1e-3
    assert store.get("missing") is None


def test_a_batch_commits_all_or_nothing(store):
    before = store.count()
    good, dup = record(), record()
    store.write([good])
    with pytest.raises(AuditUnavailable):
        store.write([record(), record(request_id=good.request_id)])  # the second collides
    assert store.count() == before + 1
    store.write([dup])
    assert store.count() == before + 2


def test_nan_is_refused_not_stored(store):
    before = store.count()
    with pytest.raises(ValueError):
        store.write([record(scores=[{"raw_score": float("nan")}])])
    assert store.count() == before


def test_unreachable_store_is_reported_not_raised():
    s = AuditStore("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert s.ping() is False
    with pytest.raises(AuditUnavailable):
        s.write([record()])


# ---- the hash chain ------------------------------------------------------------------------------
def _filled(store, n=6):
    written = []
    for _ in range(n):
        written += store.write([record()])
    written += store.write([record(), record()])  # a batch is chained record by record too
    assert store.verify() == (n + 2, None)
    return written


def _sql(store, statement, **params):
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_chain_links_each_record_to_the_one_before(store):
    written = _filled(store)
    assert [r.seq for r in written] == list(range(1, 9))
    assert all(b.prev_hash == a.record_hash for a, b in zip(written, written[1:], strict=False))
    assert store.head() == (8, written[-1].record_hash)


def test_verify_catches_an_edited_record(store):
    written = _filled(store)
    _sql(store, "UPDATE audit_records SET response = :r WHERE seq = 3", r='{"tampered":true}')
    n, problem = store.verify()
    assert problem is not None and problem.seq == 3 and problem.request_id == written[2].request_id
    assert "edited" in problem.reason


def test_verify_catches_a_deleted_record(store):
    _filled(store)
    _sql(store, "DELETE FROM audit_records WHERE seq = 4")
    n, problem = store.verify()
    assert problem is not None and problem.seq == 4 and "deleted" in problem.reason


def test_verify_catches_a_deleted_last_record(store):
    _filled(store)
    _sql(store, "DELETE FROM audit_records WHERE seq = 8")
    n, problem = store.verify()
    assert problem is not None and "last records were deleted" in problem.reason


def test_verify_catches_reordered_records(store):
    _filled(store)
    _sql(store, "UPDATE audit_records SET seq = -1 WHERE seq = 2")
    _sql(store, "UPDATE audit_records SET seq = 2 WHERE seq = 5")
    _sql(store, "UPDATE audit_records SET seq = 5 WHERE seq = -1")
    n, problem = store.verify()
    assert problem is not None and problem.seq == 2 and "reordered" in problem.reason


def test_query_filters_and_pages(store):
    written = _filled(store)
    flagged = record(household_id="H2", scores=[{"flagged": True}])
    store.write([flagged])
    assert [r.request_id for r in store.query(household_id="H2")] == [flagged.request_id]
    assert [r.request_id for r in store.query(flagged=True)] == [flagged.request_id]
    page1 = store.query(limit=4)
    page2 = store.query(limit=4, before_seq=page1[-1].seq)
    assert [r.seq for r in page1 + page2] == list(range(9, 1, -1))
    assert len(store.query(model_name="illness_poverty", model_version="3")) == 9
    assert store.query(model_version="4") == []
    assert store.query(until=written[0].created_at) == []


def test_version_filter_matches_whole_versions(store):
    store.write([record(models=[{"name": "illness_poverty", "version": "10"}])])
    store.write([record(models=[{"name": "illness_poverty", "version": "1"},
                                {"name": "elderly_care_need", "version": "10"}])])
    assert len(store.query(model_version="1")) == 1
    assert len(store.query(model_version="10")) == 2
    assert len(store.query(model_name="elderly_care_need", model_version="1")) == 0
