"""``GET /v1/lists``: the lists in force on a day with their definitions, for the platform and the
auditor; a bad or too early date is a 422 naming ``on``; reading definitions is not logged as a
read of personal data. Over the in-process app and a real server."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from policy.lists import lists_in_force, load_lists
from tests.conftest import auth

pytestmark = pytest.mark.slow


def access_events(client) -> int:
    return len(client.get("/v1/access", params={"limit": 1000}, headers=auth("auditor")).json()["events"])


@pytest.mark.parametrize("role", ["platform", "auditor"])
def test_the_lists_in_force_on_a_day(client, policy, role):
    r = client.get("/v1/lists", params={"on": "2026-06-30"}, headers=auth(role))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {"on": "2026-06-30", "city": policy.home_city,
                    "lists": lists_in_force("2026-06-30", policy, load_lists())}
    assert len(body["lists"]) == 13
    first = body["lists"][0]
    assert first["list"] == "low_income_margin" and first["label"] == "低收入边缘"
    assert "低保边缘标准（1,650 元/人·月）" in first["definition"]


def test_an_earlier_day_has_its_own_lists_and_lines(client):
    body = client.get("/v1/lists", params={"on": "2024-06-30"}, headers=auth("platform")).json()
    assert body["on"] == "2024-06-30" and len(body["lists"]) == 10
    assert "低保边缘标准（1,575 元/人·月）" in body["lists"][0]["definition"]


def test_today_by_default(client):
    body = client.get("/v1/lists", headers=auth("auditor")).json()
    assert body["on"] == dt.date.today().isoformat() and len(body["lists"]) == 13


@pytest.mark.parametrize("on", ["2026-13-01", "2026-02-30", "2026/06/30", "20260630", "２０２６-06-30", "",
                                "2026-06-30T00:00", "x" * 10_000, "\x00"])
def test_a_bad_date_is_a_422_naming_on(client, on):
    r = client.get("/v1/lists", params={"on": on}, headers=auth("platform"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "on"]


def test_a_day_before_any_parameters_is_a_422_naming_on(client):
    r = client.get("/v1/lists", params={"on": "1999-12-31"}, headers=auth("platform"))
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["query", "on"], "type": "value_error.date",
                                   "msg": "no policy parameters in force on 1999-12-31; the first version starts "
                                          "2000-01-01"}]


def test_roles(client):
    assert client.get("/v1/lists").status_code == 401
    assert client.get("/v1/lists", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/v1/lists", headers=auth("admin")).status_code == 403


def test_reading_the_definitions_is_not_logged_as_a_read_of_personal_data(client):
    before = access_events(client)
    assert client.get("/v1/lists", headers=auth("platform")).status_code == 200
    assert access_events(client) == before + 1  # the access-log search itself, nothing for the lists


def test_over_a_real_server(live_server):
    r = httpx.get(f"{live_server['url']}/v1/lists", params={"on": "2026-06-30"}, headers=auth("auditor"),
                  timeout=30)
    assert r.status_code == 200 and [x["list"] for x in r.json()["lists"]][-3:] == [
        "expenditure_hardship", "very_old", "sudden_hardship"]
    spec = httpx.get(f"{live_server['url']}/openapi.json", timeout=30).json()
    assert spec["paths"]["/v1/lists"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ListsResponse"}


def test_the_lists_with_another_citys_thresholds(client, policy):
    """省内通办: the same definitions, each threshold the named city's line in force that day."""
    home = client.get("/v1/lists", params={"on": "2026-06-30"}, headers=auth("platform")).json()
    other_city = next(c for c in policy.city_ids if c != policy.home_city)
    other = client.get("/v1/lists", params={"on": "2026-06-30", "city": other_city}, headers=auth("platform")).json()
    assert other["city"] == other_city and [x["list"] for x in other["lists"]] == [x["list"] for x in home["lists"]]
    line = f"{policy.at(dt.date(2026, 6, 30), other_city).dibao_line:,.0f} 元/人·月"
    low_income = next(x for x in other["lists"] if x["list"] == "low_income_margin")
    assert line in low_income["definition"] and low_income["definition"] != next(
        x for x in home["lists"] if x["list"] == "low_income_margin")["definition"]
    for bad in ("nowhere", "Zhangjiagang", "\x00", "x" * 65):
        r = client.get("/v1/lists", params={"city": bad}, headers=auth("platform"))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "city"], (bad, r.text)
