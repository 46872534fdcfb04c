"""benchmarks/loadtest.py: its proof logic on SQLite (fast), and a small real run against the
PostgreSQL at 127.0.0.1:5432 that restarts the database half-way (slow).

The real run is skipped, with the reason, when PostgreSQL does not answer; under CI
(RELIEF_RISK_REQUIRE_POSTGRES=1) it fails instead. It is also skipped when the server is not a local
cluster that ``pg_ctlcluster`` can restart. PostgreSQL is started again afterwards if the restart
left it down.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from store.audit import AuditRecord, AuditStore

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("RELIEF_RISK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def lt():
    spec = importlib.util.spec_from_file_location("loadtest", ROOT / "benchmarks" / "loadtest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("loadtest", None)


def _record(request_id: str, household_id: str, response: dict) -> AuditRecord:
    return AuditRecord(request_id=request_id, created_at=dt.datetime.now(dt.UTC), kind="score",
                       household_id=household_id, as_of="2026-06-30", models=[{"name": "m", "version": "1"}],
                       request={}, scores=[], response=response)


def test_proof_counts_losses_and_lost_acknowledgements(lt, tmp_path):
    """A 200 without a record is a loss (exit 1); a record whose request got a 503 is reported
    apart, as a commit whose acknowledgement was lost (a duplicate once the retry succeeded)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore(url)
    store.create()
    A = lt.Attempt
    ok = lt.Outcome(0, "H1.r.000000", [A("200", 0.0, 0.1, "rid-ok")], {"request_id": "rid-ok", "x": 1})
    dup = lt.Outcome(1, "H2.r.000001", [A("503", 0.1, 0.2), A("200", 0.5, 0.6, "rid-dup")],
                     {"request_id": "rid-dup"})
    lost = lt.Outcome(2, "H3.r.000002", [A("200", 0.2, 0.3, "rid-lost")], {"request_id": "rid-lost"})
    refused = lt.Outcome(3, "H4.r.000003", [A("503", 0.3, 0.4)] * 5)
    store.write([_record("rid-ok", ok.tag, ok.response),
                 _record(uuid.uuid4().hex, dup.tag, {"lost": "ack"}),  # committed, answered 503
                 _record("rid-dup", dup.tag, dup.response),
                 _record("unrelated", "someone-else", {})])
    store.dispose()
    outcomes = [ok, dup, lost, refused]

    proof = lt.prove(url, 0, outcomes, fresh=True)
    assert proof["acknowledged_200"] == 3
    assert proof["acknowledged_without_record"] == 1 and proof["missing_request_ids"] == ["rid-lost"]
    assert proof["records_without_200"] == 1
    assert list(proof["records_without_200_by_kind"]) == [
        "committed, answered 503, later retried with a 200: a duplicate"]
    assert proof["records_from_other_writers"] == 1
    assert proof["chain"]["intact"] and not proof["equal"]

    cfg = lt.Config(requests=4, max_attempts=5)
    results = {"proof": proof, "load": lt.summarise(cfg, outcomes, 1.0, False, None), "problems": [],
               "readyz_after_load": 200}
    assert lt.judge(results) == lt.EXIT_LOST
    assert results["problems"][0].startswith("LOST: 1 acknowledged")
    assert results["load"]["attempts_by_status"] == {"200": 3, "503": 6}
    assert results["load"]["requests_by_final_status"] == {"200": 3, "503": 1}


def test_summary_flags_other_5xx_and_no_recovery(lt):
    A = lt.Attempt
    outcomes = [lt.Outcome(0, "a", [A("200", 0.0, 0.1, "r0")], {"request_id": "r0"}),
                lt.Outcome(1, "b", [A("500", 2.0, 2.1)]),
                lt.Outcome(2, "c", [A("503", 3.0, 3.1)] * 5)]
    restart = {"started_s": 1.0, "ended_s": 1.5}
    load = lt.summarise(lt.Config(requests=3), outcomes, 4.0, False, restart)
    assert load["recovered_during_load"] is False
    proof = {"acknowledged_without_record": 0, "record_household_mismatch": 0, "record_response_differs": 0,
             "records_without_200_by_kind": {}, "chain": {"intact": True}}
    results = {"proof": proof, "load": load, "problems": [], "readyz_after_load": 200}
    assert lt.judge(results) == lt.EXIT_SERVICE
    assert any("5xx other than 503" in p for p in results["problems"])
    assert any("did not recover" in p for p in results["problems"])


@pytest.fixture(scope="session")
def pg_cluster(lt) -> tuple[str, str]:
    """Session-scoped so that pytest checks it before it trains the session's model."""
    store = AuditStore(PG_URL)
    ok = store.ping()
    store.dispose()
    if not ok:
        if os.environ.get("RELIEF_RISK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (RELIEF_RISK_REQUIRE_POSTGRES=1) but {PG_URL} does not answer")
        pytest.skip(f"no PostgreSQL at {PG_URL}; set RELIEF_RISK_TEST_PG_URL or start the server")
    cluster = lt.pg_cluster_for(PG_URL)
    if cluster is None:
        pytest.skip(f"{PG_URL} is not a local cluster that pg_ctlcluster can restart (see pg_lsclusters)")
    return cluster


@pytest.mark.postgres
@pytest.mark.slow
def test_no_acknowledged_score_is_lost_across_a_postgres_restart(lt, pg_cluster, trained, mlflow_uri, tmp_path):
    cluster = pg_cluster
    out = tmp_path / "results.json"
    cfg = lt.Config(mlflow_uri=mlflow_uri, audit_url=PG_URL, requests=300, concurrency=8, restart_db_at=0.5,
                    workers=1, duration_limit=45, households=200, out=str(out), quiet=True)
    try:
        results, code = lt.run(cfg)
    finally:
        lt.ensure_pg_running(PG_URL, cluster)  # whatever happened, leave PostgreSQL up
    summary = lt.report(results)
    tail = results.get("server_log_tail", "")
    assert code == lt.EXIT_OK, f"{summary}\n{tail}"
    assert json.loads(out.read_text())["exit_code"] == 0

    load, proof, restart = results["load"], results["proof"], results["restart"]
    assert not load["truncated_at_duration_limit"] and load["requests_sent"] == 300, summary
    assert restart["triggered"] and restart["returncode"] == 0, summary
    # honest answers only: scored, or 503 while the store could not commit
    assert set(load["attempts_by_status"]) <= {"200", "503"}, summary
    assert set(load["requests_by_final_status"]) <= {"200", "503"}, summary
    assert load["recovered_after_restart"] is True and results["readyz_after_load"] == 200, summary
    assert results["post_restart_probe"]["all_200"], summary  # 3 more scores once the restart has returned
    # the proof: every 200 has its record, holding exactly the response; nothing else was stored
    assert proof["acknowledged_without_record"] == 0, summary
    assert proof["record_household_mismatch"] == 0 and proof["record_response_differs"] == 0, summary
    probes = len(results["post_restart_probe"]["attempts"])
    assert proof["records_found_by_id"] == proof["acknowledged_200"] == load["attempts_by_status"]["200"] + probes
    assert proof["new_records_for_our_requests"] == proof["acknowledged_200"] + proof["records_without_200"]
    assert proof["chain"]["intact"], summary
    assert proof["acknowledged_200"] >= 150, summary  # everything sent before the restart at least
    # with access logging on: every read of a record that was answered has its access event
    assert proof["reads_answered_200"] >= 30 and proof["reads_without_access_event"] == 0, summary
    assert set(proof["reads_by_status"]) <= {"200", "503"} and proof["access_chain"]["intact"], summary
