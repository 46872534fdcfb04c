"""Behavioural tests of the trained champion: direction, invariance, minimum functionality.

The households are hand-made twins (one thing differs) scored through the API's own path, so what
is tested is what the platform sees.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from features.build import build_features
from features.tables import tables_from_bundle

pytestmark = pytest.mark.slow

AS_OF = "2026-06-30"


def household(*, income=2600.0, assets=20000.0, property_count=1, vehicles=0, members=2) -> dict:
    people = [{"person_id": "P1", "relation": "head", "sex": "M", "birth_date": "1962-05-01",
               "employment": "farmer", "disability_grade": 0},
              {"person_id": "P2", "relation": "spouse", "sex": "F", "birth_date": "1964-09-12",
               "employment": "farmer", "disability_grade": 0}][:members]
    months = [f"2025-{m:02d}" for m in range(7, 13)] + [f"2026-{m:02d}" for m in range(1, 7)]
    return {
        "as_of": AS_OF,
        "household": {"household_id": "H1", "town": "leyu", "hukou_type": "rural", "housing": "owned",
                      "property_count": property_count, "vehicle_count": vehicles, "financial_assets": assets},
        "members": people,
        "income": [{"person_id": "P1", "month": m, "source": "agriculture", "amount": income} for m in months],
        "claims": [{"claim_id": "c0", "person_id": "P2", "service_date": "2026-02-03", "setting": "outpatient",
                    "diagnosis_group": "respiratory", "total_cost": 300, "fund_paid": 150, "critical_illness_paid": 0,
                    "assistance_paid": 0, "out_of_pocket": 150, "inpatient_days": 0}],
        "assistance": [],
    }


def with_illness(b: dict, scale: float = 1.0) -> dict:
    """A cancer: an inpatient stay and months of special outpatient care, cost scaled by ``scale``."""
    b = copy.deepcopy(b)
    def claim(i, date, setting, cost, oop, days):
        fund = round(cost - oop, 2)
        return {"claim_id": f"k{i}", "person_id": "P1", "service_date": date, "setting": setting,
                "diagnosis_group": "cancer", "total_cost": round(cost, 2), "fund_paid": fund,
                "critical_illness_paid": 0, "assistance_paid": 0, "out_of_pocket": round(oop, 2),
                "inpatient_days": days}
    b["claims"] += [claim(1, "2025-11-10", "inpatient", 90000 * scale, 30000 * scale, 15)]
    b["claims"] += [claim(2 + m, f"2026-0{m}-15", "special_outpatient", 6000 * scale, 2000 * scale, 0)
                    for m in range(1, 7)]
    return b


def score(model, policy, b: dict) -> tuple[float, dict]:
    feats = build_features(tables_from_bundle(b), b["as_of"], policy)
    row = model.score_rows(feats)[0]
    return row["probability"], row


def test_a_serious_illness_raises_risk_above_the_healthy_twin(champion, policy):
    healthy, _ = score(champion, policy, household())
    ill, row = score(champion, policy, with_illness(household()))
    assert ill > healthy
    assert row["reasons"][0]["feature"] in {"oop_3m", "oop_6m", "oop_12m", "oop_12m_per_capita", "oop_12m_to_income",
                                            "oop_to_capacity", "income_after_oop_pc_month", "after_oop_to_dibao",
                                            "oop_12m_max_person", "total_cost_12m", "max_stay_oop_12m",
                                            "serious_claims_12m", "special_outpatient_claims_12m",
                                            "inpatient_days_12m", "n_members_serious_dx_12m"}


def test_a_wealthy_household_with_the_same_illness_scores_below_a_poor_one(champion, policy):
    poor, _ = score(champion, policy, with_illness(household(income=1500, assets=3000)))
    wealthy = household(income=20000, assets=900000, property_count=3, vehicles=2)
    rich, _ = score(champion, policy, with_illness(wealthy))
    assert rich < poor


def test_risk_never_falls_as_medical_cost_grows(champion, policy):
    ps = [score(champion, policy, with_illness(household(), scale))[0] for scale in np.linspace(0.05, 4, 25)]
    assert all(b >= a - 1e-12 for a, b in zip(ps, ps[1:], strict=False)), ps


def test_risk_never_rises_with_income(champion, policy):
    ps = [score(champion, policy, with_illness(household(income=inc)))[0] for inc in np.linspace(500, 30000, 25)]
    assert all(b <= a + 1e-12 for a, b in zip(ps, ps[1:], strict=False)), ps


def test_renaming_the_town_or_the_persons_does_not_move_the_score(champion, policy):
    b = with_illness(household())
    base, _ = score(champion, policy, b)
    other = copy.deepcopy(b)
    other["household"]["town"] = "changyinsha"
    other["household"]["household_id"] = "HX"
    for table in ("members", "income", "claims"):
        for row in other[table]:
            row["person_id"] = row["person_id"].replace("P", "Q")
    assert score(champion, policy, other)[0] == base


def test_the_model_beats_the_best_rule_at_the_same_capacity(trained):
    cmp = trained.comparison
    best_rule = cmp.drop(index="model")["recall"].max()
    assert cmp.loc["model", "recall"] > best_rule, cmp


def test_monotone_constraints_follow_the_schema(champion):
    constraints = champion.booster.dump_model()["monotone_constraints"]
    assert constraints == champion.schema.monotone_constraints
    assert champion.schema.monotone_constraints[champion.schema.ids.index("oop_12m")] == 1
    assert champion.schema.monotone_constraints[champion.schema.ids.index("income_12m_per_capita_month")] == -1


def test_explanations_are_exact_on_the_champion(champion, city_tables, policy):
    shap = pytest.importorskip("shap")
    feats = build_features(city_tables, "2026-03-31", policy).head(200)
    x = champion.schema.validate(feats)
    contrib = champion.booster.predict(x, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), champion.booster.predict(x, raw_score=True), atol=1e-9)
    sv = shap.TreeExplainer(champion.booster).shap_values(x)
    sv = sv[1] if isinstance(sv, list) else sv
    np.testing.assert_allclose(sv, contrib[:, :-1], atol=1e-9)
