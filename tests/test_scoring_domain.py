"""The scoring domain (domain/scoring.py): many households scored as matrices give each household
exactly what scoring it alone gives; bundles that share a household id or reuse person ids do not
mix; a household outside a model's schema is refused on its own; the answer is rendered once and
the audit keeps those very bytes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import orjson
import pytest

from domain.advice import Advisor
from domain.loader import LoadedModel
from domain.scoring import Scored, Scorer, Unscorable
from features.build import build_features, feature_matrix
from features.tables import bundle_from_tables, tables_from_bundle, tables_from_bundles
from models.schema import FeatureSchema

pytestmark = pytest.mark.slow
AS_OF = "2026-03-31"


@pytest.fixture(scope="module")
def scorer(risk_champions, policy):
    models = [LoadedModel(name=r, version="1", aliases=("champion",), model=m, uri=f"models:/{r}/1")
              for r, m in risk_champions.items()]
    return Scorer(models=models, policy=policy, advisor=Advisor.load(policy=policy))


@pytest.fixture(scope="module")
def bundles(city_tables):
    ids = list(city_tables.households["household_id"].iloc[:40])
    # JSON values, as the API receives them
    return [json.loads(json.dumps(bundle_from_tables(city_tables, h, AS_OF))) for h in ids]


def _without_ids(scored: Scored) -> dict:
    """The answer and the audit's scores, less what differs by design (the request id)."""
    response = {k: v for k, v in scored.response.items() if k != "request_id"}
    return {"response": response, "scores": scored.scores}


def test_many_bundles_score_as_each_alone(scorer, bundles):
    together = scorer.score_many(bundles)
    for bundle, many in zip(bundles, together, strict=True):
        alone = scorer.score(bundle)
        assert isinstance(alone, Scored) and isinstance(many, Scored)
        a, b = _without_ids(alone), _without_ids(many)
        assert a["response"] == b["response"]  # probabilities, reasons, lists, eligibility, warm list
        for sa, sb in zip(a["scores"], b["scores"], strict=True):
            assert sa["features"] == sb["features"]
            np.testing.assert_allclose(list(sa["contributions"].values()), list(sb["contributions"].values()),
                                       rtol=0, atol=1e-12)
            assert abs(sa["raw_score"] - sb["raw_score"]) <= 1e-12


def test_features_of_many_bundles_are_each_bundles_own(bundles, policy):
    _, x = feature_matrix(tables_from_bundles(bundles), AS_OF, policy)
    for i, bundle in enumerate(bundles):
        alone = build_features(tables_from_bundle(bundle), AS_OF, policy)
        np.testing.assert_array_equal(x[i], alone.to_numpy()[0])


def test_the_same_household_twice_and_reused_person_ids_do_not_mix(scorer, bundles, policy):
    a, b = bundles[0], bundles[1]
    # b renamed to a's household id, its persons renamed to a's person ids (P-ids reused across bundles)
    rename = {m["person_id"]: f"P{i:04d}" for i, m in enumerate(b["members"])}
    a_rename = {m["person_id"]: f"P{i:04d}" for i, m in enumerate(a["members"])}

    def renamed(bundle: dict, ids: dict, household_id: str) -> dict:
        out = json.loads(json.dumps(bundle))
        out["household"]["household_id"] = household_id
        for table in ("members", "income", "claims"):
            for row in out[table]:
                row["person_id"] = ids[row["person_id"]]
        for row in [*out["members"], *out["assistance"]]:
            if row.get("household_id") is not None:
                row["household_id"] = household_id
        return out

    hid = a["household"]["household_id"]
    first, second = renamed(a, a_rename, hid), renamed(b, rename, hid)
    later = {**first, "as_of": "2026-06-30"}
    results = scorer.score_many([first, second, later])
    singles = [scorer.score(x) for x in (first, second, later)]
    for many, alone in zip(results, singles, strict=True):
        assert _without_ids(many)["response"] == _without_ids(alone)["response"]
    assert results[0].response["as_of"] == AS_OF and results[2].response["as_of"] == "2026-06-30"
    assert len({r.request_id for r in results}) == 3


def test_a_household_outside_a_models_schema_is_refused_alone(scorer, bundles, risk_champions, policy):
    # a model whose schema allows at most 2 members: households with more fall outside it
    illness = risk_champions["illness_poverty"]
    entries = tuple(dataclasses.replace(e, maximum=2.0) if e.id == "n_members" else e
                    for e in illness.schema.entries)
    narrow = dataclasses.replace(illness, schema=FeatureSchema(entries, risk=illness.schema.risk))
    narrow_scorer = Scorer(models=[LoadedModel("illness_poverty", "1", (), narrow, "models:/illness_poverty/1")],
                           policy=policy)
    sizes = [len(b["members"]) for b in bundles]
    assert min(sizes) <= 2 < max(sizes)
    results = narrow_scorer.score_many(bundles)
    for size, result in zip(sizes, results, strict=True):
        if size > 2:
            assert isinstance(result, Unscorable)
            assert "'n_members' above its maximum 2.0" in result.message and "illness_poverty" in result.message
        else:
            assert isinstance(result, Scored)


def test_the_answer_is_rendered_once_and_the_audit_keeps_those_bytes(scorer, bundles):
    scored = scorer.score(bundles[3])
    assert scored.body == orjson.dumps(scored.response)
    assert scored.entry.response == scored.body.decode()
    assert json.loads(scored.entry.request) == bundles[3]
    assert json.loads(scored.entry.scores) == scored.scores
    assert scored.entry.request_id == scored.response["request_id"] == scored.request_id
    assert scored.entry.flagged == any(s["flagged"] for s in scored.response["scores"])
    # every score: the contract's additivity, base value + contributions = raw score
    for s in scored.scores:
        assert abs(s["base_value"] + sum(s["contributions"].values()) - s["raw_score"]) < 1e-9


def test_scores_equal_the_models_own_batch_path(scorer, bundles, city_tables, policy, risk_champions):
    """The API's matrix path and RiskModel.predict_frame (the nightly batch's) agree."""
    feats = build_features(city_tables, AS_OF, policy)
    for result, bundle in zip(scorer.score_many(bundles), bundles, strict=True):
        hid = bundle["household"]["household_id"]
        for s in result.response["scores"]:
            expected = risk_champions[s["risk"]].predict_frame(feats.loc[[hid]])
            np.testing.assert_allclose(s["probability"], expected["probability"].iloc[0], rtol=1e-12)
            assert s["flagged"] == bool(expected["flagged"].iloc[0])
            assert s["band"] == expected["band"].iloc[0]
