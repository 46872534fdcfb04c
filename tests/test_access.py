"""Accountable access, in-process against the real model and a real audit store: who asked is in every
record, every read of personal data is in the hash-chained access log, keys limited to towns see
only their towns, sign-ins are throttled, sign-out ends the session on the server, and a key can be
rate limited."""

from __future__ import annotations

import csv
import io
import re
import uuid

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings, key_id
from tests import factories as f
from tests.conftest import KEYS, KEYS_ENV

pytestmark = pytest.mark.slow

SCOPED = {"platform": "platform-tangqiao-key-0123", "auditor": "auditor-tangqiao-key-0123",
          "other": "platform-jingang-key-01234"}
ENV = (f"{KEYS_ENV},platform@tangqiao:{SCOPED['platform']},auditor@tangqiao+yangshe:{SCOPED['auditor']},"
       f"platform@jingang:{SCOPED['other']}")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def app_client(trained, mlflow_uri, tmp_path_factory):
    audit = tmp_path_factory.mktemp("access") / "audit.db"
    settings = Settings(api_keys=ENV, audit_url=f"sqlite:///{audit}", mlflow_tracking_uri=mlflow_uri,
                        login_failures="3/minute", secure_cookies=True)
    with TestClient(create_app(settings)) as c:
        yield c


def hid() -> str:
    return f"HAC{uuid.uuid4().hex[:10]}"


def score(client, household_id: str, town: str = "tangqiao", key: str = KEYS["platform"]):
    b = f.bundle(household_id)
    b["household"]["town"] = town
    return client.post("/v1/score", json=b, headers=bearer(key))


def events(client, **params) -> list[dict]:
    """The access events matching ``params`` but the test's own searches of the log (each is an event too)."""
    r = client.get("/v1/access", params=params, headers=bearer(KEYS["auditor"]))
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["action"] != "access_search"]


# ---- caller identity ----------------------------------------------------------------------------------
def test_key_ids_are_stable_fingerprints_not_keys():
    assert key_id(KEYS["platform"]) == key_id(KEYS["platform"])
    assert re.fullmatch(r"k-[0-9a-f]{12}", key_id(KEYS["platform"]))
    assert key_id(KEYS["platform"]) != key_id(KEYS["auditor"])
    assert KEYS["platform"] not in key_id(KEYS["platform"])


def test_every_record_names_its_caller_in_detail_search_csv_and_case_page(app_client):
    h = hid()
    rid = score(app_client, h, key=SCOPED["platform"]).json()["request_id"]
    caller = {"role": "platform", "key_id": key_id(SCOPED["platform"])}
    detail = app_client.get(f"/v1/audit/{rid}", headers=bearer(KEYS["auditor"])).json()
    assert detail["caller"] == caller and detail["town"] == "tangqiao"
    found = app_client.get("/v1/audit", params={"household_id": h}, headers=bearer(KEYS["auditor"])).json()
    assert [r["caller"] for r in found["records"]] == [caller]
    exported = app_client.get("/v1/audit", params={"household_id": h, "format": "csv"},
                              headers=bearer(KEYS["auditor"]))
    row = next(csv.DictReader(io.StringIO(exported.text)))
    assert (row["caller_role"], row["caller_key_id"]) == ("platform", caller["key_id"])
    page = app_client.get(f"/ui/cases/{rid}", headers=bearer(KEYS["auditor"]))
    assert page.status_code == 200 and caller["key_id"] in page.text
    assert SCOPED["platform"] not in detail.__repr__() + exported.text + page.text


def test_feedback_names_its_caller(app_client):
    h = hid()
    rid = score(app_client, h).json()["request_id"]
    r = app_client.post("/v1/feedback", json={"request_id": rid, "household_id": h, "visited_on": "2026-07-08",
                                              "findings": ["not_in_need"]}, headers=bearer(KEYS["platform"]))
    assert r.status_code == 201, r.text
    assert r.json()["caller"] == {"role": "platform", "key_id": key_id(KEYS["platform"])}
    file = app_client.get(f"/v1/households/{h}", headers=bearer(KEYS["auditor"])).json()
    assert file["feedback"][0]["caller"] == r.json()["caller"]


# ---- the access log ------------------------------------------------------------------------------------
def test_each_read_of_personal_data_appends_a_searchable_event(app_client):
    h = hid()
    rid = score(app_client, h).json()["request_id"]
    assert events(app_client, target=h) == []  # a score is a write (in the audit trail), not a read
    reads = [
        ("household_file", lambda: app_client.get(f"/v1/households/{h}", headers=bearer(KEYS["platform"]))),
        ("audit_record", lambda: app_client.get(f"/v1/audit/{rid}", headers=bearer(KEYS["auditor"]))),
        ("audit_search", lambda: app_client.get("/v1/audit", params={"household_id": h},
                                                headers=bearer(KEYS["auditor"]))),
        ("audit_export", lambda: app_client.get("/v1/audit", params={"household_id": h, "format": "csv"},
                                                headers=bearer(KEYS["auditor"]))),
        ("case_page", lambda: app_client.get(f"/ui/cases/{rid}", headers=bearer(KEYS["auditor"]))),
        ("audit_export", lambda: app_client.get("/ui/audit.csv", params={"household_id": h},
                                                headers=bearer(KEYS["auditor"]))),
        ("audit_search", lambda: app_client.get("/ui/audit", params={"household_id": h},
                                                headers=bearer(KEYS["auditor"]))),
        ("policy_check", lambda: app_client.post("/v1/policy/check", json=f.bundle(h),
                                                 headers=bearer(KEYS["auditor"]))),
    ]
    for n, (action, read) in enumerate(reads, start=1):
        assert read().status_code == 200, action
        got = events(app_client, target=h)
        assert len(got) == n, action  # grows by one with each read
        newest = got[0]
        assert newest["action"] == action and h in newest["households"]
        role = "platform" if action == "household_file" else "auditor"
        assert newest["caller"] == {"role": role, "key_id": key_id(KEYS[role])}
        if action != "policy_check":
            assert rid in newest["requests"]
    # searchable by caller, action, request id and time, newest first, paged
    assert [e["action"] for e in events(app_client, target=rid, action="audit_record")] == ["audit_record"]
    mine = events(app_client, key_id=key_id(KEYS["platform"]), target=h)
    assert [e["action"] for e in mine] == ["household_file"]
    first = app_client.get("/v1/access", params={"target": h, "limit": 3, "action": "audit_search"},
                           headers=bearer(KEYS["auditor"])).json()
    assert len(first["events"]) == 2 and first["next_before_seq"] is None
    first = app_client.get("/v1/access", params={"target": rid, "limit": 3}, headers=bearer(KEYS["auditor"])).json()
    assert len(first["events"]) == 3 and first["next_before_seq"] == first["events"][-1]["seq"]
    rest = app_client.get("/v1/access", params={"target": rid, "before_seq": first["next_before_seq"]},
                          headers=bearer(KEYS["auditor"])).json()["events"]
    seqs = [e["seq"] for e in first["events"] + rest]
    assert seqs == sorted(seqs, reverse=True)
    reads_of_rid = [e for e in first["events"] + rest if e["action"] != "access_search"]
    assert len(reads_of_rid) == len(reads) - 1  # the policy check names no record
    since = first["events"][-1]["created_at"]
    assert len(events(app_client, target=h, since=since)) >= 3
    assert events(app_client, target=h, until="2000-01-01T00:00:00+08:00") == []
    # the auditor's case page lists who read the household
    page = app_client.get(f"/ui/cases/{rid}", headers=bearer(KEYS["auditor"])).text
    assert "谁查看过该户" in page and "查看户档案" in page and key_id(KEYS["platform"]) in page
    # the access log's own chain holds
    n, problem = app_client.app.state.access.verify()
    assert problem is None and n >= len(reads)


def test_the_access_log_is_for_unscoped_auditors(app_client):
    assert app_client.get("/v1/access", headers=bearer(KEYS["platform"])).status_code == 403
    assert app_client.get("/v1/access", headers=bearer(SCOPED["auditor"])).status_code == 403
    for bad in ({"before_seq": "9223372036854775808"}, {"limit": "0"}, {"target": "a\x00b"}, {"key_id": "%"},
                {"action": "delete"}, {"since": "yesterday"}, {"before_seq": "²"}):
        r = app_client.get("/v1/access", params=bad, headers=bearer(KEYS["auditor"]))
        assert r.status_code == 422, (bad, r.text)


def test_a_read_the_access_log_cannot_record_is_not_answered(trained, mlflow_uri, tmp_path):
    settings = Settings(api_keys=KEYS_ENV, audit_url=f"sqlite:///{tmp_path / 'audit.db'}",
                        mlflow_tracking_uri=mlflow_uri)
    with TestClient(create_app(settings)) as c:
        h = hid()
        rid = score(c, h).json()["request_id"]
        with c.app.state.audit.engine.begin() as conn:  # the log's table gone: no event can be written
            conn.exec_driver_sql("DROP TABLE access_targets")
        r = c.get(f"/v1/audit/{rid}", headers=bearer(KEYS["auditor"]))
        assert r.status_code == 503 and "access log" in r.json()["detail"] and h not in r.text


# ---- keys limited to towns -----------------------------------------------------------------------------
def test_a_scoped_key_scores_only_its_towns(app_client):
    assert score(app_client, hid(), "tangqiao", SCOPED["platform"]).status_code == 200
    r = score(app_client, hid(), "jingang", SCOPED["platform"])
    assert r.status_code == 403 and "jingang" in r.json()["detail"]
    items = [f.bundle(hid()), f.bundle(hid())]
    items[1]["household"]["town"] = "yangshe"
    out = app_client.post("/v1/score/batch", json={"items": items}, headers=bearer(SCOPED["platform"])).json()
    assert "request_id" in out["results"][0]
    assert out["results"][1]["status"] == 403 and "yangshe" in out["results"][1]["detail"]
    check = app_client.post("/v1/policy/check", json=items[1], headers=bearer(SCOPED["platform"]))
    assert check.status_code == 403 and "yangshe" in check.json()["detail"]


def test_outside_its_towns_a_household_does_not_exist_for_a_scoped_key(app_client):
    h = hid()
    rid = score(app_client, h, "jingang", SCOPED["other"]).json()["request_id"]
    never = app_client.get(f"/v1/households/{hid()}", headers=bearer(SCOPED["platform"]))
    outside = app_client.get(f"/v1/households/{h}", headers=bearer(SCOPED["platform"]))
    assert outside.status_code == never.status_code == 404 and outside.json() == never.json()
    fb = {"request_id": rid, "household_id": h, "visited_on": "2026-07-08", "findings": ["not_in_need"]}
    refused = app_client.post("/v1/feedback", json=fb, headers=bearer(SCOPED["platform"]))
    unknown = app_client.post("/v1/feedback", json={**fb, "request_id": uuid.uuid4().hex},
                              headers=bearer(SCOPED["platform"]))
    assert refused.status_code == unknown.status_code == 404 and refused.json() == unknown.json()
    # nothing was stored by the refused feedback: the key of the household's town can still record the visit
    assert app_client.post("/v1/feedback", json=fb, headers=bearer(SCOPED["other"])).status_code == 201
    # a scoped auditor sees its towns' records only
    assert app_client.get(f"/v1/audit/{rid}", headers=bearer(SCOPED["auditor"])).status_code == 404
    assert app_client.get(f"/ui/cases/{rid}", headers=bearer(SCOPED["auditor"])).status_code == 404
    found = app_client.get("/v1/audit", params={"household_id": h}, headers=bearer(SCOPED["auditor"])).json()
    assert found["records"] == []
    # unscoped keys keep today's behaviour
    assert app_client.get(f"/v1/households/{h}", headers=bearer(KEYS["platform"])).status_code == 200


def test_scoped_key_syntax_is_checked():
    from serving.settings import parse_api_keys

    grants = parse_api_keys("platform@tangqiao+jingang:abcdefghijklmnop,auditor@jingang+tangqiao:abcdefghijklmnop")
    g = grants["abcdefghijklmnop"]
    assert g.towns == {"tangqiao", "jingang"} and g.roles == {"platform", "auditor"}
    for bad in ("platform@:abcdefghijklmnop", "platform@Tang Qiao:abcdefghijklmnop",
                "platform@tangqiao:abcdefghijklmnop,platform@jingang:abcdefghijklmnop",
                "platform@tangqiao:abcdefghijklmnop,auditor:abcdefghijklmnop"):
        with pytest.raises(ValueError):
            parse_api_keys(bad)


def test_a_key_limited_to_an_unknown_town_stops_the_start(trained, mlflow_uri, tmp_path):
    settings = Settings(api_keys=f"{KEYS_ENV},platform@atlantis:{SCOPED['platform']}",
                        audit_url=f"sqlite:///{tmp_path / 'audit.db'}", mlflow_tracking_uri=mlflow_uri)
    with pytest.raises(ValueError, match="atlantis"), TestClient(create_app(settings)):
        pass


# ---- sign-in throttling, sign-out, cookies ------------------------------------------------------------
def test_repeated_failed_sign_ins_get_429_with_retry_after(app_client):
    app_client.app.state.login_window._events.clear()
    for _ in range(3):
        r = app_client.post("/ui/login", data={"key": "wrong-key-0123456789", "next": "/ui/audit"},
                            follow_redirects=False)
        assert r.status_code == 401
    for key in ("wrong-key-0123456789", KEYS["auditor"]):  # throttled: not even the right key is tried
        r = app_client.post("/ui/login", data={"key": key, "next": "/ui/audit"}, follow_redirects=False)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    app_client.app.state.login_window._events.clear()


def test_sign_out_revokes_the_session_on_the_server(app_client):
    app_client.app.state.login_window._events.clear()
    r = app_client.post("/ui/login", data={"key": KEYS["auditor"], "next": "/ui/audit"}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.cookies.get("relief_risk_ui") or re.search(r"relief_risk_ui=([^;]+)", r.headers["set-cookie"])[1]
    assert "Secure" in r.headers["set-cookie"]  # forced by RELIEF_RISK_SECURE_COOKIES though this is plain HTTP
    copy = {"relief_risk_ui": cookie}
    app_client.cookies.clear()
    assert app_client.get("/ui/audit", cookies=copy, follow_redirects=False).status_code == 200
    out = app_client.post("/ui/logout", cookies=copy, follow_redirects=False)
    assert out.status_code == 303
    app_client.cookies.clear()
    # a copy of the cookie taken before sign-out no longer opens a page
    again = app_client.get("/ui/audit", cookies=copy, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/ui/login")


def test_a_rate_limited_key_gets_429_with_retry_after(trained, mlflow_uri, tmp_path):
    settings = Settings(api_keys=KEYS_ENV, audit_url=f"sqlite:///{tmp_path / 'audit.db'}",
                        mlflow_tracking_uri=mlflow_uri, key_rate="3/minute")
    with TestClient(create_app(settings)) as c:
        codes = [c.get("/v1/models", headers=bearer(KEYS["platform"])).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/models", headers=bearer(KEYS["platform"]))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert c.get("/v1/models", headers=bearer(KEYS["auditor"])).status_code == 200  # per key
    with pytest.raises(ValueError):
        Settings(api_keys=KEYS_ENV, key_rate="lots")


def test_personal_data_is_not_cached(app_client):
    h = hid()
    rid = score(app_client, h).json()["request_id"]
    for r in (app_client.get(f"/v1/households/{h}", headers=bearer(KEYS["auditor"])),
              app_client.get(f"/v1/audit/{rid}", headers=bearer(KEYS["auditor"])),
              app_client.get(f"/ui/cases/{rid}", headers=bearer(KEYS["auditor"])),
              score(app_client, hid())):
        assert r.status_code == 200 and "no-store" in r.headers.get("cache-control", ""), r.request.url


# ---- purged records ------------------------------------------------------------------------------------
def test_a_purged_record_says_so_everywhere_and_the_chain_still_holds(app_client):
    import datetime as dt

    h = hid()
    rid = score(app_client, h).json()["request_id"]
    store = app_client.app.state.audit
    done = store.purge(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1), household_id=h)
    assert done.records == 1 and done.legacy_kept == 0
    assert store.verify()[1] is None
    detail = app_client.get(f"/v1/audit/{rid}", headers=bearer(KEYS["auditor"])).json()
    assert detail["purged_at"] and detail["request"] is None and detail["scores"] is None
    assert detail["caller"]["role"] == "platform" and detail["household_id"] == h
    file = app_client.get(f"/v1/households/{h}", headers=bearer(KEYS["auditor"]))
    assert file.status_code == 200 and file.json()["latest"] is None and file.json()["history"][0]["id"] == rid
    page = app_client.get(f"/ui/cases/{rid}", headers=bearer(KEYS["auditor"]))
    assert page.status_code == 200 and 'id="purged"' in page.text
    found = app_client.get("/v1/audit", params={"household_id": h, "format": "csv"}, headers=bearer(KEYS["auditor"]))
    assert found.status_code == 200 and detail["purged_at"] in found.text
    fb = app_client.post("/v1/feedback", json={"request_id": rid, "household_id": h, "visited_on": "2026-07-08",
                                               "findings": ["not_in_need"]}, headers=bearer(KEYS["platform"]))
    assert fb.status_code == 422 and "purged" in fb.text


# ---- the service's own checkpoints ------------------------------------------------------------------
def test_the_service_signs_checkpoints_that_verify(trained, mlflow_uri, tmp_path):
    from store.checkpoint import load_public_key, read, verify_file, write_keys

    key, pub = write_keys(tmp_path / "keys")
    out = tmp_path / "checkpoints.jsonl"
    settings = Settings(api_keys=KEYS_ENV, audit_url=f"sqlite:///{tmp_path / 'audit.db'}",
                        mlflow_tracking_uri=mlflow_uri, checkpoint_key=str(key), checkpoint_file=str(out),
                        checkpoint_every_records=2)
    with TestClient(create_app(settings)) as c:
        for _ in range(3):
            h = hid()
            assert score(c, h).status_code == 200
            assert c.get(f"/v1/households/{h}", headers=bearer(KEYS["auditor"])).status_code == 200
        c.app.state.checkpointer.tick()
        store = c.app.state.audit
        assert verify_file(store, out, load_public_key(pub)) == []
    checkpoints, problems = read(out)
    assert problems == [] and checkpoints[-1].audit.seq == 3 and checkpoints[-1].access.seq == 3
    with pytest.raises(ValueError, match="CHECKPOINT_KEY and RELIEF_RISK_CHECKPOINT_FILE"):
        Settings(api_keys=KEYS_ENV, checkpoint_key=str(key))
