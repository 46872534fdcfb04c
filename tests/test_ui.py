"""The auditor's web pages: in-process (TestClient) for sign-in, roles, content and arithmetic, then
end to end in a real headless Chromium against the live server, with screenshots kept as artifacts
in ``artifacts/screenshots/``.

The browser is Debian's Chromium at /usr/bin/chromium driven by Playwright's Python package (never
``playwright install``: no browser download is possible here). Without it the browser test skips,
unless ``RELIEF_RISK_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import copy
import datetime as dt
import html
import math
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from domain.bundle import CONTRACT_EXAMPLE
from features.catalog import FEATURE_IDS
from serving.settings import parse_api_keys
from serving.ui import card
from serving.ui.charts import TOP_STEPS
from serving.ui.session import COOKIE, issue, session_grant
from tests.conftest import KEYS, ROOT, auth

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def household(household_id: str, as_of: str = "2026-06-30", oop: float = 19000.0, income: float = 900.0) -> dict:
    """The contract's example household as of ``as_of``: two members, five months of income up to the
    month before ``as_of``, one cancer stay three weeks before it with ``oop`` yuan out of pocket."""
    b = copy.deepcopy(CONTRACT_EXAMPLE)
    day = dt.date.fromisoformat(as_of)
    b["as_of"] = as_of
    b["household"]["household_id"] = household_id
    b["members"].append({"person_id": "P0002", "relation": "spouse", "sex": "F", "birth_date": "1963-07-19",
                         "employment": "farmer", "disability_grade": 2})
    months = [f"{y}-{m:02d}" for y, m in ((day.year - (day.month - k <= 0), (day.month - k - 1) % 12 + 1)
                                        for k in range(1, 6))]
    b["income"] = [{"person_id": p, "month": m, "source": "agriculture", "amount": income}
                   for p in ("P0001", "P0002") for m in months]
    c = b["claims"][0]
    c["service_date"] = (day - dt.timedelta(days=21)).isoformat()
    c["out_of_pocket"] = oop
    c["total_cost"] = c["fund_paid"] + c["critical_illness_paid"] + c["assistance_paid"] + oop
    return b


def body_rows(page: str) -> str:
    """The result rows of a search page ("" when it found nothing)."""
    return page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""


@pytest.fixture()
def browser_client(client) -> TestClient:
    """The session app with a cookie jar of its own (the lifespan already ran in ``client``)."""
    return TestClient(client.app, follow_redirects=False)


@pytest.fixture()
def auditor(browser_client) -> TestClient:
    r = browser_client.post("/ui/login", data={"key": KEYS["auditor"], "next": "/ui/audit"})
    assert r.status_code == 303, r.text
    return browser_client


def score(client, body: dict) -> dict:
    r = client.post("/v1/score", json=body, headers=auth("platform"))
    assert r.status_code == 200, r.text
    return r.json()


def waterfall_rows(page: str, risk: str) -> list[tuple[str, float]]:
    """(kind, value) of each step in the page's waterfall data table for ``risk``."""
    table = re.search(rf'<table class="waterfall-data[^"]*" data-risk="{risk}">(.*?)</table>', page, re.S)
    assert table, "no waterfall data table"
    return [(k, float(v)) for k, v in re.findall(r'data-kind="(\w+)" data-value="([^"]+)"', table.group(1))]


# ---- sign-in -------------------------------------------------------------------------------------
def test_auditor_login_sets_an_httponly_strict_cookie_without_the_key(browser_client):
    r = browser_client.post("/ui/login", data={"key": KEYS["auditor"], "next": "/ui/models/illness_poverty"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/models/illness_poverty"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    assert KEYS["auditor"] not in cookie
    assert browser_client.get("/ui/audit").status_code == 200


@pytest.mark.parametrize("key, status", [(KEYS["platform"], 403), (KEYS["admin"], 403),
                                         ("not-a-key-at-all-000", 401), ("", 401)])
def test_other_keys_get_no_session(browser_client, key, status):
    r = browser_client.post("/ui/login", data={"key": key, "next": "/ui/audit"})
    assert r.status_code == status and "set-cookie" not in r.headers
    if status == 403:
        assert "auditor" in r.text
    assert browser_client.get("/ui/audit").status_code == 303


@pytest.mark.parametrize("path", ["/ui/audit", "/ui/cases/abc", "/ui/models/illness_poverty", "/ui/audit.csv"])
def test_without_a_session_pages_redirect_to_login(browser_client, path):
    r = browser_client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ui/login?next=/ui/")


def test_a_bearer_header_works_too_and_keeps_roles(browser_client):
    assert browser_client.get("/ui/audit", headers=auth("auditor")).status_code == 200
    r = browser_client.get("/ui/audit", headers=auth("platform"))
    assert r.status_code == 403 and "auditor" in r.text
    assert browser_client.get("/ui/audit", headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 401


def test_next_never_leaves_the_pages(browser_client):
    for target in ("https://example.org/", "//example.org/ui/", "/v1/audit", "/ui\\..\\x"):
        r = browser_client.post("/ui/login", data={"key": KEYS["auditor"], "next": target})
        assert r.headers["location"] == "/ui/audit"


def test_logout_clears_the_session(auditor):
    r = auditor.post("/ui/logout")
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert auditor.get("/ui/audit").status_code == 303


def test_session_tokens_expire_and_die_with_their_key():
    keys = parse_api_keys(f"auditor:{KEYS['auditor']}")
    token = issue(KEYS["auditor"], now=1000.0)
    assert session_grant(keys, token, now=1001.0).roles == {"auditor"}
    assert session_grant(keys, token, now=1000.0 + 9 * 3600) is None
    assert session_grant(parse_api_keys("auditor:another-key-0123456789"), token, now=1001.0) is None
    assert session_grant(keys, token[:-1] + ("0" if token[-1] != "0" else "1"), now=1001.0) is None
    # an expiry of Unicode digits (str.isdigit is true for them, int() refuses them) is no session
    for odd in ("².x.y", "١٢٣." + token.split(".", 1)[1], "１２３." + token.split(".", 1)[1], "\x00.a.b", ""):
        assert session_grant(keys, odd, now=1001.0) is None


# ---- the case page -------------------------------------------------------------------------------
def test_case_page_shows_scores_reasons_waterfall_inputs_and_history(client, auditor):
    first = score(client, household("HUI-CASE-1", as_of="2026-03-31", oop=4000.0))
    second = score(client, household("HUI-CASE-1", as_of="2026-06-30"))
    r = auditor.get(f"/ui/cases/{second['request_id']}")
    assert r.status_code == 200, r.text
    page = r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    (s,) = second["scores"]
    for reason in s["reasons"]:
        assert html.escape(reason["display"]) in page, reason["display"]
    assert "提高风险" in page or "降低风险" in page
    assert re.search(r'<svg class="chart waterfall"', page) and f"其他 {len(FEATURE_IDS) - TOP_STEPS} 项" in page
    assert ("建议走访" if s["flagged"] else "未标记") in page
    assert "illness_poverty v1" in page and "record_hash" in page
    # the household's inputs: members, income summary, claims, assistance
    assert "户主 head" in page and "配偶 spouse" in page and "农业 agriculture" in page
    assert "恶性肿瘤" in page and "19,000.00" in page and "没有救助记录" in page
    # the score history links to the other record of the same household
    assert f'href="/ui/cases/{first["request_id"]}"' in page


def test_waterfall_adds_up_to_the_raw_score(client, auditor):
    resp = score(client, household("HUI-SUM-1"))
    record = client.get(f"/v1/audit/{resp['request_id']}", headers=auth("auditor")).json()
    page = auditor.get(f"/ui/cases/{resp['request_id']}").text
    for s in record["scores"]:
        rows = waterfall_rows(page, s["risk"])
        kinds = [k for k, _ in rows]
        assert kinds[0] == "base" and kinds[-1] == "total" and kinds[-2] == "other"
        base, steps, total = rows[0][1], [v for _, v in rows[1:-1]], rows[-1][1]
        assert abs(base + math.fsum(steps) - total) < 1e-6
        assert abs(total - s["raw_score"]) < 1e-9 and abs(base - s["base_value"]) < 1e-9
        named = [abs(v) for k, v in rows[1:-2]]
        assert named == sorted(named, reverse=True) and len(named) == 10
        top = sorted(s["contributions"].values(), key=abs, reverse=True)[:10]
        assert [round(v, 12) for _, v in rows[1:-2]] == [round(v, 12) for v in top]


def test_unknown_case_is_a_404_page(auditor):
    r = auditor.get("/ui/cases/0123456789abcdef")
    assert r.status_code == 404 and "没有这个请求编号" in r.text


def test_pages_escape_what_they_show(auditor):
    from serving.ui.pages import render

    out = render("error.html", title="<b>404</b>", message="<script>alert(1)</script>", signed_in=False, served=[])
    assert "<script>alert(1)</script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    r = auditor.get("/ui/audit", params={"household_id": "<script>alert(1)</script>"})
    assert r.status_code == 400 and "<script>alert(1)</script>" not in r.text


# ---- the model page ------------------------------------------------------------------------------
def test_model_page_shows_importance_calibration_rules_and_versions(auditor, trained):
    r = auditor.get("/ui/models/illness_poverty")
    assert r.status_code == 200, r.text
    page = r.text
    assert "全局重要性" in page and '<svg class="chart importance"' in page
    assert "近12个月自付医疗费用" in page  # Chinese feature labels, not ids
    assert "校准曲线" in page and '<svg class="chart calibration"' in page
    assert 'class="num rules-table"' in page and "模型 model" in page
    for rule in ("rule:yangyuan", "rule:xian", "rule:single_stay", "rule:catastrophic"):
        assert rule in page
    assert "阳原" in page  # the rules' Chinese names from the run's evaluation/rules.json
    assert 'src="data:image/png;base64,' in page  # the logged recall_at_capacity plot
    assert "@champion" in page and trained.run_id in page
    for section in ("fairness", "model-card"):  # shown when the run logged them, said so when not
        body = page.split(f'id="{section}"')[1].split("</section>")[0]
        assert "not logged for this version" in body or "<table" in body or "<p>" in body or "<iframe" in body


def test_model_page_of_an_unknown_model_or_version_is_404(auditor):
    assert auditor.get("/ui/models/no_such_model").status_code == 404
    assert auditor.get("/ui/models/illness_poverty", params={"version": "999"}).status_code == 404


def test_evidence_reads_fairness_and_model_card_when_a_run_logged_them(trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    from serving.ui.evidence import run_evidence

    exp = mlflow.set_experiment("ui-evidence-test")
    with mlflow.start_run(experiment_id=exp.experiment_id) as run:
        mlflow.log_text("group,level,recall,precision,n\nhead_sex,F,0.61,0.052,9800\nhead_sex,M,0.59,0.05,10200\n",
                        "fairness/groups.csv")
        mlflow.log_text("# 模型卡\n\n用途：**只用于**排序走访。\n\n- 不得用于拒绝救助\n\n<script>x()</script>\n",
                        "model_card.md")
    ev = run_evidence(MlflowClient(), run.info.run_id)
    assert ev.fairness and ev.fairness[0].name == "groups.csv"
    assert ev.fairness[0].header == ["group", "level", "recall", "precision", "n"]
    assert ev.fairness[0].rows[0] == ["head_sex", "F", "0.6100", "0.0520", "9800"]
    assert ev.fairness[0].numeric == [False, False, True, True, True]
    assert ev.model_card_md and not ev.model_card_html and ev.importance is None
    blocks = card.parse(ev.model_card_md)
    assert [b.kind for b in blocks] == ["h4", "p", "ul", "p"]
    assert ("strong", "只用于") in blocks[1].spans and blocks[3].spans == [("text", "<script>x()</script>")]


# ---- the audit search ----------------------------------------------------------------------------
def test_search_filters_pages_and_exports_the_same_csv_as_the_api(client, auditor):
    ids = [score(client, household("HUI-SEARCH-1", as_of=d))["request_id"] for d in ("2026-04-30", "2026-05-31")]
    calm = score(client, household("HUI-SEARCH-2", oop=100.0, income=30000.0))
    assert not calm["scores"][0]["flagged"]
    page = auditor.get("/ui/audit", params={"household_id": "HUI-SEARCH-1"}).text
    assert all(f'href="/ui/cases/{rid}"' in page for rid in ids)
    assert "HUI-SEARCH-2" not in body_rows(page)
    # paging: one a page, newest first, the next link keeps the filter
    first = auditor.get("/ui/audit", params={"household_id": "HUI-SEARCH-1", "limit": "1"}).text
    assert f"/ui/cases/{ids[1]}" in first and f"/ui/cases/{ids[0]}" not in first
    nxt = html.unescape(re.search(r'href="([^"]+before_seq=\d+[^"]*)"', first).group(1))
    second = auditor.get(nxt).text
    assert f"/ui/cases/{ids[0]}" in second and f"/ui/cases/{ids[1]}" not in second
    # flagged, time range and model version filters
    flagged = body_rows(auditor.get("/ui/audit", params={"flagged": "true", "limit": "200"}).text)
    calm_rows = body_rows(auditor.get("/ui/audit", params={"flagged": "false", "limit": "200"}).text)
    assert flagged.count("<tr") == flagged.count("建议走访") >= 1 and calm["request_id"] not in flagged
    assert "建议走访" not in calm_rows and calm["request_id"] in calm_rows
    assert "没有记录" in auditor.get("/ui/audit", params={"household_id": "HUI-SEARCH-1",
                                                         "date_to": "2000-01-01"}).text
    assert "没有记录" in auditor.get("/ui/audit", params={"household_id": "HUI-SEARCH-1", "model_version": "999"}).text
    bad = auditor.get("/ui/audit", params={"date_from": "2026-13-01"})
    assert bad.status_code == 400 and "起始日期不是有效日期" in bad.text
    # the CSV link: the same rows as the API's export for the same search
    link = html.unescape(re.search(r'href="(/ui/audit\.csv\?[^"]+)"', page).group(1))
    mine = auditor.get(link)
    assert mine.status_code == 200 and mine.headers["content-type"].startswith("text/csv")
    api = client.get("/v1/audit", params={"household_id": "HUI-SEARCH-1", "format": "csv", "limit": 1000},
                     headers=auth("auditor"))
    assert mine.text == api.text and len(mine.text.strip().splitlines()) == 3


# ---- end to end in a real browser ----------------------------------------------------------------
def _playwright():
    required = os.environ.get("RELIEF_RISK_REQUIRE_BROWSER") == "1"
    why = None
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} is missing: `make browser` (or apt-get install chromium) installs it"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            why = "the playwright package is missing: pip install -e '.[test]'"
    if why:
        if required:
            pytest.fail(f"RELIEF_RISK_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    return sync_playwright


def test_an_auditor_in_a_real_browser(live_server, tmp_path):
    sync_playwright = _playwright()
    url = live_server["url"]
    hid = "HUI-BROWSER-1"
    with httpx.Client(base_url=url, headers=auth("platform"), timeout=60) as api:
        earlier = api.post("/v1/score", json=household(hid, as_of="2026-03-31", oop=3000.0)).json()
        resp = api.post("/v1/score", json=household(hid)).json()
    rid = resp["request_id"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    t0 = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                      timezone_id="Asia/Shanghai", accept_downloads=True)
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            # a platform key is refused; the auditor's key signs in and lands on the case asked for
            page.goto(f"{url}/ui/cases/{rid}")
            assert "/ui/login" in page.url
            page.fill("#key", KEYS["platform"])
            page.click("button[type=submit]")
            assert "auditor" in page.get_by_role("alert").inner_text()
            errors.clear()  # the 403 of that refusal is logged by the browser as a failed resource
            page.fill("#key", KEYS["auditor"])
            page.click("button[type=submit]")
            page.wait_for_url(f"**/ui/cases/{rid}")
            (cookie,) = [c for c in ctx.cookies() if c["name"] == COOKIE]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEYS["auditor"] not in cookie["value"]
            assert KEYS["auditor"] not in page.url

            # the case page
            assert hid in page.locator("h1").inner_text()
            reason = resp["scores"][0]["reasons"][0]["display"]
            assert page.get_by_text(reason).first.is_visible()
            wf = page.locator("svg.waterfall")
            assert wf.is_visible() and wf.bounding_box()["height"] > 200
            assert wf.locator("rect").count() == TOP_STEPS + 3  # base, 10 features, 其他 N 项, raw score
            assert wf.locator("text.label", has_text=f"其他 {len(FEATURE_IDS) - TOP_STEPS} 项").is_visible()
            assert page.locator(f'a[href="/ui/cases/{earlier["request_id"]}"]').is_visible()
            page.screenshot(path=str(SCREENSHOTS / "case.png"), full_page=True)

            # the model page, through the case's model link
            page.locator("#risk-illness_poverty a[href^='/ui/models/illness_poverty']").click()
            page.wait_for_url("**/ui/models/illness_poverty**")
            assert page.locator("svg.importance .bar").count() == 20
            assert page.locator("table.rules-table tbody tr").count() == 5
            assert page.locator("svg.calibration circle").count() >= 5
            assert page.locator("img.plot").first.evaluate("i => i.naturalWidth") > 100
            assert page.get_by_text("@champion").first.is_visible()
            page.screenshot(path=str(SCREENSHOTS / "model.png"), full_page=True)

            # the search page: the household's two records, and the CSV export
            page.get_by_role("link", name=re.compile("审计查询")).click()
            page.fill("input[name=household_id]", hid)
            page.click("form.search button[type=submit]")
            page.wait_for_url("**household_id=**")
            assert page.locator("table.records tbody tr").count() == 2
            with page.expect_download() as dl:
                page.locator("a.button", has_text="CSV").click()
            exported = Path(dl.value.path()).read_text(encoding="utf-8")
            assert exported.count(hid) == 2 and rid in exported
            page.screenshot(path=str(SCREENSHOTS / "audit.png"), full_page=True)

            # sign out: the pages ask for the key again
            page.get_by_role("button", name=re.compile("退出")).click()
            page.wait_for_url("**/ui/login")
            page.goto(f"{url}/ui/cases/{rid}")
            assert "/ui/login" in page.url
            assert not errors, errors  # no script errors, no blocked resources (the CSP would say)
        finally:
            browser.close()
    elapsed = time.perf_counter() - t0
    for shot in SCREENSHOTS.glob("*.png"):
        shutil.copy(shot, tmp_path / shot.name)
    assert elapsed < 30, f"the browser run took {elapsed:.1f}s"
    log = live_server["log"].read_text()
    assert KEYS["auditor"] not in log and hid not in log, "keys and identifiers must not reach the logs"


def test_model_page_reports_what_flagged_visits_found(auditor):
    """After a flagged household is visited, the model page counts the visit and its outcome."""
    b = household("HUI-FEEDBACK-1", oop=90000.0, income=300.0)
    js = score(auditor, b)
    ill = next(s for s in js["scores"] if s["risk"] == "illness_poverty")
    assert ill["flagged"], ill
    r = auditor.post("/v1/feedback", headers=auth("platform"), json={
        "request_id": js["request_id"], "household_id": "HUI-FEEDBACK-1", "visited_on": "2026-07-15",
        "findings": ["illness_poverty"]})
    assert r.status_code == 201, r.text
    body = auditor.get("/ui/models/illness_poverty").text.split('class="card feedback"')[1].split("</section>")[0]
    assert "被本风险标记后走访的家庭" in body and "核实确为本风险" in body
    assert re.search(r"核实确为本风险 confirmed this need</th><td>\d+（\d+\.\d%）", body), body


def test_case_page_shows_the_plan_and_the_model_page_the_funnel(auditor):
    """帮扶计划（一户一策） on the case page: measures, owners, due dates, statuses in Chinese and each
    measure's history; the model page's funnel counts the household through to delivered help."""
    js = score(auditor, household("HUI-PLAN-1", oop=90000.0, income=300.0))
    assert next(s for s in js["scores"] if s["risk"] == "illness_poverty")["flagged"]
    r = auditor.post("/v1/households/HUI-PLAN-1/plan", json={}, headers=auth("platform"))
    assert r.status_code == 201, r.text
    first = r.json()["measures"][0]
    today = dt.date.today().isoformat()
    for status in ("agreed", "in_progress", "delivered"):
        r = auditor.post(f"/v1/households/HUI-PLAN-1/plan/measures/{first['measure_id']}/events",
                         json={"status": status, "actor": "社工0231", "on": today}, headers=auth("platform"))
        assert r.status_code == 201, r.text
    page = auditor.get(f"/ui/cases/{js['request_id']}").text
    section = page.split('id="plan"')[1].split("</section>")[0]
    assert "帮扶计划（一户一策）" in section
    assert html.escape(first["label"]) in section and first["owner_label"] in section and first["due"] in section
    assert "已落实" in section and f"{today} 办理中 · 社工0231" in section
    funnel = auditor.get("/ui/models/illness_poverty").text.split('id="funnel"')[1].split("</section>")[0]
    assert "至少一项措施已落实（户）" in funnel and '<svg class="chart funnel"' in funnel
