"""Operations metrics and log lines (serving/metrics.py, serving/logs.py, serving/middleware.py):
``GET /metrics`` is the admin's; it counts requests by route template (never a path with an id),
scores by risk, band and flag as answered, audit commits and store failures, and names the loaded
models and readiness; with ``serve --workers 2`` any worker reports the whole service. Every log
line of a real server is a JSON object with the request's id, and none holds a household id or a key.

Over 400 lines because metrics and log lines are tested together: each real server this file starts
(one worker, and two) is checked for both at once, rather than started twice.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from domain.bundle import CONTRACT_EXAMPLE
from serving.app import create_app
from serving.logs import REQUEST_ID, JsonFormatter, RequestIdFilter, TextFormatter, logging_config
from serving.metrics import Metrics
from serving.settings import Settings
from tests.conftest import KEYS, KEYS_ENV, auth, start_server, wait_ready
from tests.factories import bundle

pytestmark = pytest.mark.slow

HOUSEHOLDS = [f"HMETRIC{i:03d}" for i in range(6)]  # ids that must show up in no metric and no log line
HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ---- reading the exposition ---------------------------------------------------------------------------
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def scrape(client: Any, url: str = "") -> tuple[str, Samples]:
    r = client.get(url + "/metrics", headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text, samples(r.text)


def score_counts(answers: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """What the scores answered say, as the metric's labels (risk, band, flagged)."""
    return Counter((s["risk"], s["band"], "true" if s["flagged"] else "false") for a in answers for s in a["scores"])


def metric_scores(before: Samples, after: Samples) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for (name, labels), v in after.items():
        if name == "relief_risk_scores_total":
            d = dict(labels)
            n = v - before.get((name, labels), 0.0)
            if n:
                out[(d["risk"], d["band"], d["flagged"])] += int(n)
    return out


def household(i: int) -> dict[str, Any]:
    """Bundles of different households, poorer and richer, so that bands differ."""
    b = bundle(HOUSEHOLDS[i])
    if i % 2:
        b["household"]["financial_assets"] = 400_000.0
        b["claims"] = []
    return b


# ---- one app in this process ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app_client(trained, mlflow_uri, tmp_path_factory):
    audit = tmp_path_factory.mktemp("metrics") / "audit.db"
    app = create_app(Settings(api_keys=KEYS_ENV, audit_url=f"sqlite:///{audit}", mlflow_tracking_uri=mlflow_uri))
    with TestClient(app) as c:
        yield c


def test_metrics_are_the_admin_s_alone(app_client):
    assert app_client.get("/metrics").status_code == 401
    assert app_client.get("/metrics", headers={"Authorization": "Bearer not-a-key-at-all"}).status_code == 401
    for role in ("platform", "auditor"):
        r = app_client.get("/metrics", headers=auth(role))
        assert r.status_code == 403 and "admin" in r.json()["detail"], role
    r = app_client.get("/metrics", headers=auth("admin"))
    assert r.status_code == 200 and "relief_risk_http_requests_total" in r.text


def test_scores_are_counted_by_risk_band_and_flag_as_answered(app_client):
    _, before = scrape(app_client)
    answers = []
    for i in range(4):
        r = app_client.post("/v1/score", json=household(i), headers=auth("platform"))
        assert r.status_code == 200, r.text
        answers.append(r.json())
    bad = household(4)
    bad["claims"][0]["total_cost"] = -1
    assert app_client.post("/v1/score", json=bad, headers=auth("platform")).status_code == 422  # not a score
    r = app_client.post("/v1/score/batch", json={"items": [household(4), bad, household(5)]}, headers=auth("platform"))
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[1]["status"] == 422
    answers += [results[0], results[2]]
    _, after = scrape(app_client)
    expected = score_counts(answers)
    assert len({band for _, band, _ in expected}) >= 2, "the households should fall in different bands"
    assert metric_scores(before, after) == expected
    assert sum(expected.values()) == 6 * len(answers[0]["scores"])


def test_requests_are_counted_by_route_template_with_no_id_in_the_text(app_client):
    scored = app_client.post("/v1/score", json=household(0), headers=auth("platform")).json()
    _, before = scrape(app_client)
    assert app_client.get(f"/v1/households/{HOUSEHOLDS[0]}", headers=auth("auditor")).status_code == 200
    assert app_client.get(f"/v1/audit/{scored['request_id']}", headers=auth("auditor")).status_code == 200
    assert app_client.get("/v1/audit/" + "f" * 32, headers=auth("auditor")).status_code == 404
    assert app_client.get(f"/v1/nothing/{HOUSEHOLDS[1]}").status_code == 404
    text, after = scrape(app_client)

    def delta(route: str, status: str, method: str = "GET") -> float:
        labels = {"method": method, "route": route, "status": status}
        return (total(after, "relief_risk_http_requests_total", **labels)
                - total(before, "relief_risk_http_requests_total", **labels))

    assert delta("/v1/households/{household_id}", "200") == 1
    assert delta("/v1/audit/{request_id}", "200") == 1 and delta("/v1/audit/{request_id}", "404") == 1
    assert delta("(unmatched)", "404") == 1
    assert delta("/metrics", "200") == 1  # the scrape before this one
    # the latency histogram counts the same requests
    for labels in ({"route": "/v1/score", "method": "POST", "status": "200"},
                   {"route": "/v1/audit/{request_id}", "method": "GET", "status": "404"}):
        assert (total(after, "relief_risk_http_request_duration_seconds_count", **labels)
                == total(after, "relief_risk_http_requests_total", **labels) > 0)
    for secret in [*HOUSEHOLDS, scored["request_id"], "f" * 32, "/v1/nothing", *KEYS.values()]:
        assert secret not in text, secret


def test_audit_commits_are_timed_and_sized(app_client):
    committer = app_client.app.state.committer
    app_client.post("/v1/score/batch", json={"items": [household(2), household(3)]}, headers=auth("platform"))
    _, found = scrape(app_client)
    assert total(found, "relief_risk_audit_commit_duration_seconds_count") == committer.commits > 0
    assert total(found, "relief_risk_audit_commit_entries_count") == committer.commits
    assert total(found, "relief_risk_audit_commit_entries_sum") == committer.entries
    assert total(found, "relief_risk_audit_commit_duration_seconds_sum") > 0
    # the batch's two records went in one transaction: some commit carried two entries or more
    assert (total(found, "relief_risk_audit_commit_entries_count")
            - total(found, "relief_risk_audit_commit_entries_bucket", le="1.0")) >= 1


def test_the_loaded_model_versions_the_missing_risks_and_readiness(app_client):
    version = str(mlflow.MlflowClient().get_model_version_by_alias("illness_poverty", "champion").version)
    _, found = scrape(app_client)
    info = {dict(ls)["risk"]: dict(ls) for (n, ls), v in found.items() if n == "relief_risk_model_info" and v == 1}
    assert info["illness_poverty"] == {"risk": "illness_poverty", "name": "illness_poverty", "version": version}
    missing = {dict(ls)["risk"]: v for (n, ls), v in found.items() if n == "relief_risk_model_missing"}
    served = app_client.app.state.scorer.models
    assert missing == {r: (0.0 if any(m.risk == r for m in served) else 1.0) for r in Settings.model_fields[
        "risks"].default}
    assert set(app_client.app.state.missing) == {r for r, v in missing.items() if v == 1}
    assert total(found, "relief_risk_ready") == 1


def test_a_failing_store_is_counted_and_ready_turns_0(trained, mlflow_uri, tmp_path):
    """The audit table dropped under a running app: a score is 503 (its record cannot commit), a
    household file 503; both counted by kind, the failed transaction too, and the service not ready."""
    audit = tmp_path / "audit.db"
    app = create_app(Settings(api_keys=KEYS_ENV, audit_url=f"sqlite:///{audit}", mlflow_tracking_uri=mlflow_uri))
    with TestClient(app) as client:
        assert client.post("/v1/score", json=household(0), headers=auth("platform")).status_code == 200
        _, before = scrape(client)
        with sqlite3.connect(audit) as db:
            db.execute("DROP TABLE audit_records")
            db.execute("DROP TABLE access_log")
        r = client.post("/v1/score", json=household(1), headers=auth("platform"))
        assert r.status_code == 503 and "nothing was scored" in r.json()["detail"]
        assert client.get(f"/v1/households/{HOUSEHOLDS[0]}", headers=auth("auditor")).status_code == 503
        _, after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("relief_risk_store_failures_total", kind="audit") == 1
    assert delta("relief_risk_store_failures_total") == 2  # and the household file's, of its own kind
    assert delta("relief_risk_audit_commit_failures_total") == 1
    assert metric_scores(before, after) == Counter()  # a score not committed is no score
    assert total(after, "relief_risk_ready") == 1  # SELECT 1 still answers: the store is up, a table is gone
    assert delta("relief_risk_http_requests_total", route="/v1/score", status="503") == 1


# ---- request ids and log lines -----------------------------------------------------------------------------
@pytest.fixture
def json_lines():
    """The service's log records of the test, as a JSON log handler writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("relief_risk")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_each_request_has_an_id_and_a_single_score_s_is_its_audit_record_s(app_client, json_lines):
    r = app_client.post("/v1/score", json=household(0), headers=auth("platform"))
    rid = r.headers["x-request-id"]
    assert HEX32.match(rid) and r.json()["request_id"] == rid
    record = app_client.get(f"/v1/audit/{rid}", headers=auth("auditor"))
    assert record.status_code == 200 and record.json()["request_id"] == rid
    other = app_client.get("/healthz")
    assert HEX32.match(other.headers["x-request-id"]) and other.headers["x-request-id"] != rid
    batch = app_client.post("/v1/score/batch", json={"items": [household(1)]}, headers=auth("platform"))
    assert batch.json()["results"][0]["request_id"] != batch.headers["x-request-id"]  # each item its own
    lines = {line["request_id"]: line for line in json_lines() if line["logger"] == "relief_risk.serving"}
    line = lines[rid]
    assert set(line) == {"time", "level", "logger", "message", "request_id", "method", "route", "status", "ms"}
    assert (line["level"], line["method"], line["route"], line["status"]) == ("INFO", "POST", "/v1/score", 200)
    assert line["message"] == f"POST /v1/score 200 {line['ms']:.1f}ms" and line["ms"] >= 0
    assert lines[record.headers["x-request-id"]]["route"] == "/v1/audit/{request_id}"
    assert REQUEST_ID.get() is None  # nothing left behind in the test's own context


def test_a_line_logged_while_a_request_is_answered_carries_its_id(trained, mlflow_uri, tmp_path, json_lines):
    audit = tmp_path / "audit.db"
    app = create_app(Settings(api_keys=KEYS_ENV, audit_url=f"sqlite:///{audit}", mlflow_tracking_uri=mlflow_uri))
    with TestClient(app) as client:
        client.post("/v1/score", json=household(0), headers=auth("platform"))
        with sqlite3.connect(audit) as db:
            db.execute("DROP TABLE audit_records")
        r = client.post("/v1/score", json=household(1), headers=auth("platform"))
    assert r.status_code == 503
    said = [line for line in json_lines() if line.get("request_id") == r.headers["x-request-id"]]
    errors = [line["message"] for line in said if line["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("audit write failed: "), errors
    assert said[-1]["route"] == "/v1/score" and said[-1]["status"] == 503
    assert not any(h in json.dumps(said) for h in HOUSEHOLDS)


def test_json_and_text_lines_hold_time_level_logger_message_and_the_request_id():
    record = logging.LogRecord("relief_risk.serving", logging.WARNING, __file__, 1, "odd %s", ("thing",), None)
    token = REQUEST_ID.set("a" * 32)
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line.pop("time").endswith("+00:00")
    assert line == {"level": "WARNING", "logger": "relief_risk.serving", "message": "odd thing", "request_id": "a" * 32}
    assert re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ WARNING relief_risk.serving \[a{32}\]: odd thing$",
                    TextFormatter().format(record))
    outside = logging.LogRecord("relief_risk.serve", logging.INFO, __file__, 1, "up", None, None)
    RequestIdFilter().filter(outside)
    assert "request_id" not in json.loads(JsonFormatter().format(outside))
    outside.count, outside.where = 2**70, Path("/x")  # extra fields orjson refuses or cannot write: still one line
    assert json.loads(JsonFormatter().format(outside))["count"] == 2**70
    assert logging_config("text")["formatters"]["line"]["()"] is TextFormatter
    with pytest.raises(ValueError, match="json or text"):
        logging_config("yaml")  # type: ignore[arg-type]


def test_an_app_counts_apart_from_another_in_the_same_process():
    a, b = Metrics(multiprocess=False), Metrics(multiprocess=False)
    a.request("GET", "/healthz", 200, 0.001)
    a.request("BREW", None, 405, 0.001)  # an odd method is OTHER, no route (unmatched)
    assert 'relief_risk_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in a.exposition().decode()
    assert 'method="OTHER",route="(unmatched)",status="405"' in a.exposition().decode()
    assert "relief_risk_http_requests_total{" not in b.exposition().decode()


# ---- real servers --------------------------------------------------------------------------------------------
def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a server's output, each of which must be one JSON object."""
    lines = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            pytest.fail(f"line {n} of the server's log is not JSON: {text[:300]!r}")
        assert isinstance(line, dict) and {"time", "level", "logger", "message"} <= set(line), text
        lines.append(line)
    return lines


def assert_no_identifier_in(text: str) -> None:
    for secret in [*HOUSEHOLDS, "H000123", "P0001", *KEYS.values()]:
        assert secret not in text, secret


def test_a_real_server_counts_and_logs_json_lines_with_request_ids(live_server):
    url = live_server["url"]
    with httpx.Client(timeout=60) as c:
        _, before = scrape(c, url)
        answers, ids = [], []
        for i in range(3):
            r = c.post(url + "/v1/score", json=household(i), headers=auth("platform"))
            assert r.status_code == 200, r.text
            answers.append(r.json())
            ids.append(r.headers["x-request-id"])
        r = c.post(url + "/v1/score", json=CONTRACT_EXAMPLE, headers=auth("platform"))
        answers.append(r.json())
        ids.append(r.headers["x-request-id"])
        assert c.get(f"{url}/v1/households/{HOUSEHOLDS[0]}", headers=auth("auditor")).status_code == 200
        assert c.get(url + "/metrics", headers=auth("platform")).status_code == 403
        text, after = scrape(c, url)
    assert metric_scores(before, after) == score_counts(answers)
    assert total(after, "relief_risk_http_requests_total", route="/v1/households/{household_id}", status="200") >= 1
    assert total(after, "relief_risk_audit_commit_duration_seconds_count") >= 4
    assert total(after, "relief_risk_ready") == 1
    assert_no_identifier_in(text)
    time.sleep(0.5)  # the last request's line reaches the file
    lines = log_lines(live_server["log"])
    requests = {line["request_id"]: line for line in lines if line.get("route")}
    for rid in ids:
        assert requests[rid]["route"] == "/v1/score" and requests[rid]["status"] == 200
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines are JSON too
    assert_no_identifier_in(live_server["log"].read_text(encoding="utf-8"))


def _workers(pid: int) -> list[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def worker_scores(path: Path) -> float:
    """The ``POST /v1/score`` 200s one worker counted, read from its own file."""
    from prometheus_client.mmap_dict import MmapedDict

    total = 0.0
    for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
        name, sample, labels, *_ = json.loads(key)
        if sample == "relief_risk_http_requests_total" and labels.get("route") == "/v1/score" \
                and labels.get("status") == "200":
            total += value
    return total


def test_two_workers_report_the_whole_service_from_either(trained, mlflow_uri, tmp_path):
    """``serve --workers 2``: scores spread over both workers are all counted by whichever answers
    /metrics; a worker that dies keeps its counts, loses its live gauges and is replaced; the
    metrics folder is private to the run and gone when the service stops."""
    proc, url, log = start_server(tmp_path, mlflow_uri, "--workers", "2", timeout=180)
    try:
        deadline = time.monotonic() + 120
        while len(workers := _workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        folder = Path(_environ(workers[0])["PROMETHEUS_MULTIPROC_DIR"])
        assert folder.is_dir() and oct(folder.stat().st_mode & 0o777) == "0o700"
        assert {_environ(w)["PROMETHEUS_MULTIPROC_DIR"] for w in workers} == {str(folder)}
        for _ in range(120):  # both ready (the second loads its models a little later)
            if all(f.exists() for f in (folder / f"gauge_livemin_{w}.db" for w in workers)) and \
                    total(scrape(httpx, url)[1], "relief_risk_ready") == 1:
                break
            time.sleep(0.5)
        clients = [httpx.Client(timeout=60) for _ in range(16)]  # opened together: the kernel spreads them
        answers = []
        try:
            for _ in range(3):
                for i, c in enumerate(clients):
                    r = c.post(url + "/v1/score", json=household(i % len(HOUSEHOLDS)), headers=auth("platform"))
                    assert r.status_code == 200, r.text
                    answers.append(r.json())
        finally:
            for c in clients:
                c.close()
        scored_by = {w: worker_scores(folder / f"counter_{w}.db") for w in workers}
        assert all(n > 0 for n in scored_by.values()) and sum(scored_by.values()) == len(answers), scored_by
        expected = score_counts(answers)
        views = []
        for _ in range(8):  # fresh connections, whichever worker takes each
            with httpx.Client(timeout=60) as c:
                views.append(metric_scores({}, scrape(c, url)[1]))
        assert all(v == expected for v in views), (views, expected)

        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (victim in _workers(proc.pid) or len(_workers(proc.pid)) < 2):
            time.sleep(0.5)
        assert not (folder / f"gauge_livemin_{victim}.db").exists(), "the dead worker was not marked dead"
        wait_ready(url, proc, log, timeout=120)
        after = metric_scores({}, scrape(httpx, url)[1])
        assert after == expected  # the dead worker's counts are kept
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not folder.exists(), "the metrics folder outlives the service"
    lines = log_lines(log)
    assert {"relief_risk.serve", "relief_risk.serving", "uvicorn.error"} <= {line["logger"] for line in lines}
    assert sum(line.get("route") == "/v1/score" and bool(HEX32.match(line.get("request_id", "")))
               for line in lines) == len(answers)
    assert_no_identifier_in(log.read_text(encoding="utf-8"))
