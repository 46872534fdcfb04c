"""The API in-process (TestClient) against a real model in a temporary MLflow store."""

from __future__ import annotations

import copy
import json

import pytest

from domain.bundle import CONTRACT_EXAMPLE
from features.catalog import FEATURE_IDS
from policy import PROGRAM_LABELS
from tests.conftest import auth

pytestmark = pytest.mark.slow


def bundle(**changes) -> dict:
    b = copy.deepcopy(CONTRACT_EXAMPLE)
    b["members"].append({"person_id": "P0002", "relation": "spouse", "sex": "F", "birth_date": "1963-07-19",
                         "employment": "farmer", "disability_grade": 0})
    b["income"] = [{"person_id": p, "month": f"2026-{m:02d}", "source": "agriculture", "amount": 1400}
                   for p in ("P0001", "P0002") for m in range(1, 7)]
    b.update(changes)
    return b


def post(client, body, role="platform", path="/v1/score"):
    return client.post(path, json=body, headers=auth(role))


# ---- keys and roles ------------------------------------------------------------------------------
def test_health_needs_no_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "ready"}


@pytest.mark.parametrize("headers, status", [
    ({}, 401), ({"Authorization": "Bearer nope-nope-nope"}, 401), ({"Authorization": "Basic abc"}, 401),
    (auth("auditor"), 403), (auth("admin"), 403),
])
def test_score_keys_and_roles(client, headers, status):
    r = client.post("/v1/score", json=bundle(), headers=headers)
    assert r.status_code == status


def test_audit_is_for_auditors_only(client):
    rid = post(client, bundle()).json()["request_id"]
    assert client.get(f"/v1/audit/{rid}", headers=auth("platform")).status_code == 403
    assert client.get(f"/v1/audit/{rid}").status_code == 401
    assert client.get(f"/v1/audit/{rid}", headers=auth("auditor")).status_code == 200


# ---- a good request ------------------------------------------------------------------------------
def test_score_response_follows_the_contract(client, champion):
    r = post(client, bundle())
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["household_id"] == "H000123" and js["as_of"] == "2026-06-30" and js["request_id"]
    (s,) = js["scores"]
    assert s["risk"] == "illness_poverty" and 0 <= s["probability"] <= 1
    assert s["band"] in ("high", "medium", "low") and s["flagged"] == (s["band"] == "high")
    assert s["model"]["name"] == "illness_poverty" and s["model"]["version"] == "1"
    assert 1 <= len(s["reasons"]) <= 5
    mags = [abs(x["contribution"]) for x in s["reasons"]]
    assert mags == sorted(mags, reverse=True)
    assert all(x["label"] and not x["label"].isascii() for x in s["reasons"])
    # 1,400 a person a month, between the lines; 19,000 yuan out of pocket
    assert js["eligible_programs"] == ["dibao_edge_income", "dibao_edge_expenditure", "expenditure_hardship"]
    assert js["eligible_program_labels"] == [PROGRAM_LABELS[p] for p in js["eligible_programs"]]


def test_audit_record_adds_up_and_keeps_the_response_exactly(client):
    r = post(client, bundle())
    rid = r.json()["request_id"]
    rec = client.get(f"/v1/audit/{rid}", headers=auth("auditor")).json()
    assert rec["response"] == r.json()
    assert rec["request"]["household"]["household_id"] == "H000123"
    assert rec["models"] == [{"name": "illness_poverty", "version": "1"}]
    for s in rec["scores"]:
        assert abs(s["base_value"] + sum(s["contributions"].values()) - s["raw_score"]) < 1e-6
        assert list(s["contributions"]) == list(FEATURE_IDS)


def test_unknown_audit_record_is_404(client):
    assert client.get("/v1/audit/nope", headers=auth("auditor")).status_code == 404


def test_models_lists_the_champion(client):
    js = client.get("/v1/models", headers=auth("auditor")).json()
    assert js["models"][0]["name"] == "illness_poverty" and "champion" in js["models"][0]["aliases"]


def test_batch_answers_in_order_and_a_bad_item_does_not_sink_the_others(client):
    bad = bundle()
    bad["claims"][0]["total_cost"] += 1000
    r = post(client, {"items": [bundle(), bad, bundle()]}, path="/v1/score/batch")
    assert r.status_code == 200
    res = r.json()["results"]
    assert [("request_id" in x) for x in res] == [True, False, True]
    assert res[1]["status"] == 422 and res[1]["detail"][0]["loc"] == ["body", "items", 1, "claims", 0, "total_cost"]
    assert res[0]["scores"][0]["probability"] == res[2]["scores"][0]["probability"]


# ---- bad input: a 4xx naming the field, nothing stored --------------------------------------------
def _m(path, value):
    def mutate(b):
        target = b
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return b
    return mutate


BAD = {
    "claim invariant": (_m(["claims", 0, "total_cost"], 69000), ["body", "claims", 0, "total_cost"]),
    "negative amount": (_m(["income", 0, "amount"], -1), ["body", "income", 0, "amount"]),
    "amount as string": (_m(["income", 0, "amount"], "1400"), ["body", "income", 0, "amount"]),
    "bool as count": (_m(["household", "property_count"], True), ["body", "household", "property_count"]),
    "bad enum": (_m(["household", "hukou_type"], "suburban"), ["body", "household", "hukou_type"]),
    "unknown town": (_m(["household", "town"], "atlantis"), ["body", "household", "town"]),
    "bad date": (_m(["members", 0, "birth_date"], "1961-02-30"), ["body", "members", 0, "birth_date"]),
    "date format": (_m(["as_of"], "30/06/2026"), ["body", "as_of"]),
    "month 13": (_m(["income", 0, "month"], "2026-13"), ["body", "income", 0, "month"]),
    "month before 1900": (_m(["income", 0, "month"], "1899-12"), ["body", "income", 0, "month"]),
    "month in full-width digits": (_m(["income", 0, "month"], "２０２６-05"), ["body", "income", 0, "month"]),
    "date in full-width digits": (_m(["as_of"], "２０２６-０６-３０"), ["body", "as_of"]),
    "claim after as_of": (_m(["claims", 0, "service_date"], "2026-07-01"), ["body", "claims", 0, "service_date"]),
    "income after as_of": (_m(["income", 0, "month"], "2026-07"), ["body", "income", 0, "month"]),
    "born after as_of": (_m(["members", 1, "birth_date"], "2026-07-01"), ["body", "members", 1, "birth_date"]),
    "unknown person": (_m(["claims", 0, "person_id"], "P9999"), ["body", "claims", 0, "person_id"]),
    "duplicate person": (_m(["members", 1, "person_id"], "P0001"), ["body", "members", 1, "person_id"]),
    "two heads": (_m(["members", 1, "relation"], "head"), ["body", "members"]),
    "member of another household": (_m(["members", 0, "household_id"], "H999"), ["body", "members", 0, "household_id"]),
    "missing field": (_m(["household", "housing"], KeyError), ["body", "household", "housing"]),
    "unknown field": (_m(["household", "favourite_colour"], "red"), ["body", "household", "favourite_colour"]),
    "no members": (_m(["members"], []), ["body", "members"]),
    "disability grade 5": (_m(["members", 0, "disability_grade"], 5), ["body", "members", 0, "disability_grade"]),
    "inpatient days outside inpatient": (
        lambda b: (b["claims"][0].update(setting="outpatient"), b)[1], ["body", "claims", 0, "inpatient_days"]),
    "absurd amount": (_m(["household", "financial_assets"], 1e300), ["body", "household", "financial_assets"]),
    "as_of before any policy": (_m(["as_of"], "1999-12-31"), ["body", "as_of"]),
    "assistance ends before it starts": (
        lambda b: (b["assistance"].append({"program": "dibao", "start_date": "2025-01-01", "end_date": "2024-01-01",
                                           "monthly_amount": 800}), b)[1], ["body", "assistance", 0, "end_date"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_422_naming_the_field_and_stores_nothing(client, settings, name):
    from store.audit import AuditStore

    mutate, loc = BAD[name]
    before = AuditStore(settings.audit_url).count()
    r = post(client, mutate(bundle()))
    assert r.status_code == 422, (name, r.text)
    locs = [d["loc"] for d in r.json()["detail"]]
    assert loc in locs, (name, locs)
    assert all(d["msg"] for d in r.json()["detail"])
    assert "pattern" not in " ".join(d["msg"] for d in r.json()["detail"]), "a reason in words, not a regex"
    assert AuditStore(settings.audit_url).count() == before


@pytest.mark.parametrize("raw", [b"{", b"null", b"[]", b'"x"', b"",
                                 b'{"as_of": NaN}', json.dumps(bundle()).replace("1400", "NaN").encode(),
                                 json.dumps(bundle()).replace("1400", "Infinity").encode()])
def test_malformed_json_is_4xx(client, raw):
    r = client.post("/v1/score", content=raw, headers={**auth("platform"), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500
    assert client.get("/healthz").status_code == 200


def test_oversized_body_is_413(client):
    r = client.post("/v1/score", content=b"{" + b" " * (9 * 1024 * 1024) + b"}",
                    headers={**auth("platform"), "Content-Type": "application/json"})
    assert r.status_code == 413


def test_too_many_rows_is_422(client):
    b = bundle()
    b["income"] = [{"person_id": "P0001", "month": "2026-01", "source": "other", "amount": 1}] * 5001
    r = post(client, b)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "income"]


def test_batch_limits(client):
    assert post(client, {"items": []}, path="/v1/score/batch").status_code == 422
    assert post(client, [bundle()], path="/v1/score/batch").status_code == 422
    assert post(client, {"items": [{}] * 1001}, path="/v1/score/batch").status_code == 422


def test_openapi_documents_the_contract(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/score/batch", "/v1/audit/{request_id}", "/v1/models", "/healthz", "/readyz"} <= set(
        spec["paths"])
    assert "bearer" in json.dumps(spec["components"]["securitySchemes"]).lower()


# ---- auditors' search -----------------------------------------------------------------------------
def test_audit_search_filters_pages_and_exports_csv(client):
    ids = [post(client, bundle(household={**CONTRACT_EXAMPLE["household"], "household_id": "HSEARCH"})).json()
           ["request_id"] for _ in range(3)]
    h = auth("auditor")
    page = client.get("/v1/audit", params={"household_id": "HSEARCH", "limit": 2}, headers=h).json()
    assert [r["request_id"] for r in page["records"]] == ids[::-1][:2]
    rest = client.get("/v1/audit", params={"household_id": "HSEARCH", "limit": 2,
                                           "before_seq": page["next_before_seq"]}, headers=h).json()
    assert [r["request_id"] for r in rest["records"]] == ids[:1] and rest["next_before_seq"] is None
    assert page["records"][0]["models"] == "illness_poverty:1"
    assert client.get("/v1/audit", params={"model_version": "99"}, headers=h).json()["records"] == []
    csv_text = client.get("/v1/audit", params={"household_id": "HSEARCH", "format": "csv"}, headers=h)
    assert csv_text.headers["content-type"].startswith("text/csv")
    lines = csv_text.text.strip().splitlines()
    assert lines[0].startswith("seq,request_id,created_at") and len(lines) == 4
    assert "illness_poverty_probability" in lines[0]
    assert client.get("/v1/audit", params={"limit": 0}, headers=h).status_code == 422
    assert client.get("/v1/audit", params={"nonsense": 1}, headers=h).status_code == 422
    assert client.get("/v1/audit", headers=auth("platform")).status_code == 403


def test_audit_detail_carries_its_place_in_the_chain(client):
    rid = post(client, bundle()).json()["request_id"]
    rec = client.get(f"/v1/audit/{rid}", headers=auth("auditor")).json()
    assert rec["seq"] >= 1 and len(rec["record_hash"]) == 64 and len(rec["prev_hash"]) == 64


# ---- policy calculator ------------------------------------------------------------------------------
def test_policy_check_answers_with_steps_and_parameter_version(client):
    r = post(client, bundle(), path="/v1/policy/check")
    assert r.status_code == 200, r.text
    js = r.json()
    assert {p["program"] for p in js["programs"]} == {"dibao", "dibao_edge_income", "dibao_edge_expenditure",
                                                       "expenditure_hardship", "tekun"}
    assert all(isinstance(p["eligible"], bool) and p["steps"] for p in js["programs"])
    assert js["parameters"]["version"] == "2025.1" and js["parameters"]["effective_from"] == "2025-01-01"
    assert post(client, bundle(), role="auditor", path="/v1/policy/check").status_code == 200
    assert post(client, bundle(), role="admin", path="/v1/policy/check").status_code == 403
    bad = bundle()
    bad["claims"][0]["total_cost"] += 1
    assert post(client, bad, path="/v1/policy/check").status_code == 422
