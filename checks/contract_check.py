#!/usr/bin/env python3
"""Checks a running relief-risk service against what docs/contract.md and docs/api.md promise.

    python3 checks/contract_check.py --url http://127.0.0.1:8000 \\
        --platform-key KEY --auditor-key KEY

Standard library only: it runs with any Python 3.9 or later, beside the service or far from it.
It scores the contract's example household (H000123) a few times and reads those records back, so
it leaves audit records and access-log events behind; it never records feedback (feedback becomes
training labels).

Prints one line per check, ``PASS <what>`` or ``FAIL <what>: <what came back>``, then
``N passed, N failed``. Exit status: 0 when every check passed, 1 when one failed, 2 when the
service could not be reached at all.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

# The contract's example household (docs/contract.md), with a spouse and a year of income.
EXAMPLE: dict[str, Any] = {
    "as_of": "2026-06-30",
    "household": {"household_id": "H000123", "town": "tangqiao", "hukou_type": "rural", "housing": "owned",
                  "property_count": 1, "vehicle_count": 0, "financial_assets": 8000},
    "members": [
        {"person_id": "P0001", "relation": "head", "sex": "M", "birth_date": "1961-03-02", "employment": "farmer",
         "disability_grade": 0},
        {"person_id": "P0002", "relation": "spouse", "sex": "F", "birth_date": "1963-07-19", "employment": "farmer",
         "disability_grade": 0},
    ],
    "income": [{"person_id": p, "month": f"{y}-{m:02d}", "source": "agriculture", "amount": 1400}
               for p in ("P0001", "P0002")
               for (y, m) in [(2025, k) for k in range(7, 13)] + [(2026, k) for k in range(1, 7)]],
    "claims": [
        {"claim_id": "C1", "person_id": "P0001", "service_date": "2026-04-11", "setting": "inpatient",
         "diagnosis_group": "cancer", "total_cost": 68000, "fund_paid": 40000, "critical_illness_paid": 9000,
         "assistance_paid": 0, "out_of_pocket": 19000, "inpatient_days": 12},
        {"claim_id": "C2", "person_id": "P0001", "service_date": "2026-05-20", "setting": "special_outpatient",
         "diagnosis_group": "cancer", "total_cost": 4200, "fund_paid": 2900, "critical_illness_paid": 0,
         "assistance_paid": 0, "out_of_pocket": 1300, "inpatient_days": 0},
    ],
    "assistance": [],
}
PROGRAMS = {"dibao", "dibao_edge_income", "dibao_edge_expenditure", "expenditure_hardship", "tekun"}


class Unreachable(Exception):
    """The service did not answer at all (refused connection, bad address, timeout)."""


class Service:
    """HTTP calls to the service with one of the given keys (or none, or a made-up one)."""

    def __init__(self, url: str, keys: dict[str, str], timeout: float) -> None:
        self.url, self.keys, self.timeout = url.rstrip("/"), keys, timeout

    def call(self, method: str, path: str, body: Any = None, key: str | None = "platform") -> tuple[int, Any]:
        """(status, parsed JSON body or None). ``key``: a role of ``keys``, None for no key, or any
        other string, sent as the key itself."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, _json(r.read())
        except urllib.error.HTTPError as e:
            return e.code, _json(e.read())
        except (urllib.error.URLError, OSError) as e:
            raise Unreachable(f"{method} {self.url}{path}: {getattr(e, 'reason', e)}") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "…"


class Report:
    def __init__(self) -> None:
        self.results: list[bool] = []

    def check(self, name: str, ok: Any, got: Any = "") -> bool:
        """Prints ``PASS name`` or ``FAIL name: got``; returns whether it passed."""
        self.results.append(bool(ok))
        print(f"PASS {name}" if ok else f"FAIL {name}" + (f": got {_short(got)}" if got != "" else ""))
        return bool(ok)

    def summary(self) -> int:
        failed = self.results.count(False)
        print(f"{len(self.results) - failed} passed, {failed} failed")
        return 0 if failed == 0 else 1


def _locs(body: Any) -> list[list[Any]]:
    """The ``loc`` of each problem of a 422 answer ([] when it has none)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    return [d.get("loc") for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []


def _names_field(body: Any, loc: list[Any]) -> bool:
    """Whether a 422 answer has a problem at ``loc`` with a reason in words."""
    detail = body.get("detail") if isinstance(body, dict) else None
    return isinstance(detail, list) and any(
        isinstance(d, dict) and d.get("loc") == loc and isinstance(d.get("msg"), str) and d["msg"] for d in detail)


def check_access(s: Service, r: Report) -> None:
    r.check("GET /healthz answers 200 without a key", s.call("GET", "/healthz", key=None)[0] == 200)
    st, body = s.call("GET", "/readyz", key=None)
    r.check("GET /readyz answers 200 without a key (models loaded, audit store reachable)", st == 200,
            f"{st} {_short(body)}")
    for name, key in (("without a key", None), ("with an unknown key", "not-a-key-of-this-service")):
        st, _ = s.call("POST", "/v1/score", EXAMPLE, key=key)
        r.check(f"POST /v1/score {name} is 401", st == 401, st)
    st, _ = s.call("POST", "/v1/score", EXAMPLE, key="auditor")
    r.check("POST /v1/score with the auditor key is 403 (it needs the platform role)", st == 403, st)


def check_score(s: Service, r: Report) -> dict[str, Any] | None:
    st, js = s.call("POST", "/v1/score", EXAMPLE)
    if not r.check("POST /v1/score of the contract's example is 200", st == 200 and isinstance(js, dict),
                   f"{st} {_short(js)}"):
        return None
    r.check("the answer echoes household_id and as_of and gives a request_id",
            js.get("household_id") == "H000123" and js.get("as_of") == "2026-06-30" and bool(js.get("request_id")),
            {k: js.get(k) for k in ("household_id", "as_of", "request_id")})
    scores = js.get("scores") if isinstance(js.get("scores"), list) else []
    s_ill = next((x for x in scores if isinstance(x, dict) and x.get("risk") == "illness_poverty"), None)
    if not r.check("an illness_poverty score is returned", s_ill is not None, [x.get("risk") for x in scores]):
        return js
    p = s_ill.get("probability")
    r.check("probability is a number in [0, 1]", isinstance(p, (int, float)) and 0 <= p <= 1, p)
    r.check("band is high, medium or low and flagged is true or false",
            s_ill.get("band") in ("high", "medium", "low") and isinstance(s_ill.get("flagged"), bool),
            {k: s_ill.get(k) for k in ("band", "flagged")})
    model = s_ill.get("model") if isinstance(s_ill.get("model"), dict) else {}
    r.check("the model's name and version are given", bool(model.get("name")) and bool(str(model.get("version", ""))),
            model)
    r.check("base_value is a number (log-odds)", isinstance(s_ill.get("base_value"), (int, float)),
            s_ill.get("base_value"))
    reasons = s_ill.get("reasons") if isinstance(s_ill.get("reasons"), list) else []
    r.check("1 to 5 reasons, each with feature, label, value and contribution",
            1 <= len(reasons) <= 5 and all(isinstance(x, dict) and {"feature", "label", "value", "contribution"}
                                           <= set(x) for x in reasons), reasons)
    sizes = [abs(x.get("contribution") or 0) for x in reasons if isinstance(x, dict)]
    r.check("reasons come largest |contribution| first", sizes == sorted(sizes, reverse=True), sizes)
    r.check("every reason's label is Chinese", reasons and all(
        isinstance(x, dict) and isinstance(x.get("label"), str) and not x["label"].isascii() for x in reasons),
        [x.get("label") for x in reasons if isinstance(x, dict)])
    programs, labels = js.get("eligible_programs"), js.get("eligible_program_labels")
    r.check("eligible_programs are calculator ids, with as many Chinese eligible_program_labels",
            isinstance(programs, list) and set(programs) <= PROGRAMS and isinstance(labels, list)
            and len(labels) == len(programs) and all(isinstance(x, str) and not x.isascii() for x in labels),
            {"eligible_programs": programs, "eligible_program_labels": labels})
    return js


def check_audit(s: Service, r: Report, answer: dict[str, Any]) -> None:
    rid = answer.get("request_id")
    st, _ = s.call("GET", f"/v1/audit/{rid}", key="platform")
    r.check("GET /v1/audit/{request_id} with the platform key is 403", st == 403, st)
    st, au = s.call("GET", f"/v1/audit/{rid}", key="auditor")
    if not r.check("GET /v1/audit/{request_id} with the auditor key is 200", st == 200 and isinstance(au, dict),
                   f"{st} {_short(au)}"):
        return
    r.check("the audit record keeps the answer exactly as returned", au.get("response") == answer,
            _short(au.get("response")))
    entries = au.get("scores") if isinstance(au.get("scores"), list) else []
    off = []
    for x in entries:
        try:
            off.append(abs(x["base_value"] + sum(x["contributions"].values()) - x["raw_score"]))
        except (KeyError, TypeError, AttributeError):
            off.append(float("inf"))
    r.check("audit: every score has raw_score and contributions, and base_value + sum(contributions) = raw_score "
            "(to 1e-6)", entries and all(d < 1e-6 for d in off), off)
    st, _ = s.call("GET", f"/v1/audit/no-such-request-{uuid.uuid4().hex[:12]}", key="auditor")
    r.check("GET /v1/audit/{request_id} of an unknown request is 404", st == 404, st)


def check_batch(s: Service, r: Report) -> None:
    bad = copy.deepcopy(EXAMPLE)
    bad["claims"][0]["total_cost"] += 1000
    st, js = s.call("POST", "/v1/score/batch", {"items": [EXAMPLE, bad, EXAMPLE]})
    results = js.get("results") if isinstance(js, dict) else None
    if not r.check('POST /v1/score/batch {"items": [...]} is 200 with one result per item',
                   st == 200 and isinstance(results, list) and len(results) == 3, f"{st} {_short(js)}"):
        return
    r.check("batch: the good items are scored, in order", all(
        isinstance(x, dict) and x.get("household_id") == "H000123" and x.get("request_id")
        for x in (results[0], results[2])), [_short(x, 80) for x in results])
    r.check("batch: the bad item gets its own 422 naming its field",
            isinstance(results[1], dict) and results[1].get("status") == 422 and results[1].get("index") == 1
            and ["body", "items", 1, "claims", 0, "total_cost"] in _locs(results[1]), results[1])
    st, _ = s.call("POST", "/v1/score/batch", {"items": []})
    r.check("batch: no items is 422", st == 422, st)


def check_bad_input(s: Service, r: Report) -> None:
    cases = []
    broken = copy.deepcopy(EXAMPLE)
    broken["claims"][0]["total_cost"] += 1000
    cases.append(("a claim whose parts do not add up", broken, ["body", "claims", 0, "total_cost"]))
    late = copy.deepcopy(EXAMPLE)
    late["claims"][1]["service_date"] = "2026-07-01"
    cases.append(("a claim dated after as_of (refused, not dropped)", late, ["body", "claims", 1, "service_date"]))
    stranger = copy.deepcopy(EXAMPLE)
    stranger["income"][0]["person_id"] = "P9999"
    cases.append(("income of a person who is not a member", stranger, ["body", "income", 0, "person_id"]))
    no_head = copy.deepcopy(EXAMPLE)
    no_head["members"][0]["relation"] = "child"
    cases.append(("a household without a head", no_head, ["body", "members"]))
    town = copy.deepcopy(EXAMPLE)
    town["household"]["town"] = "atlantis"
    cases.append(("an unknown town code", town, ["body", "household", "town"]))
    text = copy.deepcopy(EXAMPLE)
    text["household"]["financial_assets"] = "8000"
    cases.append(("a number sent as text (never coerced)", text, ["body", "household", "financial_assets"]))
    for name, body, loc in cases:
        st, js = s.call("POST", "/v1/score", body)
        r.check(f"{name} is 422 naming {'/'.join(map(str, loc[1:]))}", st == 422 and _names_field(js, loc),
                f"{st} {_short(js)}")
    # a refused bundle is not stored as a score: an auditor finds no record of its household
    marker = copy.deepcopy(broken)
    hid = f"CHECK-{uuid.uuid4().hex[:12]}"
    marker["household"]["household_id"] = hid
    st, _ = s.call("POST", "/v1/score", marker)
    st2, found = s.call("GET", f"/v1/audit?household_id={hid}", key="auditor")
    r.check("a refused bundle leaves no audit record", st == 422 and st2 == 200 and isinstance(found, dict)
            and found.get("records") == [], f"{st} / {st2} {_short(found)}")


def check_policy_and_models(s: Service, r: Report) -> None:
    st, js = s.call("POST", "/v1/policy/check", EXAMPLE)
    programs = js.get("programs") if isinstance(js, dict) else None
    ok = st == 200 and isinstance(programs, list) and {p.get("program") for p in programs} == PROGRAMS and all(
        isinstance(p.get("eligible"), bool) and isinstance(p.get("steps"), list) and p["steps"] for p in programs)
    r.check("POST /v1/policy/check is 200: every programme with eligible and its steps", ok, f"{st} {_short(js)}")
    params = js.get("parameters") if isinstance(js, dict) else None
    r.check("the policy check names the parameter version in force",
            isinstance(params, dict) and bool(params.get("version")) and bool(params.get("effective_from")), params)
    steps = [st_ for p in programs or [] for st_ in p.get("steps", []) if isinstance(st_, dict)]
    r.check("every step that passed or failed says so in its detail (满足 / 不满足)", steps and all(
        str(x.get("detail", "")).endswith("：满足" if x["passed"] else "：不满足")
        for x in steps if x.get("passed") is not None), [x.get("detail") for x in steps][:6])
    st, _ = s.call("POST", "/v1/policy/check", EXAMPLE, key="auditor")
    r.check("POST /v1/policy/check is 200 for the auditor too", st == 200, st)
    st, js = s.call("GET", "/v1/policy/parameters")
    cities = [c for c in js.get("cities", []) if isinstance(c, dict)] if isinstance(js, dict) else []
    home = next((c for c in cities if c.get("home")), {})
    r.check("GET /v1/policy/parameters is 200: every city with its towns and 低保标准, the home city among them",
            st == 200 and home.get("city") == js.get("home_city") and all(
                isinstance(c.get("towns"), list) for c in cities), f"{st} {_short(js)}")
    r.check("the contract example's town is one of the home city's (a bundle without city is the home city's)",
            EXAMPLE["household"]["town"] in (home.get("towns") or []), home)
    for role in ("platform", "auditor"):
        st, js = s.call("GET", "/v1/models", key=role)
        models = js.get("models") if isinstance(js, dict) else None
        r.check(f"GET /v1/models is 200 for the {role} key and lists name, version and aliases",
                st == 200 and isinstance(models, list) and models and all(
                    {"name", "version", "aliases"} <= set(m) for m in models), f"{st} {_short(js)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="the service's base URL")
    ap.add_argument("--platform-key", required=True, help="a key with the platform role, for every town")
    ap.add_argument("--auditor-key", required=True, help="a key with the auditor role, for every town")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer")
    a = ap.parse_args(argv)
    s = Service(a.url, {"platform": a.platform_key, "auditor": a.auditor_key}, a.timeout)
    r = Report()
    try:
        check_access(s, r)
        answer = check_score(s, r)
        if answer is None:
            print("the service does not score the contract's example: the remaining checks are skipped")
            return r.summary()
        check_audit(s, r, answer)
        check_batch(s, r)
        check_bad_input(s, r)
        check_policy_and_models(s, r)
    except Unreachable as exc:
        print(f"cannot reach the service: {exc}")
        r.summary()
        return 2
    return r.summary()


if __name__ == "__main__":
    sys.exit(main())
