"""The probe: every route of the app, API and auditor's pages alike, asked with odd input in every
place it takes input, never answers 5xx. The routes are read from the app itself (``app.routes``,
each route's declared path and query parameters, the body its OpenAPI entry documents), so a route
added later is probed without touching this file; one this file cannot call (an unknown path
parameter, an undocumented body) fails here and asks to be taught, never skipped.

The odd values: Unicode digits (``²``, ``١٢``, ``１２``), integers past 64 bits either way, NUL and
control characters, LIKE's ``%`` ``_`` ``\\``, emoji, 10,000 characters, date-times with ``+08:00``,
``Z``, none, years 1 and 9999, empty and repeated parameters; every field of every JSON body (the
bundle, a batch, feedback, a needs assessment), the login form and the session cookie; bodies past
the size limit sent chunked, malformed Content-Length, wrong content types. Each database runs the
whole probe on one app (SQLite; PostgreSQL, which refuses NUL outright, skipped with the reason when
none answers and required under RELIEF_RISK_REQUIRE_POSTGRES=1). Only the tests that take the store down may see a
503, and there every route that needs the store must answer 503 and none 500; a service started
while its database is down becomes ready once it answers.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

from domain.bundle import CONTRACT_EXAMPLE
from features.contract import PROGRAMS
from serving.app import create_app
from serving.limits import BodySizeLimit
from serving.settings import Settings
from serving.ui.session import COOKIE
from tests.conftest import KEYS, KEYS_ENV, auth
from tests.test_audit_store import PG_URL, fresh_pg_schema

pytestmark = pytest.mark.slow

# ---- what is sent ----------------------------------------------------------------------------------
ODD_TEXT = [
    "²", "١٢", "１２", "12²",
    str(2**63), str(-(2**63) - 1), str(10**30), "-1", "0", "1e309", "NaN", "-inf",
    "\x00", "a\x00b", "\x01\x07\x1b\x7f", "\r\n", "\t", "\u202e", "\ufeff",
    "%", "_", "\\", "%_\\", "'\"; DROP TABLE audit_records; --", "=1+1", "../..", "/",
    "😀", "İ", "x" * 10_000, "9" * 5_000,
    "2026-06-30T12:00:00+08:00", "2026-06-30T12:00:00Z", "2026-06-30T12:00:00", "2026-06-30",
    "0001-01-01T00:00:00+08:00", "0001-01-01", "9999-12-31T23:59:59-08:00", "9999-12-31",
    "", " ", "true", "null", "[]",
]
ODD_JSON: list[Any] = [*ODD_TEXT, 2**63, -(2**63) - 1, 10**30, -1, 0, 1.5, 1e308, -0.0, None, True, False, [], {},
                       ["x"], {"a": 1}]
# for the single-household routes, a few of each kind per field (the batch route gets them all)
ODD_JSON_FEW: list[Any] = ["²", "１２", 2**63, 10**30, "\x00", "x" * 10_000, None, [], -1, "9999-12-31"]
# the auditor's search form reads these from the query string itself (serving/ui/search.py)
SEARCH_FORM = ("household_id", "date_from", "date_to", "model_name", "model_version", "flagged", "limit",
               "before_seq")
LOGIN_FORM = ("key", "next")
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/docs/static"}  # the docs and their assets
SEARCH_PAGES = ("/ui/audit", "/ui/audit.csv")
READS_NO_BODY = {"/ui/logout"}  # a POST that takes no body: it never reads one, so never finds it too large
CONTENT_TYPES = [b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
                 b"application/xml", b"application/json; charset=utf-16", b"application/json\x00", b"", b"\xb2",
                 b"application/json"]
RAW_BODIES = [b"", b"{", b"\xff\xfe\x00", b'"\\ud800"', b"[" * 10_000, b"key=%ff%00&next=%zz", b"\x00" * 100,
              b"1e400", b"18446744073709551616"]
CONTENT_LENGTHS = [b"abc", "²".encode(), b"\xb2", b"-1", b" 10", b"1e3", b"9" * 5_000, b"99999999999999999999",
                   b"0x10", b""]
COOKIES = [v.encode("utf-8") for v in ODD_TEXT if "\r" not in v and "\n" not in v] + [
    b"\xb2\xb2.a.b", b"99999999999.a.b", b"1.2.3.4", b"..", b"9" * 190 + b".a.b", b"\xff\xfe"]

STORE_ROUTES = {  # what needs the store: 503 when it is down (the probe checks every route for 500)
    ("POST", "/v1/score"), ("POST", "/v1/score/batch"), ("POST", "/v1/feedback"), ("GET", "/v1/audit"),
    ("GET", "/v1/audit/{request_id}"), ("GET", "/v1/households/{household_id}"), ("GET", "/readyz"),
    ("GET", "/ui/audit"), ("GET", "/ui/audit.csv"), ("GET", "/ui/cases/{request_id}"),
    ("POST", "/v1/households/{household_id}/plan"), ("GET", "/v1/households/{household_id}/plan"),
    ("POST", "/v1/households/{household_id}/plan/measures/{measure_id}/events"),
    ("POST", "/v1/assessments"), ("GET", "/v1/households/{household_id}/needs"),
}


def valid_bundle(household_id: str = "HPROBE1") -> dict[str, Any]:
    b = copy.deepcopy(CONTRACT_EXAMPLE)
    b["household"]["household_id"] = household_id
    b["city"] = "zhangjiagang"  # the optional field too, so that it is probed with odd values
    b["assistance"] = [{"program": PROGRAMS[0], "start_date": "2026-01-01", "end_date": "2026-05-31",
                        "monthly_amount": 600.0}]
    return b


# ---- the routes, read from the app ---------------------------------------------------------------------
def app_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute the app answers (routers included through FastAPI's include objects too), but
    the stylesheet; anything else must be the docs."""
    found: list[APIRoute] = []

    def walk(routes: list[Any]) -> None:
        for r in routes:
            if isinstance(r, APIRoute):
                if not r.path.startswith("/ui/static/"):
                    found.append(r)
            elif hasattr(r, "original_router"):  # FastAPI keeps an included router as one entry
                assert not getattr(r.include_context, "prefix", ""), "an include prefix: teach app_routes"
                walk(r.original_router.routes)
            else:
                assert getattr(r, "path", None) in DOCS, f"a route the probe cannot call: {r!r}"

    walk(app.routes)
    return found


def _params(dependant: Any, kind: str) -> list[Any]:
    out = list(getattr(dependant, kind))
    for sub in dependant.dependencies:
        out += _params(sub, kind)
    return out


def path_params(route: APIRoute) -> list[str]:
    return sorted({f.alias for f in _params(route.dependant, "path_params")})


def query_params(route: APIRoute) -> list[str]:
    """The query parameters the route declares (a pydantic model's fields one by one), and the
    search form's fields on the search pages, which read the query string themselves."""
    names: list[str] = []
    for f in _params(route.dependant, "query_params"):
        annotation = f.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [info.alias or name for name, info in annotation.model_fields.items()]
        else:
            names.append(f.alias)
    if route.path in SEARCH_PAGES:
        names += SEARCH_FORM
    return list(dict.fromkeys(names))


def documented_body(route: APIRoute) -> str | None:
    """The name of the JSON body's model, as the route documents it (serving.bodies.documented_body)."""
    extra = (route.openapi_extra or {}).get("requestBody", {})
    ref = extra.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return ref.rsplit("/", 1)[1] if ref else None


def calls(app: FastAPI) -> list[tuple[str, APIRoute]]:
    return [(m, r) for r in app_routes(app) for m in sorted(r.methods - {"HEAD", "OPTIONS"})]


def body_limit(app: FastAPI, path: str) -> int:
    (mw,) = [m for m in app.user_middleware if m.cls is BodySizeLimit]
    return mw.kwargs.get("limits", {}).get(path, mw.kwargs["default_limit"])


# the routes as the app declares them, read once at collection (no lifespan runs for this)
def ids(calls: list[tuple[str, APIRoute]]) -> list[str]:
    return [f"{m} {r.path}" for m, r in calls]


_APP = create_app(Settings(api_keys=KEYS_ENV))
CALLS = calls(_APP)
BODY_CALLS = [(m, r) for m, r in CALLS if m == "POST"]
JSON_CALLS = [(m, r) for m, r in BODY_CALLS if documented_body(r)]
FORM_CALLS = [(m, r) for m, r in BODY_CALLS if r.path.startswith("/ui")]
UI_CALLS = [(m, r) for m, r in CALLS if r.path.startswith("/ui")]
IDS, BODY_IDS = ids(CALLS), ids(BODY_CALLS)


# ---- one app per database ---------------------------------------------------------------------------------
class Probe:
    """Sends a route its valid request with one thing odd, and collects every answer ≥ 500. ``seed``:
    score a household and record a visit first, so ids in paths and bodies name real records (a
    store that is down gets ids of the right shape that name nothing)."""

    def __init__(self, app: FastAPI, client: TestClient, database: str, *, seed: bool = True) -> None:
        self.app, self.client, self.database = app, client, database
        # the probe's requests go straight to the app on the TestClient's own event loop (a third of
        # the TestClient's cost a request); the TestClient runs the lifespan and sends chunked bodies
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                      base_url="http://testserver", follow_redirects=False)
        self.failures: list[str] = []
        self.roles: dict[tuple[str, str], dict[str, str]] = {}
        self.request_id = "0" * 32
        self.measure_id = "0" * 32
        if seed:
            r = client.post("/v1/score", json=valid_bundle(), headers=auth("platform"))
            assert r.status_code == 200, r.text
            self.request_id = r.json()["request_id"]
            fb = client.post("/v1/feedback", json=self.feedback(), headers=auth("platform"))
            assert fb.status_code == 201, fb.text
            plan = client.post("/v1/households/HPROBE1/plan", json={}, headers=auth("platform"))
            assert plan.status_code == 201, plan.text
            self.measure_id = plan.json()["measures"][0]["measure_id"]
        self.valid_path = {"request_id": self.request_id, "household_id": "HPROBE1", "name": "illness_poverty",
                           "version": "1", "measure_id": self.measure_id}

    def every_route_once(self) -> dict[tuple[str, str], int]:
        """Each route with valid input and the credentials of a role it admits: {(method, path): status}."""
        return {(method, route.path): self.send(method, route, check=False).status_code
                for method, route in calls(self.app)}

    def feedback(self, request_id: str | None = None) -> dict[str, Any]:
        return {"request_id": request_id or self.request_id, "household_id": "HPROBE1",
                "visited_on": CONTRACT_EXAMPLE["as_of"], "findings": ["illness_poverty"]}

    def assessment(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "assessed_on": CONTRACT_EXAMPLE["as_of"], "assessor": "SW0001",
                "domains": [{"domain": "medical", "level": 2, "evidence": "需长期用药"}], "note": "回访"}

    def body(self, route: APIRoute) -> tuple[str, Any]:
        """("json", a valid body), ("form", a valid login form) or ("none", None)."""
        name = documented_body(route)
        if name == "Bundle":
            return "json", valid_bundle()
        if name == "BatchRequest":
            return "json", {"items": [valid_bundle()]}
        if name == "FeedbackRequest":
            return "json", self.feedback()
        if name == "PlanDraftRequest":
            return "json", {}
        if name == "PlanEventRequest":  # a move the lifecycle allows only once: later ones are 409s, never 5xx
            return "json", {"status": "agreed", "actor": "社工0231", "on": CONTRACT_EXAMPLE["as_of"]}
        if name == "AssessmentRequest":
            return "json", self.assessment()
        assert name is None, f"{route.path}: no valid example of a {name} body: teach Probe.body"
        if route.path.startswith("/ui") and "POST" in route.methods:
            return "form", {"key": KEYS["auditor"], "next": "/ui/audit"}
        assert "POST" not in route.methods or route.path == "/ui/logout", \
            f"POST {route.path} documents no body: teach Probe.body"
        return "none", None

    def url(self, route: APIRoute, odd: dict[str, str] | None = None) -> str:
        names = path_params(route)
        unknown = set(names) - set(self.valid_path)
        assert not unknown, f"{route.path}: no valid value for path parameters {unknown}: teach Probe.valid_path"
        values = {**self.valid_path, **(odd or {})}
        return route.path_format.format(**{n: quote(values[n], safe="") for n in names})

    def headers(self, method: str, route: APIRoute) -> dict[str, str]:
        """Credentials of the first role the route admits (none where it needs none)."""
        key = (method, route.path)
        if key not in self.roles:
            self.roles[key] = {}
            for role in ("platform", "auditor", "admin"):
                r = self.send(method, route, headers=auth(role), check=False)
                if r.status_code not in (401, 403):
                    self.roles[key] = auth(role)
                    break
        return self.roles[key]

    def send(self, method: str, route: APIRoute, *, path: dict[str, str] | None = None, params: Any = None,
             json_body: Any = ..., content: Any = None, form: dict[str, str] | None = None,
             headers: dict[str, Any] | None = None, check: bool = True, what: str = "") -> Any:
        kind, valid = self.body(route)
        kwargs: dict[str, Any] = {"params": params, "headers": headers if headers is not None
                                  else self.headers(method, route)}
        if content is not None:
            kwargs["content"] = content
        elif form is not None:
            kwargs["data"] = form
        elif kind == "json":
            kwargs["json"] = valid if json_body is ... else json_body
        elif kind == "form":
            kwargs["data"] = valid
        self.http.cookies.clear()  # each request with its own credentials only (a login sets a cookie)
        r = self.client.portal.call(functools.partial(self.http.request, method, self.url(route, path), **kwargs))
        if check:
            self.check(r, f"{method} {route.path} {what}")
        return r

    def check(self, r: Any, what: str) -> None:
        if r.status_code >= 500:
            self.failures.append(f"{r.status_code} {what[:300]!r}: {r.text[:200]!r}")

    def close(self) -> None:
        self.client.portal.call(self.http.aclose)

    def assert_no_failures(self) -> None:
        failures, self.failures = self.failures, []
        assert not failures, f"{len(failures)} answers ≥ 500 on {self.database}:\n" + "\n".join(failures[:40])


def raw_status(probe: Probe, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> int:
    """The status the app answers a request whose header bytes arrive exactly as sent, as a server
    hands them over (the TestClient re-encodes header values as UTF-8: a Latin-1 byte such as 0xB2,
    which a browser or curl may send, would never arrive as itself). A 500 where the app raised."""
    started: list[int] = []

    async def call() -> None:
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.append(message["status"])

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 1),
                 "server": ("testserver", 80)}
        with contextlib.suppress(Exception):  # what the app raised, it answered 500 first (or nothing)
            await probe.app(scope, receive, send)

    probe.client.portal.call(call)
    return started[0] if started else 500


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def probe(request, trained, mlflow_uri, tmp_path_factory) -> Iterator[Probe]:
    database = request.param
    url = (f"sqlite:///{tmp_path_factory.mktemp('probe') / 'audit.db'}" if database == "sqlite"
           else fresh_pg_schema())
    # small limits, so the oversize bodies are quick to send
    settings = Settings(api_keys=KEYS_ENV, audit_url=url, mlflow_tracking_uri=mlflow_uri,
                        max_body_bytes=256 * 1024, max_batch_body_bytes=8 * 1024 * 1024)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        probe = Probe(app, client, database)
        yield probe
        probe.close()
    if database == "postgres":
        drop_pg_schema(url)


def drop_pg_schema(url: str) -> None:
    from sqlalchemy import text

    from store.audit import AuditStore

    store = AuditStore(PG_URL)
    with store.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {url.rsplit('%3D', 1)[1]} CASCADE"))
    store.dispose()


# ---- the probes ---------------------------------------------------------------------------------------------
def test_the_probe_knows_every_route():
    paths = {r.path for _, r in CALLS}
    assert {"/v1/score", "/v1/score/batch", "/v1/feedback", "/v1/policy/check", "/v1/policy/parameters",
            "/v1/audit", "/v1/audit/{request_id}", "/v1/households/{household_id}", "/v1/models", "/healthz",
            "/readyz", "/ui/audit", "/ui/audit.csv", "/ui/cases/{request_id}", "/ui/login", "/ui/models/{name}",
            "/v1/lists", "/v1/households/{household_id}/plan",
            "/v1/households/{household_id}/plan/measures/{measure_id}/events", "/v1/assessments",
            "/v1/households/{household_id}/needs", "/v1/monitoring/drift", "/ui/models/{name}/drift"} <= paths
    assert "/ui/static/ui.css" not in paths
    assert {"before_seq", "limit", "household_id", "since", "model_name"} <= set(
        query_params(next(r for _, r in CALLS if r.path == "/v1/audit")))
    assert sorted(query_params(next(r for _, r in CALLS if r.path == "/v1/lists"))) == ["city", "on"]
    assert query_params(next(r for _, r in CALLS if r.path == "/v1/policy/parameters")) == ["city", "on"]
    # every route that takes a body is probed as JSON (its documented model) or as a page's form
    assert {r.path for _, r in BODY_CALLS} == {r.path for _, r in JSON_CALLS} | {r.path for _, r in FORM_CALLS}
    assert {documented_body(r) for _, r in JSON_CALLS} == {"Bundle", "BatchRequest", "FeedbackRequest",
                                                           "PlanDraftRequest", "PlanEventRequest", "AssessmentRequest"}


def test_every_integer_query_parameter_is_bounded_to_what_the_database_holds():
    """Every integer a route takes in its query or path has a minimum and a maximum within 64 bits."""
    spec = _APP.openapi()
    loose = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for p in op.get("parameters", []):
                schemas = [p.get("schema", {}), *p.get("schema", {}).get("anyOf", [])]
                for s in schemas:
                    if s.get("type") == "integer" and not (
                            s.get("minimum", -(2**64)) >= -(2**63) and s.get("maximum", 2**64) <= 2**63 - 1):
                        loose.append(f"{method.upper()} {path} {p['name']}: {s}")
    assert not loose, loose


@pytest.mark.parametrize(("method", "route"), CALLS, ids=IDS)
def test_odd_path_parameters(probe, method, route):
    for name in path_params(route):
        for value in ODD_TEXT:  # "/", "../.." and "" make another path: the router answers those
            probe.send(method, route, path={name: value}, what=f"{name}={value[:40]!r}")
    probe.assert_no_failures()


@pytest.mark.parametrize(("method", "route"), CALLS, ids=IDS)
def test_odd_query_parameters(probe, method, route):
    names = query_params(route)
    for name in names:
        for value in ODD_TEXT:
            probe.send(method, route, params={name: value}, what=f"?{name}={value[:40]!r}")
        probe.send(method, route, params=[(name, "1"), (name, "²"), (name, "2")], what=f"?{name} repeated")
    if names:  # all of them at once, each odd (within the URL length httpx sends)
        for value in (v for v in ODD_TEXT if len(v) < 1000):
            probe.send(method, route, params=dict.fromkeys(names, value), what=f"all={value[:40]!r}")
    probe.assert_no_failures()


def _replaced(body: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(body)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def _removed(body: Any, path: tuple) -> Any:
    out = copy.deepcopy(body)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


def _places(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON value: itself, each field, the first item of each list, recursively."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _places(v, (*path, k))
    elif isinstance(value, list) and value:
        yield from _places(value[0], (*path, 0))


def _variants(body: Any, odd: list[Any]) -> Iterator[tuple[str, Any]]:
    for place in _places(body):
        for value in odd:
            yield f"{'.'.join(map(str, place)) or 'body'}={str(value)[:30]!r}", _replaced(body, place, value)
        if place and isinstance(place[-1], str):
            yield f"{'.'.join(map(str, place))} missing", _removed(body, place)


@pytest.mark.parametrize(("method", "route"), JSON_CALLS, ids=ids(JSON_CALLS))
def test_odd_json_bodies(probe, method, route):
    kind, valid = probe.body(route)
    assert kind == "json"
    if documented_body(route) == "BatchRequest":
        # every odd bundle as an item of one batch (each item is checked on its own), then the batch itself
        items = [b for _, b in _variants(valid["items"][0], ODD_JSON)]
        for lo in range(0, len(items), 1000):
            r = probe.send(method, route, json_body={"items": items[lo:lo + 1000]}, what=f"items {lo}…")
            if r.status_code == 200:
                assert len(r.json()["results"]) == len(items[lo:lo + 1000])
        variants = [v for v in _variants(valid, ODD_JSON) if not v[0].startswith("items.0.")]
    else:
        variants = list(_variants(valid, ODD_JSON if documented_body(route) == "FeedbackRequest" else ODD_JSON_FEW))
    for what, body in variants:
        probe.send(method, route, json_body=body, what=what)
    probe.assert_no_failures()


@pytest.mark.parametrize(("method", "route"), FORM_CALLS, ids=ids(FORM_CALLS))
def test_odd_login_form_fields(probe, method, route):
    """The login form's fields, odd each, on every page that takes a form (signed in or not)."""
    for field in LOGIN_FORM:
        for value in ODD_TEXT:
            for key in (KEYS["auditor"], "not-a-key-0123456789"):
                probe.send(method, route, form={"key": key, "next": "/ui/audit", field: value}, headers={},
                           what=f"form {field}={value[:40]!r}")
    probe.assert_no_failures()


@pytest.mark.parametrize(("method", "route"), BODY_CALLS, ids=BODY_IDS)
def test_wrong_content_types_and_malformed_bodies(probe, method, route):
    for ctype in CONTENT_TYPES:  # every odd body as JSON and as a form, the first few as anything else
        bodies = RAW_BODIES if ctype in (b"application/json", b"application/x-www-form-urlencoded") else RAW_BODIES[:3]
        for raw in bodies:
            probe.send(method, route, content=raw, headers={**probe.headers(method, route), "content-type": ctype},
                       what=f"{ctype!r} {raw[:20]!r}")
    probe.assert_no_failures()


@pytest.mark.parametrize(("method", "route"), BODY_CALLS, ids=BODY_IDS)
def test_oversize_chunked_bodies_are_413(probe, method, route):
    """No Content-Length (chunked): the limit is found while the body streams in, whatever the
    route does with the body (FastAPI turns an exception while it reads a declared body into a 400).
    A route that refuses the body's type before reading it may say so instead (a 4xx); one that
    reads no body at all (logging out) answers as it always does."""
    limit = body_limit(probe.app, route.path)
    own = b"application/json" if documented_body(route) else b"application/x-www-form-urlencoded"

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent <= limit:
            yield b" " * 65536
            sent += 65536

    for ctype in (own, b"application/json", b"application/x-www-form-urlencoded", b"text/plain"):
        r = probe.client.request(method, probe.url(route), content=chunks(),  # the TestClient streams a generator
                                 headers={**probe.headers(method, route), "content-type": ctype})
        probe.check(r, f"{method} {route.path} chunked {ctype!r}")
        assert "content-length" not in r.request.headers
        if ctype == own and route.path not in READS_NO_BODY:
            assert r.status_code == 413, (ctype, r.status_code, r.text[:200])
        else:
            assert r.status_code < 500
    probe.assert_no_failures()


@pytest.mark.parametrize(("method", "route"), BODY_CALLS, ids=BODY_IDS)
def test_malformed_content_length_is_400_or_413(probe, method, route):
    credentials = [(k.lower().encode(), v.encode()) for k, v in probe.headers(method, route).items()]
    for length in CONTENT_LENGTHS:
        status = raw_status(probe, method, probe.url(route), [
            *credentials, (b"content-type", b"application/json"), (b"content-length", length)], b"{}")
        assert status in (400, 413), (length[:20], status)


class _Declared(BaseModel):
    x: int


def test_a_body_past_the_limit_is_413_even_where_fastapi_reads_it():
    """The root of the 400s: FastAPI reads a declared body parameter itself and turns any exception
    of the read (the limit's too) into 400 "There was an error parsing the body"; BodySizeLimit
    answers 413 whatever the app made of it."""
    app = FastAPI()
    app.add_middleware(BodySizeLimit, default_limit=1000)

    @app.post("/declared")
    def declared(body: _Declared) -> dict[str, int]:
        return {"x": body.x}

    client = TestClient(app, raise_server_exceptions=False)
    r = client.post("/declared", content=iter([b" " * 600, b" " * 600]), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "1000" in r.json()["detail"]
    assert client.post("/declared", json={"x": 1}).json() == {"x": 1}


@pytest.mark.parametrize(("method", "route"), UI_CALLS, ids=ids(UI_CALLS))
def test_odd_session_cookies(probe, method, route):
    for cookie in COOKIES:
        if cookie == b"\xb2\xb2.a.b":
            continue  # test_a_session_cookie_with_a_latin1_digit_expiry
        status = raw_status(probe, method, probe.url(route), [(b"cookie", COOKIE.encode() + b"=" + cookie)])
        if status >= 500:
            probe.failures.append(f"{status} {method} {route.path} cookie {cookie[:30]!r}")
    probe.assert_no_failures()


def test_a_session_cookie_with_a_latin1_digit_expiry(probe):
    assert raw_status(probe, "GET", "/ui/audit", [(b"cookie", COOKIE.encode() + b"=\xb2\xb2.a.b")]) < 500


@pytest.mark.parametrize(("method", "route"), CALLS, ids=IDS)
def test_personal_data_is_never_cached(probe, method, route):
    """Every answer on /v1 and /ui says no-store (errors and the size limit's 413 too); the docs,
    the probes and the stylesheet may be cached."""
    answers = [probe.send(method, route), probe.send(method, route, headers={}),
               probe.send(method, route, params={"limit": "²", "before_seq": "²"})]
    for r in answers:
        if route.path.startswith(("/v1/", "/ui")):
            assert r.headers.get("cache-control") == "no-store", (r.status_code, dict(r.headers))
        else:
            assert "no-store" not in r.headers.get("cache-control", "")
    probe.assert_no_failures()


def test_other_answers_are_cacheable_and_404s_on_v1_are_not(probe):
    c = probe.client
    assert c.get("/ui/static/ui.css").headers["cache-control"] == "max-age=300"
    for path in ("/openapi.json", "/healthz", "/readyz"):
        assert "cache-control" not in c.get(path).headers, path
    for path in ("/docs", "/redoc"):  # the pages revalidate (the assets they load may change with an upgrade)
        assert c.get(path).headers["cache-control"] == "no-cache", path
    assert c.get("/v1/nothing-here").headers["cache-control"] == "no-store"
    limit = body_limit(probe.app, "/v1/score")
    big = c.post("/v1/score", content=b" " * (limit + 1), headers=auth("platform"))
    assert big.status_code == 413 and big.headers["cache-control"] == "no-store"


def test_time_zones_and_far_dates_in_the_audit_search(probe):
    """``since``/``until`` with an offset, ``Z`` or none find the same record; a year the service
    never takes is a 422 naming the field, on the API and the form alike."""
    h = auth("auditor")
    scored = probe.client.post("/v1/score", json=valid_bundle("HPROBE-TZ"), headers=auth("platform"))
    assert scored.status_code == 200, scored.text
    now = dt.datetime.now(dt.UTC)
    for since in ((now - dt.timedelta(days=1)).isoformat(),
                  (now - dt.timedelta(days=1)).astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(),
                  (now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  (now - dt.timedelta(days=1)).replace(tzinfo=None).isoformat()):
        r = probe.client.get("/v1/audit", params={"since": since, "household_id": "HPROBE-TZ"}, headers=h)
        assert r.status_code == 200 and scored.json()["request_id"] in r.text, (since, r.status_code, r.text[:200])
    for name in ("since", "until"):
        for value in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "1899-12-31T00:00:00"):
            r = probe.client.get("/v1/audit", params={name: value}, headers=h)
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name], r.text
    r = probe.client.get("/ui/audit", params={"date_from": "0001-01-01"}, headers=h)
    assert r.status_code == 400 and "起始日期" in r.text


def test_bad_numbers_and_ids_are_named(probe):
    """The reported 500s, answered with what was wrong and where."""
    c, h = probe.client, auth("auditor")
    for name, value in (("before_seq", str(2**63)), ("before_seq", "²"), ("limit", "１２"), ("limit", "0"),
                        ("household_id", "a\x00b"), ("household_id", "x" * 65), ("model_name", "a\x00"),
                        ("model_name", "%"), ("model_version", "x" * 33), ("model_version", "1\n")):
        r = c.get("/v1/audit", params={name: value}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name], (name, value, r.text)
    assert c.get("/v1/audit", params={"before_seq": str(2**63 - 1)}, headers=h).status_code == 200
    for name, value, said in (("before_seq", "²", "before_seq"), ("before_seq", "１２", "before_seq"),
                              ("before_seq", str(2**63), "before_seq"), ("before_seq", "0", "before_seq"),
                              ("limit", "²", "limit"), ("limit", "١٢", "limit"), ("limit", "5000", "limit"),
                              ("flagged", "yes", "flagged"), ("household_id", "a\x00b", "户编号"),
                              ("model_name", "a\x00", "模型名称"), ("model_version", "\x01", "模型版本")):
        for page in ("/ui/audit", "/ui/audit.csv"):
            r = c.get(page, params={name: value}, headers=h)
            assert r.status_code == 400 and said in r.text, (page, name, value, r.status_code)
    assert c.get("/ui/audit", params={"limit": "20", "before_seq": "9"}, headers=h).status_code == 200
    for rid in ("a\x00b", "x" * 65, "a.b", "²"):
        assert c.get(f"/v1/audit/{quote(rid, safe='')}", headers=h).status_code == 404
        assert c.get(f"/ui/cases/{quote(rid, safe='')}", headers=h).status_code == 404
    for field, value in (("request_id", "a\x00b"), ("request_id", "x" * 65), ("household_id", "H\x00"),
                         ("household_id", "-H")):
        r = c.post("/v1/feedback", json={**probe.feedback(), field: value}, headers=auth("platform"))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], (field, r.text)


# ---- the store down ----------------------------------------------------------------------------------------
def assert_down(statuses: dict[tuple[str, str], int]) -> None:
    fives = {k: s for k, s in statuses.items() if s >= 500 and s != 503}
    assert not fives, fives
    assert set(statuses) >= STORE_ROUTES
    needing = {k: s for k, s in statuses.items() if k in STORE_ROUTES}
    assert all(s == 503 for s in needing.values()), needing


def wait_ready(client: TestClient, timeout: float = 15.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if client.get("/readyz").status_code == 200:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/readyz').text}")


def _app(url: str, mlflow_uri: str) -> FastAPI:
    return create_app(Settings(api_keys=KEYS_ENV, audit_url=url, mlflow_tracking_uri=mlflow_uri))


def test_sqlite_down_at_start_then_up(trained, mlflow_uri, tmp_path):
    """The database file's folder is not there when the service starts (SQLite cannot open it):
    every route that needs the store answers 503, none 500; once the folder is there, /readyz turns
    200 by itself (the store's creation is tried again) and the service scores."""
    folder = tmp_path / "not-yet"
    app = _app(f"sqlite:///{folder / 'audit.db'}", mlflow_uri)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        assert client.get("/readyz").status_code == 503
        assert_down(Probe(app, client, "down", seed=False).every_route_once())
        folder.mkdir()
        wait_ready(client)
        assert client.post("/v1/score", json=valid_bundle(), headers=auth("platform")).status_code == 200
        assert client.get("/ui/audit", headers=auth("auditor")).status_code == 200


class TcpProxy:
    """A TCP forwarder on a port of its own to PostgreSQL's: stopping it is the database going away
    (its listening socket and every connection closed), starting it again is the database back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept(): close alone would not
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.mark.postgres
def test_postgres_down_at_start_up_then_gone_while_serving(trained, mlflow_uri):
    """PostgreSQL behind a forwarder: not there at start (a closed port), then there, then gone while
    the service runs, then back. While it is away, every route that needs it answers 503, none 500."""
    url = fresh_pg_schema()
    host_port = PG_URL.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "5432")
    proxy = TcpProxy((host, int(port)))
    proxied = url.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
    app = _app(proxied, mlflow_uri)
    try:
        with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
            offline = Probe(app, client, "down", seed=False)
            assert client.get("/readyz").status_code == 503
            assert_down(offline.every_route_once())
            proxy.start()
            wait_ready(client)
            scored = client.post("/v1/score", json=valid_bundle(), headers=auth("platform"))
            assert scored.status_code == 200, scored.text
            proxy.stop()
            assert_down(offline.every_route_once())
            proxy.start()
            wait_ready(client)
            again = client.post("/v1/score", json=valid_bundle(), headers=auth("platform"))
            assert again.status_code == 200, again.text
            assert client.get(f"/v1/audit/{again.json()['request_id']}", headers=auth("auditor")).status_code == 200
    finally:
        proxy.stop()
        drop_pg_schema(url)


def test_the_store_is_tried_again_at_most_every_couple_of_seconds(monkeypatch):
    """StoreGate: one try at a time, none more often than retry_seconds, and never again once ready."""
    from serving.deps import StoreGate

    tries: list[float] = []
    ok = threading.Event()

    class Flaky:
        def create(self) -> None:
            tries.append(time.monotonic())
            time.sleep(0.05)
            if not ok.is_set():
                raise ConnectionError("down")

    gate = StoreGate(Flaky(), retry_seconds=0.3)  # type: ignore[arg-type]
    threads = [threading.Thread(target=gate.create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tries) == 1 and not gate.ready and gate.error == "ConnectionError"
    assert gate.create() is False and len(tries) == 1  # too soon
    time.sleep(0.35)
    ok.set()
    assert gate.create() is True and len(tries) == 2
    assert gate.create() is True and len(tries) == 2

