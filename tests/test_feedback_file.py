"""Caseworkers' feedback (POST /v1/feedback) and the household file (GET /v1/households/{id}),
in-process against the real model, audit store and policy file."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from store.feedback import feedback_verifications
from store.history import BatchRun, record_run
from tests import factories as f
from tests.conftest import auth

pytestmark = pytest.mark.slow


def ill_poor(household_id: str) -> dict:
    """A household plainly in trouble: a cancer stay with a large bill, little income, a sick head."""
    claims = [f.claim("C1", "2026-03-02", 42000, setting="inpatient", diagnosis_group="cancer", fund_paid=60000,
                      inpatient_days=20),
              f.claim("C2", "2026-05-20", 18000, setting="inpatient", diagnosis_group="cancer", fund_paid=30000,
                      inpatient_days=9)]
    return f.bundle(household_id, claims=claims, income=f.monthly_income(f.months_back(f.AS_OF, 12), 700,
                                                                          source="agriculture"))


def score(client, b) -> dict:
    r = client.post("/v1/score", json=b, headers=auth("platform"))
    assert r.status_code == 200, r.text
    return r.json()


def feedback(client, role="platform", **body):
    return client.post("/v1/feedback", json=body, headers=auth(role))


def hid() -> str:
    return f"HFB{uuid.uuid4().hex[:10]}"


def test_feedback_is_stored_once_and_conflicts_are_refused(client):
    h = hid()
    rid = score(client, ill_poor(h))["request_id"]
    body = {"request_id": rid, "household_id": h, "visited_on": "2026-07-08", "findings": ["illness_poverty"]}
    first = feedback(client, **body)
    assert first.status_code == 201, first.text
    fb = first.json()
    assert fb["findings"] == ["illness_poverty"] and fb["as_of"] == f.AS_OF and fb["feedback_id"]
    again = feedback(client, **body)
    assert again.status_code == 200 and again.json()["feedback_id"] == fb["feedback_id"]
    other = feedback(client, **{**body, "findings": ["not_in_need"]})
    assert other.status_code == 409 and fb["feedback_id"] in other.json()["detail"]
    # nothing already stored was lost or changed by the refused post
    stored = client.get(f"/v1/households/{h}", headers=auth("auditor")).json()["feedback"]
    assert [x["findings"] for x in stored] == [["illness_poverty"]]


def test_feedback_on_an_unknown_request_is_404(client):
    h = hid()
    score(client, ill_poor(h))
    r = feedback(client, request_id="0" * 32, household_id=h, visited_on="2026-07-08", findings=["not_in_need"])
    assert r.status_code == 404 and r.json()["detail"] == "no score request with this request_id"
    assert client.get(f"/v1/households/{h}", headers=auth("auditor")).json()["feedback"] == []


@pytest.mark.parametrize("change, field", [
    ({"request_id": "../../etc"}, "request_id"),
    ({"household_id": "SOMEONE-ELSE"}, "household_id"),
    ({"visited_on": "2026-01-01"}, "visited_on"),          # before the request's as_of
    ({"visited_on": "2999-01-01"}, "visited_on"),          # in the future
    ({"visited_on": "2026-13-01"}, "visited_on"),
    ({"findings": []}, "findings"),
    ({"findings": ["illness_poverty", "illness_poverty"]}, "findings"),
    ({"findings": ["illness_poverty", "not_in_need"]}, "findings"),
    ({"findings": ["rich"]}, "findings"),
    ({"findings": "illness_poverty"}, "findings"),
    ({"extra": 1}, "extra"),
])
def test_bad_feedback_names_the_field(client, change, field):
    h = hid()
    rid = score(client, ill_poor(h))["request_id"]
    body = {"request_id": rid, "household_id": h, "visited_on": "2026-07-08", "findings": ["illness_poverty"],
            **change}
    r = feedback(client, **body)
    assert r.status_code == 422, r.text
    assert any(field in [str(x) for x in d["loc"]] for d in r.json()["detail"]), r.json()
    assert client.get(f"/v1/households/{h}", headers=auth("auditor")).json()["feedback"] == []


def test_feedback_roles(client):
    body = {"request_id": "x", "household_id": "H1", "visited_on": "2026-07-08", "findings": ["not_in_need"]}
    assert feedback(client, role="auditor", **body).status_code == 403
    assert client.post("/v1/feedback", json=body).status_code == 401


def test_model_page_reports_how_often_flagged_visits_confirmed_need(client):
    before = {m["name"]: m["feedback"] for m in client.get("/v1/models", headers=auth("auditor")).json()["models"]}
    base = (before.get("illness_poverty") or {}).get("flagged_visits", 0)
    outcomes = [["illness_poverty"], ["not_in_need"], ["illness_poverty", "disability_poverty"]]
    for findings in outcomes:
        h = hid()
        js = score(client, ill_poor(h))
        assert next(s for s in js["scores"] if s["risk"] == "illness_poverty")["flagged"], js["scores"]
        r = feedback(client, request_id=js["request_id"], household_id=h, visited_on="2026-07-09", findings=findings)
        assert r.status_code == 201 and r.json()["confirmed"] == (["illness_poverty"] if findings[0] != "not_in_need"
                                                                  else [])
    after = {m["name"]: m["feedback"] for m in client.get("/v1/models", headers=auth("auditor")).json()["models"]}
    rates = after["illness_poverty"]
    assert rates["flagged_visits"] == base + 3
    assert rates["confirmed_rate"] == pytest.approx(rates["confirmed"] / rates["flagged_visits"])


def test_feedback_becomes_verification_rows(client, settings):
    h = hid()
    rid = score(client, ill_poor(h))["request_id"]
    assert feedback(client, request_id=rid, household_id=h, visited_on="2026-07-10",
                    findings=["illness_poverty", "elderly_care_need"]).status_code == 201
    rows = feedback_verifications(settings.audit_url)
    mine = rows.loc[rows["household_id"] == h].sort_values("finding")
    assert mine["finding"].tolist() == ["elderly_care_need", "illness_poverty"]
    assert (mine["visited_on"] == "2026-07-10").all() and list(rows.columns) == ["household_id", "visited_on",
                                                                                 "finding"]


# ---- the household file --------------------------------------------------------------------------
def test_household_file_shows_history_lists_eligibility_and_warm_list(client):
    h = hid()
    older = score(client, {**ill_poor(h), "as_of": "2026-05-31",
                           "income": f.monthly_income(f.months_back("2026-05-31", 12), 700, source="agriculture"),
                           "claims": ill_poor(h)["claims"][:1]})
    latest = score(client, ill_poor(h))
    r = client.get(f"/v1/households/{h}", headers=auth("platform"))
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["latest"]["request_id"] == latest["request_id"] and js["latest"]["as_of"] == f.AS_OF
    assert [e["id"] for e in js["history"]] == [latest["request_id"], older["request_id"]]
    assert all(e["source"] == "api_request" for e in js["history"])
    feats = {x["feature"]: x for x in js["features"]}
    assert feats["oop_12m"]["value"] == pytest.approx(60000) and feats["oop_12m"]["label"] == "近12个月自付医疗费用"
    assert js["scores"] == latest["scores"]
    assert js["lists"] == latest["lists"] and js["lists"], "a sick poor household is on some list"
    assert {p["program"] for p in js["eligibility"]["programs"]} >= {"dibao", "expenditure_hardship", "tekun"}
    assert all(p["steps"] for p in js["eligibility"]["programs"])
    assert js["warm_list"] and all(m["proposed_by"] for m in js["warm_list"])
    assert any("医疗" in m["label"] for m in js["warm_list"]), js["warm_list"]
    assert client.get(f"/v1/households/{h}", headers=auth("auditor")).status_code == 200
    assert client.get(f"/v1/households/{h}", headers=auth("admin")).status_code == 403


def test_household_file_includes_nightly_batches(client, settings):
    from store.audit import AuditStore

    h = hid()
    store = AuditStore(settings.audit_url)
    run = BatchRun(run_id=uuid.uuid4().hex, created_at=dt.datetime.now(dt.UTC), as_of="2026-06-30",
                   models=[{"name": "illness_poverty", "version": "1"}], households=1, flagged=1, output="/tmp/x")
    record_run(store.engine, run, [(h, {"illness_poverty": [0.31, "high", True]})])
    store.dispose()
    js = client.get(f"/v1/households/{h}", headers=auth("auditor")).json()
    assert js["latest"] is None and js["features"] == [] and js["eligibility"] is None
    (entry,) = js["history"]
    assert entry["source"] == "nightly_batch" and entry["id"] == run.run_id
    assert entry["scores"] == [{"risk": "illness_poverty", "probability": 0.31, "band": "high", "flagged": True,
                                "model_version": "1"}]
    score(client, ill_poor(h))
    js = client.get(f"/v1/households/{h}", headers=auth("auditor")).json()
    assert [e["source"] for e in js["history"]] == ["api_request", "nightly_batch"]


@pytest.mark.parametrize("path, status", [("/v1/households/NEVER-SCORED-1", 404),
                                          ("/v1/households/%2E%2E", 422), ("/v1/households/" + "H" * 65, 422)])
def test_household_file_unknown_or_bad_id(client, path, status):
    assert client.get(path, headers=auth("auditor")).status_code == status


def test_store_down_is_503_and_models_still_listed(client, monkeypatch):
    """With the store unreachable, feedback and the file answer 503 naming the store; /v1/models
    still lists the served models (without feedback rates)."""
    from sqlalchemy.exc import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(client.app.state.audit, "get", down)
    monkeypatch.setattr(client.app.state.audit, "query", down)
    monkeypatch.setattr(client.app.state.feedback, "confirmation", down)
    r = feedback(client, request_id="abc", household_id="H1", visited_on="2026-07-08", findings=["not_in_need"])
    assert r.status_code == 503 and "store unavailable" in r.json()["detail"]
    r = client.get("/v1/households/H1", headers=auth("auditor"))
    assert r.status_code == 503 and "store unavailable" in r.json()["detail"]
    models = client.get("/v1/models", headers=auth("auditor")).json()["models"]
    assert models and all(m["feedback"] is None for m in models)
