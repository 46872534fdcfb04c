"""One household, one plan (一户一策): drafting, the lifecycle of a measure, the store on SQLite and
PostgreSQL, the worklist's overdue follow-ups and the funnel from flag to delivered help.

The API tests talk to a real server (``live_server``): draft a plan for a scored household, walk one
measure to delivered, decline another with its reason; an illegal move is a 409 that leaves the plan
exactly as it was; malformed events are 422s naming the field.
"""

from __future__ import annotations

import copy
import datetime as dt
import json

import httpx
import pytest

from domain.bundle import CONTRACT_EXAMPLE
from domain.plans import FINAL, MOVES, BadEvent, MoveNotAllowed, draft_plan, move, proposals
from policy.warm import load_measures
from store.funnel import FunnelFacts
from store.plans import PlanStore, StaleStatus, measure_key
from tests.conftest import auth
from tests.test_audit_store import created_store

BOOK = load_measures()
TODAY = dt.date.today()


# ---- the API, on a real server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(live_server):
    with httpx.Client(base_url=live_server["url"], timeout=60) as c:
        bundle = copy.deepcopy(CONTRACT_EXAMPLE)
        bundle["household"]["household_id"] = "HPLAN01"
        r = c.post("/v1/score", json=bundle, headers=auth("platform"))
        assert r.status_code == 200, r.text
        yield c


def plan_url(hid: str = "HPLAN01") -> str:
    return f"/v1/households/{hid}/plan"


def event(c: httpx.Client, measure_id: str, status: str, note: str | None = None, on: str | None = None,
          hid: str = "HPLAN01") -> httpx.Response:
    body = {"status": status, "actor": "社工0231", "on": on or TODAY.isoformat()}
    if note is not None:
        body["note"] = note
    return c.post(f"{plan_url(hid)}/measures/{measure_id}/events", json=body, headers=auth("platform"))


def test_a_plan_is_drafted_walked_and_declined_on_a_real_server(api):
    assert api.get(plan_url(), headers=auth("auditor")).json() == {"household_id": "HPLAN01", "measures": []}
    r = api.post(plan_url(), json={}, headers=auth("platform"))
    assert r.status_code == 201, r.text
    plan = r.json()
    measures = plan["measures"]
    assert len(measures) >= 2, measures  # the contract's example: serious illness, medical burden
    for m in measures:
        assert m["status"] == "proposed" and m["status_label"] == "已提出" and not m["overdue"]
        assert m["owner_label"] and m["label"] and m["proposed_because"]
        spec = next(x for x in BOOK.at(TODAY) if x.id == m["measure"])
        assert m["owner"] == spec.owner and m["due"] == (TODAY + dt.timedelta(days=spec.due_days)).isoformat()
        assert [(e["status"], e["on"]) for e in m["events"]] == [("proposed", TODAY.isoformat())]
    # drafting twice adds nothing: 200 and the same plan
    again = api.post(plan_url(), json={"actor": "社工0231"}, headers=auth("platform"))
    assert again.status_code == 200 and again.json() == plan

    first, second = measures[0]["measure_id"], measures[1]["measure_id"]
    for status in ("agreed", "in_progress", "delivered"):
        r = event(api, first, status, note="按程序办理")
        assert r.status_code == 201, r.text
        assert r.json()["status"] == status
    r = event(api, second, "declined", note="户方表示暂不需要")
    assert r.status_code == 201 and r.json()["status_label"] == "户方拒绝"
    got = api.get(plan_url(), headers=auth("platform")).json()
    walked = next(m for m in got["measures"] if m["measure_id"] == first)
    assert [e["status"] for e in walked["events"]] == ["proposed", "agreed", "in_progress", "delivered"]
    assert [e["actor"] for e in walked["events"][1:]] == ["社工0231"] * 3
    declined = next(m for m in got["measures"] if m["measure_id"] == second)
    assert declined["events"][-1]["note"] == "户方表示暂不需要"
    # the household file carries the plan too
    file = api.get("/v1/households/HPLAN01", headers=auth("auditor")).json()
    assert [m["status"] for m in file["plan"]] == [m["status"] for m in got["measures"]]
    # reads and writes are in the access log
    log = api.get("/v1/access", params={"target": "HPLAN01"}, headers=auth("auditor")).json()
    assert {"plan", "plan_draft", "plan_event"} <= {e["action"] for e in log["events"]}


def test_an_illegal_move_is_a_409_that_changes_nothing(api):
    api.post(plan_url(), json={}, headers=auth("platform"))
    before = api.get(plan_url(), headers=auth("auditor")).json()
    by_status = {m["status"]: m["measure_id"] for m in before["measures"]}
    proposed = by_status.get("proposed") or before["measures"][-1]["measure_id"]
    r = event(api, proposed, "delivered")
    if before["measures"][-1]["status"] == "proposed":
        assert r.status_code == 409
        assert "proposed → delivered" in r.json()["detail"]
    for status in ("delivered", "declined"):  # nothing moves a final measure
        final = by_status.get(status)
        if final:
            for to in ("agreed", "cancelled", "delivered"):
                r = event(api, final, to, note="再次尝试")
                assert r.status_code == 409, r.text
                assert f"{status} → {to}" in r.json()["detail"] and "final" in r.json()["detail"]
    assert api.get(plan_url(), headers=auth("auditor")).json() == before


@pytest.mark.parametrize("body, field", [
    ({"status": "done", "actor": "a", "on": "2026-07-01"}, "status"),
    ({"status": "agreed", "actor": "", "on": "2026-07-01"}, "actor"),
    ({"status": "agreed", "actor": "   ", "on": "2026-07-01"}, "actor"),
    ({"status": "agreed", "on": "2026-07-01"}, "actor"),
    ({"status": "agreed", "actor": "a", "on": "2026-02-30"}, "on"),
    ({"status": "agreed", "actor": "a", "on": (TODAY + dt.timedelta(days=30)).isoformat()}, "on"),
    ({"status": "agreed", "actor": "a", "on": "2000-01-01"}, "on"),  # before the proposed event
    ({"status": "declined", "actor": "a", "on": TODAY.isoformat()}, "note"),
    ({"status": "cancelled", "actor": "a", "on": TODAY.isoformat(), "note": "  "}, "note"),
    ({"status": "agreed", "actor": "a", "on": TODAY.isoformat(), "why": "x"}, "why"),
    ({"status": "agreed", "actor": "a\x00", "on": TODAY.isoformat()}, "actor"),
])
def test_malformed_events_are_422s_naming_the_field_and_change_nothing(api, body, field):
    api.post(plan_url(), json={}, headers=auth("platform"))
    before = api.get(plan_url(), headers=auth("auditor")).json()
    target = next(m for m in before["measures"] if m["status"] not in FINAL)
    r = api.post(f"{plan_url()}/measures/{target['measure_id']}/events", json=body, headers=auth("platform"))
    assert r.status_code == 422, r.text
    assert ["body", field] in [d["loc"][:2] for d in r.json()["detail"]], r.json()
    assert api.get(plan_url(), headers=auth("auditor")).json() == before


def test_unknowns_are_404s_and_roles_are_checked(api):
    assert api.get(plan_url("HNEVERSCORED"), headers=auth("auditor")).status_code == 404
    assert api.post(plan_url("HNEVERSCORED"), json={}, headers=auth("platform")).status_code == 404
    assert event(api, "0" * 32, "agreed").status_code == 404
    api.post(plan_url(), json={}, headers=auth("platform"))
    mid = api.get(plan_url(), headers=auth("auditor")).json()["measures"][0]["measure_id"]
    assert event(api, mid, "agreed", hid="HNEVERSCORED").status_code == 404  # another household's measure
    assert api.post(plan_url(), json={}, headers=auth("auditor")).status_code == 403
    assert api.get(plan_url(), headers=auth("admin")).status_code == 403
    assert api.post(plan_url(), json={"on": "2026-13-01"}, headers=auth("platform")).status_code == 422
    assert api.post(plan_url(), json={"unknown": 1}, headers=auth("platform")).status_code == 422
    models = api.get("/v1/models", headers=auth("auditor")).json()
    assert isinstance(models["funnel"], list)


# ---- the store and the domain, on SQLite and PostgreSQL ----------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def plans(request, tmp_path):
    with created_store(request.param, tmp_path) as (s, _):
        yield PlanStore(s.engine)


def file_with(*measures: str, hid: str = "H1", town: str = "leyu") -> dict:
    return {"household_id": hid, "latest": {"town": town},
            "warm_list": [{"measure": m, "proposed_by": [{"kind": "risk", "id": "illness_poverty",
                                                          "label": "因病致贫"}]} for m in measures]}


def test_the_store_appends_and_reads_plans(plans):
    on = dt.date(2026, 7, 1)
    added = draft_plan(plans, file_with("medical_assistance", "temporary_assistance"), BOOK, {"housing": 1},
                       on=on, actor="社工1", caller={"role": "platform", "key_id": "k-1"})
    assert [m.measure for m in added] == ["medical_assistance", "temporary_assistance", "housing_support"]
    assert added[2].owner == "zhujian" and added[2].due == "2026-08-30"
    assert added[2].proposed_because == [{"kind": "need", "id": "housing", "label": "住房需求（等级≥1）", "level": 1}]
    assert draft_plan(plans, file_with("medical_assistance"), BOOK, {"housing": 3}, on=on, actor="x") == []
    mid = measure_key("H1", "medical_assistance")
    m = plans.measure(mid)
    moved = move(plans, m, "agreed", actor="社工1", on=dt.date(2026, 7, 2), note=None, today=TODAY)
    assert moved.status == "agreed"
    with pytest.raises(MoveNotAllowed, match="agreed → delivered is not allowed"):
        move(plans, moved, "delivered", actor="社工1", on=dt.date(2026, 7, 3), note=None, today=TODAY)
    with pytest.raises(BadEvent):
        move(plans, moved, "in_progress", actor="社工1", on=dt.date(2026, 7, 1), note=None, today=TODAY)
    with pytest.raises(StaleStatus):  # a move checked against a status that is no longer the measure's
        plans.add_event(mid, "proposed", "agreed", actor="x", on=dt.date(2026, 7, 3))
    with pytest.raises(MoveNotAllowed):  # the domain turns that race into a conflict
        move(plans, m, "agreed", actor="社工1", on=dt.date(2026, 7, 3), note=None, today=TODAY)
    plan = plans.plan("H1")
    assert [p.measure for p in plan] == ["medical_assistance", "temporary_assistance", "housing_support"]
    assert [e.status for e in plan[0].events] == ["proposed", "agreed"]
    assert plan[0].events[0].caller == {"role": "platform", "key_id": "k-1"}
    assert plans.plan("H2") == [] and plans.measure("f" * 32) is None
    # overdue: not final, due before the date; a declined measure is not overdue
    move(plans, plans.measure(measure_key("H1", "temporary_assistance")), "declined", actor="社工1",
         on=dt.date(2026, 7, 2), note="户方拒绝", today=TODAY)
    overdue = plans.overdue(dt.date(2026, 9, 1), FINAL)
    assert [m.measure for m in overdue] == ["medical_assistance", "housing_support"]
    assert plans.overdue(dt.date(2026, 7, 31), FINAL) == []


def test_the_lifecycle_is_data():
    assert {"delivered", "declined", "cancelled"} == FINAL
    assert all(to in MOVES for nxt in MOVES.values() for to in nxt)
    assert "delivered" not in MOVES["proposed"] and "proposed" not in {t for n in MOVES.values() for t in n}


def test_proposals_cite_their_triggers_and_skip_what_the_book_does_not_know():
    out = proposals(file_with("medical_assistance", "no_such_measure"), BOOK, {"medical": 2}, dt.date(2026, 7, 1))
    assert [p["measure"] for p in out] == ["medical_assistance"]
    assert [c["kind"] for c in out[0]["proposed_because"]] == ["risk", "need"]
    assert json.dumps(out, ensure_ascii=False)  # what the store keeps is JSON


# ---- the funnel on a small hand-made store -----------------------------------------------------------------
def _flagged_record(hid: str, town: str, risk: str = "illness_poverty"):
    from tests.test_audit_store import record

    scores = [{"risk": risk, "flagged": True, "raw_score": 1.0, "base_value": -3.0, "contributions": {}}]
    return record(household_id=hid, as_of="2026-06-30", request={"household": {"household_id": hid, "town": town}},
                  scores=scores, response={"scores": [{"risk": risk, "flagged": True, "probability": 0.9}]})


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_funnel_counts_and_medians_on_a_hand_made_store(kind, tmp_path):
    from sqlalchemy import insert

    from domain.funnel import funnel, totals
    from store.funnel import funnel_facts
    from store.history import BatchRun, record_run
    from store.schema import assessments, feedback_table, plan_events, plan_measures

    with created_store(kind, tmp_path) as (audit, _):
        audit.write([_flagged_record("H1", "leyu"), _flagged_record("H3", "yangshe"),
                     _flagged_record("H4", "leyu", "elderly_care_need")])
        record_run(audit.engine, BatchRun("run1", dt.datetime(2026, 7, 1, tzinfo=dt.UTC), "2026-06-30", [], 2, 1, "o"),
                   [("H2", {"illness_poverty": [0.8, "high", True]}, "leyu"),
                    ("H5", {"illness_poverty": [0.1, "low", False]}, "leyu")])
        now = dt.datetime.now(dt.UTC)
        with audit.engine.begin() as conn:
            conn.execute(insert(feedback_table), [
                {"feedback_id": f"f{h}", "request_id": f"r{h}", "household_id": h, "as_of": "2026-06-30",
                 "visited_on": day, "findings": "illness_poverty", "flagged_risks": "illness_poverty",
                 "model_versions": "", "recorded_at": now}
                for h, day in (("H1", "2026-07-05"), ("H2", "2026-07-03"), ("H3", "2026-06-01"))])
            conn.execute(insert(assessments), [
                {"assessment_id": f"a{h}", "request_id": f"r{h}", "household_id": h, "assessed_on": day,
                 "assessor": "社工1", "instrument_version": "1", "domains": json.dumps(domains), "recorded_at": now,
                 "caller": "{}"}
                for h, day, domains in (("H1", "2026-07-10", [{"domain": "medical", "level": 2}]),
                                        ("H2", "2026-07-04", [{"domain": "medical", "level": 0}]))])
            conn.execute(insert(plan_measures).values(
                measure_id="m1", household_id="H1", town="leyu", measure="medical_assistance", owner="minzheng",
                due="2026-08-11", proposed_because="[]", created_at=dt.datetime(2026, 7, 12, 3, tzinfo=dt.UTC),
                caller="{}"))
            conn.execute(insert(plan_events), [
                {"measure_id": "m1", "household_id": "H1", "status": s, "actor": "社工1", "happened_on": d,
                 "note": None, "recorded_at": now, "caller": "{}"}
                for s, d in (("proposed", "2026-07-12"), ("agreed", "2026-07-14"), ("in_progress", "2026-07-15"),
                             ("delivered", "2026-07-20"))])
        rows = funnel(funnel_facts(audit.engine))
        by = {(r["risk"], r["town"]): r for r in rows}
        assert by[("illness_poverty", "leyu")]["steps"] == {
            "flagged": 2, "visited": 2, "need_confirmed": 1, "plan_drafted": 1, "delivered": 1}
        assert by[("illness_poverty", "leyu")]["median_days"] == {
            "visited": 4.0, "need_confirmed": 5.0, "plan_drafted": 2.0, "delivered": 8.0}
        # a visit before the flag is no visit after it
        assert by[("illness_poverty", "yangshe")]["steps"] == {
            "flagged": 1, "visited": 0, "need_confirmed": 0, "plan_drafted": 0, "delivered": 0}
        assert by[("illness_poverty", "yangshe")]["median_days"]["visited"] is None
        assert by[("elderly_care_need", "leyu")]["steps"] == {  # H4 has no visit (H1's is not its)
            "flagged": 1, "visited": 0, "need_confirmed": 0, "plan_drafted": 0, "delivered": 0}
        assert totals(rows, "illness_poverty")["flagged"] == 3
        assert [r["town"] for r in funnel(funnel_facts(audit.engine), {"yangshe"})] == ["yangshe"]
        assert "H1" not in json.dumps(rows)  # counts only


# ---- the worklist's overdue follow-ups ---------------------------------------------------------------------
def test_the_worklist_lists_overdue_measures_in_a_sheet_and_a_csv(tmp_path):
    from openpyxl import Workbook, load_workbook

    from batch.followups import CSV_NAME, SHEET, write_followups

    excel = tmp_path / "worklist.xlsx"
    Workbook().save(excel)
    assert write_followups(tmp_path, excel, "2026-09-01", None, BOOK) is None  # no store: skipped
    assert load_workbook(excel).sheetnames == ["Sheet"]
    with created_store("sqlite", tmp_path) as (audit, url):
        store = PlanStore(audit.engine)
        on = dt.date(2026, 7, 1)
        draft_plan(store, file_with("medical_assistance", "temporary_assistance", "elderly_care"), BOOK, {},
                   on=on, actor="社工1")
        draft_plan(store, file_with("employment_aid", hid="+H9", town="yangshe"), BOOK, {}, on=on, actor="社工1")
        ids = {m.measure: m.measure_id for m in store.plan("H1")}
        move(store, store.measure(ids["temporary_assistance"]), "declined", actor="社工1", on=on, note="不需要",
             today=TODAY)
        move(store, store.measure(ids["medical_assistance"]), "agreed", actor="=HYPERLINK(\"x\")",
             on=dt.date(2026, 7, 2), note=None, today=TODAY)
        path = write_followups(tmp_path, excel, "2026-09-01", url, BOOK)
    assert path == tmp_path / CSV_NAME
    wb = load_workbook(excel)
    assert wb.sheetnames == ["Sheet", SHEET]
    rows = list(wb[SHEET].iter_rows(min_row=2, values_only=True))
    assert rows[0][:7] == ("镇（街道）", "户编号", "措施", "责任部门", "到期日", "逾期天数", "当前状态")
    body = [r[:7] for r in rows[1:]]
    assert body == [("乐余", "H1", "居家养老服务、高龄津贴", "民政", "2026-07-31", 32, "已提出"),
                    ("乐余", "H1", "医疗救助", "民政", "2026-07-31", 32, "户方同意"),
                    ("杨舍", "'+H9", "就业援助、公益性岗位", "人社", "2026-07-31", 32, "已提出")]  # neutralised
    assert rows[2][7] == '2026-07-02 =HYPERLINK("x")'  # the latest move: its day and actor
    assert ",'+H9," in path.read_text(encoding="utf-8-sig")  # the CSV neutralises as the sheet does


def test_the_funnel_cache_reads_the_store_at_most_once_per_ttl(monkeypatch):
    import domain.funnel as funnel_module

    reads: list[int] = []
    monkeypatch.setattr(funnel_module, "funnel_facts", lambda engine: reads.append(1) or FunnelFacts())
    clock = [100.0]
    cache = funnel_module.FunnelCache(engine=None, ttl=60, clock=lambda: clock[0])  # type: ignore[arg-type]
    first = cache.facts()
    clock[0] += 59
    assert cache.facts() is first and len(reads) == 1
    clock[0] += 1
    assert cache.facts() is not first and len(reads) == 2
    every_time = funnel_module.FunnelCache(engine=None, ttl=0, clock=lambda: clock[0])  # type: ignore[arg-type]
    every_time.facts()
    every_time.facts()
    assert len(reads) == 4  # ttl 0: the store is read on every call, even within the same instant


def test_a_visit_that_finds_a_housing_need_puts_housing_help_in_the_plan(live_server):
    """The plan is drafted from the needs too: the data alone propose no housing measure for the
    contract's example; a visit that finds a housing need (level 3) and the next draft add it, citing
    the need, owned by 住建."""
    with httpx.Client(base_url=live_server["url"], timeout=60) as c:
        bundle = copy.deepcopy(CONTRACT_EXAMPLE)
        bundle["household"]["household_id"] = "HPLANNEED1"
        r = c.post("/v1/score", json=bundle, headers=auth("platform"))
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        first = c.post(plan_url("HPLANNEED1"), json={}, headers=auth("platform")).json()
        assert "housing_support" not in [m["measure"] for m in first["measures"]]
        r = c.post("/v1/assessments", headers=auth("platform"), json={
            "request_id": rid, "assessed_on": TODAY.isoformat(), "assessor": "社工0231",
            "domains": [{"domain": "housing", "level": 3, "evidence": "房屋漏雨，墙体开裂，无力修缮"}]})
        assert r.status_code == 201, r.text
        needs = c.get("/v1/households/HPLANNEED1/needs", headers=auth("auditor")).json()
        assert next(d for d in needs["domains"] if d["domain"] == "housing")["level"] == 3
        r = c.post(plan_url("HPLANNEED1"), json={}, headers=auth("platform"))
        assert r.status_code == 201, r.text
        housing = next(m for m in r.json()["measures"] if m["measure"] == "housing_support")
        assert housing["owner"] == "zhujian" and housing["status"] == "proposed"
        assert {"kind": "need", "id": "housing"}.items() <= housing["proposed_because"][0].items()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_erasure_deletes_the_households_casework_and_a_retention_purge_keeps_plans(kind, tmp_path):
    from store.assessments import AssessmentStore, DomainFinding

    with created_store(kind, tmp_path) as (audit, _):
        plans, needs = PlanStore(audit.engine), AssessmentStore(audit.engine)
        day = dt.date(2026, 11, 2)
        for h in ("HERASE", "HKEEP"):
            needs.add(request_id="r" * 32, household_id=h, town="yangshe", assessed_on=day, assessor="SW0012",
                      instrument_version="2025-01", domains=[DomainFinding("medical", 3, "住院后自付费用高")],
                      note="家属在场", caller={"role": "platform", "key_id": "k"})
            drafted = {"measure": "temporary_assistance", "owner": "mca", "due": "2026-12-01", "proposed_because": []}
            [m] = plans.add_measures(h, "yangshe", [drafted], actor="SW0012", on=day)
            plans.add_event(m.measure_id, "proposed", "agreed", actor="SW0012", on=day)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        # every household, past retention: casework stays (a plan being carried out keeps its history)
        assert audit.purge(later).casework_rows == 0 and len(plans.plan("HERASE")) == 1
        # one household's erasure: counted by a dry run, then deleted, and only that household's
        assert audit.purge(later, "HERASE", dry_run=True).casework_rows == 4 and needs.for_household("HERASE")
        assert audit.purge(later, "HERASE").casework_rows == 4  # 1 assessment, 1 measure, 2 events
        assert plans.plan("HERASE") == [] and needs.for_household("HERASE") == []
        assert len(plans.plan("HKEEP")) == 1 and plans.plan("HKEEP")[0].status == "agreed"
        assert len(needs.for_household("HKEEP")) == 1
