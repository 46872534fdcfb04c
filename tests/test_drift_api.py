"""Drift monitoring against a real server: households scored as the model was trained keep every
feature quiet; the same households with their incomes tripled put the income features at "act",
leave unrelated features stable and move the score's PSI. The nightly batch writes the same report."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re

import httpx
import numpy as np
import pytest

from features.tables import bundle_from_tables
from tests.conftest import KEYS, auth

pytestmark = pytest.mark.slow

N = 600
INCOME_FEATURES = {"income_12m_per_capita_month", "income_3m_per_capita_month", "income_pc_to_dibao",
                   "income_after_oop_pc_month", "after_oop_to_dibao", "oop_12m_to_income", "oop_to_capacity"}
UNRELATED = {"head_age", "n_members", "n_elderly", "oop_12m", "inpatient_days_12m", "property_count"}


def _score(url: str, bundles: list[dict]) -> tuple[str, str]:
    since = dt.datetime.now(dt.UTC).isoformat()
    for lo in range(0, len(bundles), 300):
        r = httpx.post(f"{url}/v1/score/batch", json={"items": bundles[lo:lo + 300]}, headers=auth("platform"),
                       timeout=300)
        assert r.status_code == 200, r.text
        assert all("scores" in x for x in r.json()["results"])
    return since, dt.datetime.now(dt.UTC).isoformat()


def _drift(url: str, **params: str | None) -> httpx.Response:
    query = {k: v for k, v in {"risk": "illness_poverty", **params}.items() if v is not None}
    return httpx.get(f"{url}/v1/monitoring/drift", params=query, headers=auth("auditor"), timeout=120)


@pytest.fixture(scope="module")
def bundles(city_tables, champion):
    as_of = champion.meta["test_as_of"]
    ids = city_tables.households["household_id"].to_numpy()
    chosen = set(np.random.default_rng(3).choice(ids, N, replace=False).tolist())
    return [bundle_from_tables(city_tables, h, as_of) for h in sorted(chosen)]


def test_drift_of_an_unchanged_and_a_shifted_population(live_server, bundles, champion):
    url = live_server["url"]
    since, until = _score(url, bundles)
    r = _drift(url, since=since, until=until)
    assert r.status_code == 200, r.text
    quiet = r.json()
    assert quiet["reference"]["as_of"] == champion.meta["test_as_of"]  # the window's own calendar month
    assert quiet["window"]["n"] == N and quiet["n_score"] == N and quiet["source"] == "api"
    assert quiet["model"]["name"] == "illness_poverty"
    assert all(f["status"] == "stable" for f in quiet["features"]), \
        [(f["feature"], f["psi"]) for f in quiet["features"] if f["status"] != "stable"]
    psis = [f["psi"] for f in quiet["features"]]
    assert psis == sorted(psis, reverse=True)

    shifted = copy.deepcopy(bundles)
    for b in shifted:
        for row in b["income"]:
            row["amount"] = round(row["amount"] * 3, 2)
    since2, until2 = _score(url, shifted)
    moved = _drift(url, since=since2, until=until2).json()
    by = {f["feature"]: f for f in moved["features"]}
    acting = {f for f, d in by.items() if d["status"] == "act"}
    assert {"income_12m_per_capita_month", "income_pc_to_dibao"} <= acting
    assert acting <= INCOME_FEATURES, acting - INCOME_FEATURES
    assert all(by[f]["status"] == "stable" for f in UNRELATED if f in by)
    assert moved["score_psi"] > quiet["score_psi"] + 0.05
    # the chart's data: reference and current shares per bin, Chinese labels
    inc = by["income_12m_per_capita_month"]
    assert len(inc["bins"]) == len(inc["reference"]) == len(inc["current"]) and inc["bins"][-1] == "缺失"
    assert abs(sum(inc["reference"]) - 1) < 1e-4 and abs(sum(inc["current"]) - 1) < 1e-4


def test_another_season_is_compared_with_its_own_month_and_stays_quiet(live_server, city_tables, champion):
    """Households scored as of a month the test period is not in (income has a season) are compared
    with the model's reference of that calendar month, not with the test period's."""
    test_month = champion.meta["test_as_of"][5:7]
    other = next(r["as_of"] for r in champion.meta["references"] if r["as_of"][5:7] != test_month)
    ids = city_tables.households["household_id"].to_numpy()
    chosen = sorted(set(np.random.default_rng(5).choice(ids, N, replace=False).tolist()))
    since, until = _score(live_server["url"], [bundle_from_tables(city_tables, h, other) for h in chosen])
    report = _drift(live_server["url"], since=since, until=until).json()
    assert report["reference"]["as_of"] == other and report["window"]["n"] == N
    assert all(f["status"] == "stable" for f in report["features"]), \
        [(f["feature"], f["psi"]) for f in report["features"] if f["status"] != "stable"]


def test_drift_is_for_auditors_and_admins_and_checks_its_query(live_server):
    url = live_server["url"]
    assert httpx.get(f"{url}/v1/monitoring/drift", params={"risk": "illness_poverty"},
                     headers=auth("platform")).status_code == 403
    assert httpx.get(f"{url}/v1/monitoring/drift", params={"risk": "illness_poverty"}).status_code == 401
    assert httpx.get(f"{url}/v1/monitoring/drift", params={"risk": "illness_poverty"},
                     headers=auth("admin")).status_code == 200
    for params, field in (({"risk": "nope"}, "risk"), ({"risk": None}, "risk"),
                          ({"since": "yesterday"}, "since"), ({"until": "2026-01-01T00:00:00Z",
                                                               "since": "2026-02-01T00:00:00Z"}, "until"),
                          ({"source": "cloud"}, "source"), ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
                          ({"extra": "1"}, "extra")):
        r = _drift(url, **params)
        assert r.status_code == 422, (params, r.text)
        assert field in r.text
    # a window with few households says so and shows no shares of theirs
    few = _drift(url, since=(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat())
    assert few.status_code == 200 and few.json()["window"]["n"] == 0
    assert all(f["status"] == "too_few" and f["current"] == [] for f in few.json()["features"])
    # no nightly batch recorded in this store
    assert _drift(url, source="nightly_batch").status_code == 404


def test_nightly_batch_writes_the_drift_report(tmp_path, city_tables, champion, mlflow_uri, policy):
    from batch.run import run_batch
    from domain.loader import load_served

    models, _ = load_served(["illness_poverty"], required=True, warm=False)
    summary = run_batch(city_tables, tmp_path, models, policy, as_of=champion.meta["test_as_of"], explain="none",
                        progress=False)
    doc = json.loads((tmp_path / "drift.json").read_text(encoding="utf-8"))
    report = doc["risks"]["illness_poverty"]
    assert summary.files["drift"] == str(tmp_path / "drift.json")
    assert report["window"]["n"] == len(city_tables.households) and report["source"] == "nightly_batch"
    # the batch scores the very population of the reference (the test period): nothing drifts
    assert report["score_psi"] < 0.01
    assert all(f["status"] == "stable" for f in report["features"])


def test_the_drift_page_in_a_real_browser(live_server, tmp_path, bundles):
    from tests.test_ui import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, _playwright

    sync_playwright = _playwright()
    url = live_server["url"]
    _score(url, bundles[:200])  # whatever ran before, the last 30 days hold a window
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/ui/models/illness_poverty")
            page.fill("#key", KEYS["auditor"])
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/models/illness_poverty")
            page.get_by_role("link", name=re.compile("数据漂移监测")).click()
            page.wait_for_url("**/ui/models/illness_poverty/drift")
            charts = page.locator("svg.drift")
            assert charts.count() == 1 + 8  # the score, then the eight features of largest PSI
            first = charts.first
            assert first.is_visible() and first.locator(".bar.reference rect").count() >= 2
            assert first.locator(".bar.current rect").count() == first.locator(".bar.reference rect").count()
            rows = page.locator("table.drift-table tbody tr")
            assert rows.count() == len(champion_features(page)) > 20
            assert page.get_by_text("模型校准概率").first.is_visible()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "drift.png"), full_page=True)
            for bad in ("days=%D9%A3", "days=0", "days=99999999999999999999", "source=cloud"):
                r = page.goto(f"{url}/ui/models/illness_poverty/drift?{bad}")
                assert r is not None and r.status == 422, bad
            assert not errors, errors
        finally:
            browser.close()


def champion_features(page) -> list[str]:
    return page.locator("table.drift-table tbody tr td.text span.mono").all_inner_texts()
