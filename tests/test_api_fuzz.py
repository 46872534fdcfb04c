"""Random but valid bundles, from the empty to the largest the contract allows, always score:
200, finite probabilities, additive explanations. Random invalid ones are always 4xx."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from features.tables import (
    DIAGNOSIS_GROUPS,
    EMPLOYMENT,
    HOUSING,
    HUKOU_TYPES,
    INCOME_SOURCES,
    PROGRAMS,
    RELATIONS,
    SETTINGS,
    TOWNS_DEFAULT,
)
from tests.conftest import auth

pytestmark = pytest.mark.slow


def random_bundle(rng: np.random.Generator) -> dict:
    as_of = dt.date(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 100)))
    if rng.random() < 0.5:
        as_of = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 1200)))
    n = int(rng.choice([1, 1, 2, 3, 5, 50]))
    members = []
    for i in range(n):
        age_days = min(int(rng.integers(0, 119 * 365)), (as_of - dt.date(1900, 1, 1)).days)
        members.append({"person_id": f"p{i}", "relation": "head" if i == 0 else str(rng.choice(RELATIONS[1:])),
                        "sex": str(rng.choice(["M", "F"])), "birth_date": str(as_of - dt.timedelta(days=age_days)),
                        "employment": str(rng.choice(EMPLOYMENT)), "disability_grade": int(rng.integers(0, 5))})
    def money():
        return float(rng.choice([0, 0.01, round(float(rng.gamma(1, 3000)), 2), 1e10]))
    income = []
    for k in range(int(rng.choice([0, 1, 12, 40]))):
        back = int(rng.integers(0, 30))
        y, m = divmod(as_of.year * 12 + as_of.month - 1 - back, 12)
        income.append({"person_id": f"p{int(rng.integers(0, n))}", "month": f"{y:04d}-{m + 1:02d}",
                       "source": INCOME_SOURCES[k % len(INCOME_SOURCES)] if k < 7 else "other", "amount": money()})
    income = list({(r["person_id"], r["month"], r["source"]): r for r in income}.values())
    claims = []
    for k in range(int(rng.choice([0, 1, 5, 30]))):
        setting = str(rng.choice(SETTINGS))
        parts = [round(money() / 4, 2) for _ in range(4)]
        claims.append({"claim_id": f"c{k}", "person_id": f"p{int(rng.integers(0, n))}",
                       "service_date": str(as_of - dt.timedelta(days=int(rng.integers(0, 800)))), "setting": setting,
                       "diagnosis_group": str(rng.choice(DIAGNOSIS_GROUPS)), "total_cost": round(sum(parts), 2),
                       "fund_paid": parts[0], "critical_illness_paid": parts[1], "assistance_paid": parts[2],
                       "out_of_pocket": parts[3],
                       "inpatient_days": int(rng.integers(0, 60)) if setting == "inpatient" else 0})
    assistance = []
    for _ in range(int(rng.choice([0, 1, 3]))):
        start = as_of - dt.timedelta(days=int(rng.integers(0, 900)))
        end = None if rng.random() < 0.5 else str(start + dt.timedelta(days=int(rng.integers(0, 900))))
        assistance.append({"program": str(rng.choice(PROGRAMS)), "start_date": str(start), "end_date": end,
                           "monthly_amount": money()})
    return {"as_of": str(as_of),
            "household": {"household_id": "HF", "town": str(rng.choice(TOWNS_DEFAULT)),
                          "hukou_type": str(rng.choice(HUKOU_TYPES)), "housing": str(rng.choice(HOUSING)),
                          "property_count": int(rng.integers(0, 10001)), "vehicle_count": int(rng.integers(0, 3)),
                          "financial_assets": money()},
            "members": members, "income": income, "claims": claims, "assistance": assistance}


def test_random_valid_bundles_always_score(client):
    rng = np.random.default_rng(2026)
    items = [random_bundle(rng) for _ in range(150)]
    r = client.post("/v1/score/batch", json={"items": items}, headers=auth("platform"))
    assert r.status_code == 200, r.text[:500]
    for i, res in enumerate(r.json()["results"]):
        assert "scores" in res, (i, res)
        s = res["scores"][0]
        assert 0 <= s["probability"] <= 1 and math.isfinite(s["base_value"])


def test_random_corruptions_are_4xx(client):
    rng = np.random.default_rng(7)
    junk = [None, -1, 1e309, "", "x" * 100, [], {}, True, "2026-02-30", "Na N", 10**30]
    for _ in range(150):
        b = random_bundle(rng)
        table = str(rng.choice(["household", "members", "claims", "income"]))
        target = b[table] if table == "household" else (b[table][0] if b[table] else b["household"])
        key = str(rng.choice(sorted(target)))
        target[key] = junk[int(rng.integers(0, len(junk)))]
        r = client.post("/v1/score", content=json.dumps(b),  # Infinity goes out as the JSON extension it is
                        headers={**auth("platform"), "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (key, target[key], r.text[:300])
