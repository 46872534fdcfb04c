"""One household gets the same features and the same score through the batch path (whole tables)
and through the API path (its bundle over HTTP)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.tables import bundle_from_tables, tables_from_bundle
from tests.conftest import auth

pytestmark = pytest.mark.slow
AS_OF = "2026-03-31"


def _sample(city_tables, n=25):
    claims_hh = city_tables.claims.merge(city_tables.persons[["person_id", "household_id"]])["household_id"]
    ill = list(pd.unique(claims_hh.loc[city_tables.claims["setting"] == "inpatient"]))[:n]
    rest = list(city_tables.households["household_id"].iloc[:n])
    return ill + [h for h in rest if h not in ill]


def test_features_batch_equal_bundle(city_tables, policy):
    batch = build_features(city_tables, AS_OF, policy)
    for hid in _sample(city_tables):
        single = build_features(tables_from_bundle(bundle_from_tables(city_tables, hid, AS_OF)), AS_OF, policy)
        pd.testing.assert_frame_equal(single, batch.loc[[hid]], check_exact=False, rtol=1e-12, atol=1e-9)


def test_scores_batch_equal_api(city_tables, policy, champion, client):
    batch = champion.predict_frame(build_features(city_tables, AS_OF, policy))
    hids = _sample(city_tables, 10)
    items = [bundle_from_tables(city_tables, h, AS_OF) for h in hids]
    r = client.post("/v1/score/batch", json={"items": items}, headers=auth("platform"))
    assert r.status_code == 200, r.text
    for hid, res in zip(hids, r.json()["results"], strict=True):
        assert res["household_id"] == hid, res
        np.testing.assert_allclose(res["scores"][0]["probability"], batch.loc[hid, "probability"], rtol=1e-12)
