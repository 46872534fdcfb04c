"""The audit store on SQLite and on the PostgreSQL at 127.0.0.1:5432.

PostgreSQL is skipped, with the reason, when no server answers; under CI
(RELIEF_RISK_REQUIRE_POSTGRES=1) it must answer.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from serving.audit import AuditRecord, AuditStore, AuditUnavailable

PG_URL = os.environ.get("RELIEF_RISK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_or_skip() -> str:
    store = AuditStore(PG_URL)
    ok = store.ping()
    store.dispose()
    if not ok:
        if os.environ.get("RELIEF_RISK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (RELIEF_RISK_REQUIRE_POSTGRES=1) but {PG_URL} does not answer")
        pytest.skip(f"no PostgreSQL at {PG_URL}; set RELIEF_RISK_TEST_PG_URL or start the server")
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}" if request.param == "sqlite" else _pg_or_skip()
    s = AuditStore(url)
    s.create()
    yield s
    s.dispose()


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
