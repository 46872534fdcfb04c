"""The needs assessment (困难群众需求评估): the instrument's loading checks and grades, the data levels
of twins that differ only in illness, the append-only assessment store on SQLite and PostgreSQL, and
POST /v1/assessments with GET /v1/households/{id}/needs on a real server (and the case page's
需求评估 section in a real browser)."""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from domain.needs import levels
from features.io import policy_file_text
from policy.conditions import DefinitionError
from policy.needs import data_levels, load_instruments, parse_instruments
from serving.app import create_app
from serving.settings import Settings
from store.assessments import AssessmentStore, DomainFinding
from tests import factories as f
from tests.conftest import KEYS, KEYS_ENV, auth
from tests.test_audit_store import created_store

DOMAINS = ["basic_living", "medical", "care", "education", "employment", "housing", "child_protection",
           "social_support"]


# ---- the instrument ---------------------------------------------------------------------------------
def _doc() -> dict[str, Any]:
    return tomllib.loads(policy_file_text(None))


def _rule(doc: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in doc["instrument"][0]["need"] if r["id"] == rule_id)


def test_the_shipped_instrument_loads_with_every_domain():
    book = load_instruments()
    ins = book.at("2026-06-30")
    assert [d.id for d in ins.domains] == DOMAINS
    assert ins.by_domain["social_support"].visit_only
    assert {r.source for r in ins.rules} == {"features", "list", "calculator", "model"}
    assert [g.level for g in ins.grades] == [3, 2, 1, 0]


@pytest.mark.parametrize("change, message", [
    (lambda n: n.update(domain="wellbeing"), "field 'domain': unknown domain 'wellbeing'"),
    (lambda n: n.update(domain="social_support"), "field 'domain': 'social_support' is filled only by visits"),
    (lambda n: n.update(level=4), "field 'level': must be an integer among [1, 2, 3], got 4"),
    (lambda n: n.update(level=True), "field 'level': must be an integer among [1, 2, 3], got True"),
    (lambda n: n.update(level="2"), "field 'level': must be an integer among [1, 2, 3], got '2'"),
    (lambda n: n.update(list="no_such_list"), "give exactly one trigger"),
    (lambda n: (n.pop("all"), n.pop("none"), n.update(list="no_such_list")),
     "field 'list': unknown list 'no_such_list'"),
    (lambda n: n["all"][0].update(feature="income_per_dog"), "field 'all'[0].feature: unknown feature id "
                                                             "'income_per_dog'"),
    (lambda n: n["all"][0].update(param="poverty_line"), "unknown parameter 'poverty_line'"),
    (lambda n: n.update(colour="red"), "unknown field 'colour'"),
    (lambda n: n.pop("text_zh"), "missing field 'text_zh'"),
])
def test_a_bad_need_rule_fails_at_load_naming_the_entry_and_field(change, message):
    doc = _doc()
    rule = doc["instrument"][0]["need"][0]
    assert rule["id"] == "income_far_below_dibao"
    change(rule)
    with pytest.raises(DefinitionError) as exc:
        parse_instruments(doc)
    assert "[[instrument]] #1 '2025.1' [[instrument.need]] #1 'income_far_below_dibao'" in str(exc.value)
    assert message in str(exc.value)


@pytest.mark.parametrize("change, message", [
    (lambda doc: _rule(doc, "dibao_likely").update(program="lottery"), "'dibao_likely', field 'program': unknown "
                                                                         "programme 'lottery'"),
    (lambda doc: _rule(doc, "illness_poverty_high").update(band="severe"), "field 'band': unknown band 'severe'"),
    (lambda doc: _rule(doc, "illness_poverty_high").update(risk="boredom"), "field 'risk': unknown risk 'boredom'"),
    (lambda doc: _rule(doc, "margin").update(band="high"), "'margin', field 'band': only with a risk trigger"),
    (lambda doc: _rule(doc, "margin").update(id="dibao_likely"), "field 'id': a second rule with this id"),
    (lambda doc: doc["instrument"][0]["grade"].pop(), "lacks level(s) [0]"),
    (lambda doc: doc["instrument"][0]["grade"][0].update(level=2), "grade 2 appears twice"),
    (lambda doc: doc["instrument"][0]["grade"][0]["when"][0].update(count=0), "count: must be a whole number"),
    (lambda doc: doc["instrument"][0].update(levels=["无", "有"]), "field 'levels': must name the 4 levels"),
    (lambda doc: doc["instrument"][0]["domains"].append({"id": "medical", "label_zh": "医疗"}),
     "domain 'medical' appears twice"),
    (lambda doc: doc.pop("instrument"), "the policy file has no [[instrument]]"),
])
def test_bad_instrument_parts_fail_at_load(change, message):
    doc = _doc()
    change(doc)
    with pytest.raises(DefinitionError) as exc:
        parse_instruments(doc)
    assert message in str(exc.value)


@pytest.mark.parametrize("domain_levels, grade", [
    ({}, 0), ({"care": 1}, 1), ({"care": 2}, 2), ({"care": 1, "medical": 1, "housing": 1}, 2),
    ({"medical": 3}, 3), ({"medical": 2, "care": 2}, 3), ({"medical": 2, "care": 1}, 2),
])
def test_the_overall_grade_follows_the_data_rules(domain_levels, grade):
    ins = load_instruments().at("2026-06-30")
    g = ins.grade({d: domain_levels.get(d, 0) for d in DOMAINS})
    assert g.level == grade
    assert g.label_zh.startswith({3: "一级", 2: "二级", 1: "三级", 0: "无明显需求"}[grade])


def _healthy(household_id: str) -> dict:
    return f.bundle(household_id, claims=[], income=f.monthly_income(f.months_back(f.AS_OF, 12), 3000))


def _ill(household_id: str) -> dict:
    """The healthy twin with a cancer: two long stays with large bills out of pocket."""
    b = _healthy(household_id)
    b["claims"] = [f.claim("C1", "2026-03-02", 42000, setting="inpatient", diagnosis_group="cancer",
                           fund_paid=60000, inpatient_days=20),
                   f.claim("C2", "2026-05-20", 18000, setting="inpatient", diagnosis_group="cancer",
                           fund_paid=30000, inpatient_days=9)]
    return b


def test_an_ill_household_ranks_above_its_healthy_twin_from_its_features(policy):
    ins = load_instruments().at(f.AS_OF)
    out = {}
    for name, b in (("healthy", _healthy("H1")), ("ill", _ill("H1"))):
        row = f.features_of(b, policy)
        cols = {k: [float(v)] for k, v in row.items()}
        out[name] = data_levels(ins, cols, policy.at(dt.date.fromisoformat(f.AS_OF)), policy.rules, [[]], [None],
                                [None])[0]
    assert out["healthy"]["medical"].level == 0 and out["healthy"]["medical"].evidence == []
    assert out["ill"]["medical"].level == 3
    top = out["ill"]["medical"].evidence[0]
    assert top["source"] == "features" and top["rule"] == "serious_illness_heavy_burden"
    assert "近12个月成员个人最高自付医疗费用 60,000 元 > 一般人群个人自付预警线（西安规则） 26,000 元" in top["text"]
    # illness changes the medical domain only
    assert {d: v.level for d, v in out["ill"].items() if d != "medical"} == \
        {d: v.level for d, v in out["healthy"].items() if d != "medical"}


# ---- the store ----------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def assessment_store(request, tmp_path) -> Iterator[AssessmentStore]:
    with created_store(request.param, tmp_path) as (s, _):
        yield AssessmentStore(s.engine)


def test_the_store_appends_and_reads_newest_first(assessment_store):
    caller = {"role": "platform", "key_id": "k-0123456789ab"}
    first = assessment_store.add(request_id="r1", household_id="H1", town="tangqiao",
                                 assessed_on=dt.date(2026, 7, 8), assessor="SW01", instrument_version="2025.1",
                                 domains=[DomainFinding("medical", 3, "户主肝癌化疗中，每月自付约三千元")],
                                 note="两周后回访", caller=caller)
    second = assessment_store.add(request_id="r1", household_id="H1", town="tangqiao",
                                  assessed_on=dt.date(2026, 8, 1), assessor="SW02", instrument_version="2025.1",
                                  domains=[DomainFinding("medical", 2, "已获医疗救助"),
                                           DomainFinding("social_support", 1, "配偶焦虑")], note=None, caller=caller)
    assessment_store.add(request_id="r9", household_id="H9", town="jingang", assessed_on=dt.date(2026, 8, 1),
                         assessor="SW03", instrument_version="2025.1", domains=[DomainFinding("care", 1, "x")],
                         note=None, caller=caller)
    mine = assessment_store.for_household("H1")
    assert [a.assessment_id for a in mine] == [second.assessment_id, first.assessment_id]
    assert mine[1] == first and mine[1].domains[0].evidence == "户主肝癌化疗中，每月自付约三千元"
    assert mine[0].recorded_at.tzinfo is not None and mine[0].caller == caller
    assert assessment_store.get(second.assessment_id) == second
    assert assessment_store.get("0" * 32) is None
    assert assessment_store.for_household("nobody") == []
    assert first.as_dict()["recorded_at"].endswith("Z")


# ---- on a real server -------------------------------------------------------------------------------
def hid() -> str:
    return f"HND{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def api(live_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server["url"], timeout=60) as c:
        yield c


def score(api: httpx.Client, b: dict) -> dict:
    r = api.post("/v1/score", json=b, headers=auth("platform"))
    assert r.status_code == 200, r.text
    return r.json()


def needs_of(api: httpx.Client, household_id: str, role: str = "auditor") -> dict:
    r = api.get(f"/v1/households/{household_id}/needs", headers=auth(role))
    assert r.status_code == 200, r.text
    return r.json()


def by_domain(needs: dict) -> dict[str, dict]:
    return {d["domain"]: d for d in needs["domains"]}


def assess(api: httpx.Client, role: str = "platform", **body) -> httpx.Response:
    return api.post("/v1/assessments", json=body, headers=auth(role))


@pytest.mark.slow
def test_an_ill_household_needs_more_medical_help_than_its_healthy_twin(api):
    healthy, ill = hid(), hid()
    score(api, _healthy(healthy))
    score(api, _ill(ill))
    h, i = by_domain(needs_of(api, healthy)), by_domain(needs_of(api, ill))
    assert i["medical"]["level"] > h["medical"]["level"]
    assert i["medical"]["level"] == 3 and i["medical"]["label"] == "医疗" and i["medical"]["level_label"] == "紧急需求"
    sources = {e["source"] for e in i["medical"]["evidence"]}
    assert {"features", "list"} <= sources
    assert all(e["text"] for e in i["medical"]["evidence"])
    assert needs_of(api, ill)["overall_level"] == 3


@pytest.mark.slow
def test_a_visit_overrides_a_domain_and_the_grade_follows(api):
    h = hid()
    rid = score(api, _healthy(h))["request_id"]
    before = needs_of(api, h)
    assert before["as_of"] == f.AS_OF and before["instrument_version"] == "2025.1"
    assert by_domain(before)["social_support"]["level"] == 0 and before["assessments"] == []
    data_medical = by_domain(before)["medical"]
    # a visit sets medical to 2: one domain at 2 is 二级; a later one lowers it and adds social support;
    # after a new score only visits since its as_of count, and an urgent housing need makes it 一级
    words = "户主糖尿病并发症，需长期用药，医保目录外药费较多"
    r = assess(api, request_id=rid, assessed_on="2026-07-08", assessor="SW0012",
               domains=[{"domain": "medical", "level": 2, "evidence": words}], note="约定两周后回访")
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["instrument_version"] == "2025.1" and stored["household_id"] == h and stored["assessment_id"]
    assert stored["caller"]["role"] == "platform" and stored["caller"]["key_id"].startswith("k-")
    first = needs_of(api, h)
    med = by_domain(first)["medical"]
    assert med["level"] == 2 and med["set_by"] == "visit" and med["data_level"] == data_medical["level"]
    assert med["evidence"][0] == {"source": "visit", "text": words,
                                  "level": 2, "rule": None, "assessor": "SW0012", "assessed_on": "2026-07-08",
                                  "assessment_id": stored["assessment_id"]}
    assert med["evidence"][1:] == data_medical["evidence"]  # the data's evidence stays visible
    assert first["overall_level"] == 2 and first["overall_label"].startswith("二级")
    r = assess(api, request_id=rid, assessed_on="2026-07-20", assessor="SW0013",
               domains=[{"domain": "social_support", "level": 2, "evidence": "配偶焦虑失眠，邻里支持少"},
                        {"domain": "medical", "level": 1, "evidence": "已办理门诊慢特病，负担减轻"}])
    assert r.status_code == 201, r.text
    second = needs_of(api, h)
    d = by_domain(second)
    assert d["medical"]["level"] == 1 and d["medical"]["evidence"][0]["assessor"] == "SW0013"  # the latest wins
    assert [e["assessor"] for e in d["medical"]["evidence"] if e["source"] == "visit"] == ["SW0013", "SW0012"]
    assert d["social_support"]["level"] == 2
    assert second["overall_level"] == 2  # one domain at 2, the rest at most 1
    assert [a["assessor"] for a in second["assessments"]] == ["SW0013", "SW0012"]
    assert levels(second) == {x["domain"]: x["level"] for x in second["domains"]}
    # the household file carries the same needs
    file = api.get(f"/v1/households/{h}", headers=auth("platform")).json()
    assert file["needs"] == second and levels(file) == levels(second)
    # a new score: visits made before its as_of no longer count; a visit after it does
    rid2 = score(api, _healthy(h) | {"as_of": "2026-09-30"})["request_id"]
    rescored = needs_of(api, h)
    assert rescored["as_of"] == "2026-09-30" and rescored["assessments"] == []
    assert by_domain(rescored)["social_support"]["level"] == 0
    r = assess(api, request_id=rid2, assessed_on="2026-10-02", assessor="SW0014",
               domains=[{"domain": "housing", "level": 3, "evidence": "房屋漏雨，墙体开裂"}])
    assert r.status_code == 201, r.text
    now = needs_of(api, h)
    assert by_domain(now)["housing"]["level"] == 3 and now["overall_level"] == 3
    assert now["overall_label"] == "一级（重点关注，每月走访）"
    # the reads are in the access log
    events = api.get("/v1/access", params={"target": h, "action": "needs"}, headers=auth("auditor"))
    assert events.status_code == 200, events.text
    found = events.json()["events"]
    assert len(found) == 5 and all(e["action"] == "needs" and e["households"] == [h] for e in found)


GOOD = {"assessed_on": "2026-07-08", "assessor": "SW0012",
        "domains": [{"domain": "medical", "level": 2, "evidence": "需长期用药"}], "note": "回访"}


def _domain(**change) -> dict:
    return {"domains": [{**GOOD["domains"][0], **change}]}


@pytest.mark.slow
@pytest.mark.parametrize("change, loc", [
    (_domain(domain="wellbeing"), ["body", "domains", 0, "domain"]),
    ({"domains": [GOOD["domains"][0], {"domain": "medical", "level": 1, "evidence": "再次"}]},
     ["body", "domains", 1, "domain"]),
    (_domain(level=4), ["body", "domains", 0, "level"]),
    (_domain(level=-1), ["body", "domains", 0, "level"]),
    (_domain(level=True), ["body", "domains", 0, "level"]),
    (_domain(level=2.0), ["body", "domains", 0, "level"]),
    (_domain(level="2"), ["body", "domains", 0, "level"]),
    (_domain(level=None), ["body", "domains", 0, "level"]),
    (_domain(evidence=""), ["body", "domains", 0, "evidence"]),
    (_domain(evidence="   "), ["body", "domains", 0, "evidence"]),
    (_domain(evidence="x" * 1001), ["body", "domains", 0, "evidence"]),
    (_domain(evidence="a\x00b"), ["body", "domains", 0, "evidence"]),
    (_domain(colour="red"), ["body", "domains", 0, "colour"]),
    ({"domains": []}, ["body", "domains"]),
    ({"domains": "medical"}, ["body", "domains"]),
    ({"assessed_on": "2026-01-01"}, ["body", "assessed_on"]),   # before the scored as_of
    ({"assessed_on": "2999-01-01"}, ["body", "assessed_on"]),   # in the future
    ({"assessed_on": "2026-13-01"}, ["body", "assessed_on"]),
    ({"assessor": ""}, ["body", "assessor"]),
    ({"assessor": "x" * 65}, ["body", "assessor"]),
    ({"assessor": "社工\x000231"}, ["body", "assessor"]),
    ({"assessor": "SW\n0012"}, ["body", "assessor"]),
    ({"assessor": " SW0012"}, ["body", "assessor"]),   # refused, never trimmed: the id is kept as given
    ({"assessor": "SW0012\u3000"}, ["body", "assessor"]),
    ({"assessor": 12}, ["body", "assessor"]),
    ({"note": "y" * 2001}, ["body", "note"]),
    ({"note": "a\x00b"}, ["body", "note"]),
    ({"household_id": "H1"}, ["body", "household_id"]),
    ({"request_id": "../../etc"}, ["body", "request_id"]),
])
def test_each_malformed_field_is_a_422_naming_it_and_nothing_is_stored(api, change, loc):
    h = hid()
    rid = score(api, _healthy(h))["request_id"]
    r = assess(api, **{"request_id": rid, **GOOD, **change})
    assert r.status_code == 422, r.text
    assert loc in [p["loc"] for p in r.json()["detail"]], r.json()
    assert needs_of(api, h)["assessments"] == []
    assert api.get(f"/v1/households/{h}", headers=auth("auditor")).json()["needs"]["assessments"] == []


@pytest.mark.slow
def test_unknown_requests_households_and_wrong_roles(api):
    r = assess(api, request_id=uuid.uuid4().hex, **GOOD)
    assert r.status_code == 404 and r.json()["detail"] == "no score request with this request_id"
    assert api.get(f"/v1/households/{hid()}/needs", headers=auth("auditor")).status_code == 404
    h = hid()
    rid = score(api, _healthy(h))["request_id"]
    assert assess(api, role="auditor", request_id=rid, **GOOD).status_code == 403
    assert api.get(f"/v1/households/{h}/needs", headers=auth("admin")).status_code == 403
    assert api.get(f"/v1/households/{h}/needs").status_code == 401
    assert needs_of(api, h, role="platform")["household_id"] == h
    bad = api.post("/v1/assessments", content=b"{", headers={**auth("platform"), "Content-Type": "application/json"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body"]


# ---- keys limited to towns (in process: the real app with scoped keys) -----------------------------------
SCOPED = {"tangqiao": "platform-tangqiao-needs-0123", "jingang": "platform-jingang-needs-01234",
          "auditor": "auditor-tangqiao-needs-01234"}


@pytest.fixture(scope="module")
def scoped_client(trained, mlflow_uri, tmp_path_factory) -> Iterator[TestClient]:
    env = (f"{KEYS_ENV},platform@tangqiao:{SCOPED['tangqiao']},platform@jingang:{SCOPED['jingang']},"
           f"auditor@tangqiao:{SCOPED['auditor']}")
    audit = tmp_path_factory.mktemp("needs") / "audit.db"
    with TestClient(create_app(Settings(api_keys=env, audit_url=f"sqlite:///{audit}",
                                        mlflow_tracking_uri=mlflow_uri))) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.slow
def test_outside_its_towns_a_household_has_no_needs_for_a_scoped_key(scoped_client):
    c = scoped_client
    h = hid()
    b = _ill(h)
    b["household"]["town"] = "jingang"
    rid = c.post("/v1/score", json=b, headers=bearer(SCOPED["jingang"])).json()["request_id"]
    body = {"request_id": rid, **GOOD}
    refused = c.post("/v1/assessments", json=body, headers=bearer(SCOPED["tangqiao"]))
    unknown = c.post("/v1/assessments", json={**body, "request_id": uuid.uuid4().hex},
                     headers=bearer(SCOPED["tangqiao"]))
    assert refused.status_code == unknown.status_code == 404 and refused.json() == unknown.json()
    outside = c.get(f"/v1/households/{h}/needs", headers=bearer(SCOPED["auditor"]))
    never = c.get(f"/v1/households/{hid()}/needs", headers=bearer(SCOPED["auditor"]))
    assert outside.status_code == never.status_code == 404 and outside.json() == never.json()
    # nothing was stored by the refusal; the key of the household's town records the visit
    assert c.get(f"/v1/households/{h}/needs", headers=auth("auditor")).json()["assessments"] == []
    assert c.post("/v1/assessments", json=body, headers=bearer(SCOPED["jingang"])).status_code == 201
    mine = c.get(f"/v1/households/{h}/needs", headers=bearer(SCOPED["jingang"]))
    assert mine.status_code == 200 and len(mine.json()["assessments"]) == 1
    assert KEYS["platform"] not in mine.text


# ---- the case page in a real browser ------------------------------------------------------------------
@pytest.mark.slow
def test_the_case_page_shows_needs_plan_and_history_in_a_browser(live_server, api):
    """The auditor's case page, in Chromium: the needs assessment (data and the visit), the plan with a
    measure walked to delivered and one declined, and the household's score history."""
    from tests.test_ui import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, _playwright

    sync_playwright = _playwright()
    h = hid()
    earlier = score(api, copy.deepcopy(_ill(h)))["request_id"]
    rid = score(api, copy.deepcopy(_ill(h)))["request_id"]
    assert assess(api, request_id=rid, assessed_on="2026-07-08", assessor="SW0099",
                  domains=[{"domain": "social_support", "level": 2, "evidence": "配偶焦虑失眠，需心理疏导"}]
                  ).status_code == 201
    plan = api.post(f"/v1/households/{h}/plan", json={}, headers=auth("platform"))
    assert plan.status_code == 201, plan.text
    walked, declined = plan.json()["measures"][:2]
    today = dt.date.today().isoformat()
    for status, note in (("agreed", None), ("in_progress", None), ("delivered", "已发放医疗救助金")):
        r = api.post(f"/v1/households/{h}/plan/measures/{walked['measure_id']}/events", headers=auth("platform"),
                     json={"status": status, "actor": "社工0099", "on": today, **({"note": note} if note else {})})
        assert r.status_code == 201, r.text
    r = api.post(f"/v1/households/{h}/plan/measures/{declined['measure_id']}/events", headers=auth("platform"),
                 json={"status": "declined", "actor": "社工0099", "on": today, "note": "户方表示暂不需要"})
    assert r.status_code == 201, r.text
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(locale="zh-CN").new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{live_server['url']}/ui/cases/{rid}")
            page.fill("#key", KEYS["auditor"])
            page.click("button[type=submit]")
            page.wait_for_url(f"**/ui/cases/{rid}")
            section = page.locator("section#needs")
            assert section.is_visible()
            assert "需求评估" in section.locator("h2").inner_text()
            assert "一级（重点关注，每月走访）" in section.locator("h2").inner_text()
            medical = section.locator("tr[data-domain=medical]")
            assert medical.get_attribute("data-level") == "3" and "紧急需求" in medical.inner_text()
            assert medical.locator("li[data-source=features]").count() >= 1
            social = section.locator("tr[data-domain=social_support]")
            visit = social.locator("li[data-source=visit]")
            assert "配偶焦虑失眠，需心理疏导" in visit.inner_text()
            assert "SW0099" in visit.inner_text() and "2026-07-08" in visit.inner_text()
            assert "入户走访" in visit.inner_text()

            plan_section = page.locator("section#plan")
            assert "帮扶计划（一户一策）" in plan_section.locator("h2").inner_text()
            rows = plan_section.locator("tbody tr")
            assert rows.count() == len(plan.json()["measures"])
            done = rows.filter(has_text=walked["label"]).first
            assert "已落实" in done.inner_text() and walked["owner_label"] in done.inner_text()
            assert f"{today} 已落实 · 社工0099：已发放医疗救助金" in done.inner_text()
            assert done.locator("ol.events li").count() == 4  # proposed, agreed, in progress, delivered
            refused = rows.filter(has_text=declined["label"]).first
            assert "户方拒绝" in refused.inner_text() and "户方表示暂不需要" in refused.inner_text()

            history = page.locator("section#history")
            assert history.locator(f'a[href="/ui/cases/{earlier}"]').is_visible()
            assert history.locator("tbody tr").count() >= 2
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "case_needs_plan.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
def test_the_case_page_has_a_needs_section(scoped_client):
    """The same section as in the browser, read as HTML (the browser test needs Chromium)."""
    c = scoped_client
    h = hid()
    rid = c.post("/v1/score", json=_ill(h), headers=auth("platform")).json()["request_id"]
    visit = {"request_id": rid, "assessed_on": "2026-07-08", "assessor": "SW0077",
             "domains": [{"domain": "social_support", "level": 2, "evidence": "独自照顾病人，<压力>很大"}]}
    assert c.post("/v1/assessments", headers=auth("platform"), json=visit).status_code == 201
    page = c.get(f"/ui/cases/{rid}", headers=auth("auditor"))
    assert page.status_code == 200
    text = page.text
    section = text[text.index('<section class="card needs" id="needs">'):]
    section = section[:section.index("</section>")]
    assert "需求评估" in section and "一级（重点关注，每月走访）" in section
    assert 'data-domain="medical" data-level="3"' in section and "紧急需求" in section
    assert "独自照顾病人，&lt;压力&gt;很大" in section and "SW0077" in section and "2026-07-08" in section
    assert "入户走访" in section and "重点人群名单" in section
