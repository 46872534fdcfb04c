"""Feedback becomes labels on the next retrain: visits recorded through the API join the platform's
verifications, so a household nobody had verified gets its label from the caseworker's finding."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from store.audit import AuditRecord, AuditStore
from store.feedback import FeedbackStore, feedback_verifications
from training.dataset import build_snapshots, data_span, plan_split
from training.feedback import FeedbackLabels, with_feedback


def _prompt(household_id: str, as_of: str, request_id: str) -> AuditRecord:
    return AuditRecord(request_id=request_id, created_at=dt.datetime.now(dt.UTC), kind="score",
                       household_id=household_id, as_of=as_of, models=[{"name": "illness_poverty", "version": "1"}],
                       request={}, scores=[{"risk": "illness_poverty", "flagged": True}], response={})


@pytest.fixture()
def feedback_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore(url)
    store.create()
    yield url, FeedbackStore(store.engine)
    store.dispose()


def test_feedback_labels_a_household_nobody_had_verified(city_tables, policy, feedback_url):
    url, fb = feedback_url
    split = plan_split(*data_span(city_tables))
    t = split.validation
    visited = set(city_tables.verifications["household_id"])
    unseen = [h for h in city_tables.households["household_id"] if h not in visited][:3]
    visit_day = (t + pd.Timedelta(days=30)).date()
    for i, h in enumerate(unseen):
        fb.add(_prompt(h, str(t.date()), f"req{i}"), visit_day, ["illness_poverty"])
    fb.add(_prompt("NOT-IN-THIS-CITY", str(t.date()), "req-x"), visit_day, ["illness_poverty"])

    before = build_snapshots(city_tables, [t], policy, "illness_poverty", progress=False)
    merged = with_feedback(city_tables, feedback_verifications(url))
    after = build_snapshots(merged.tables, [t], policy, "illness_poverty", progress=False)

    assert merged.feedback_rows == 4 and merged.added == 3 and merged.unknown_households == 1
    assert before.loc[unseen, "label"].tolist() == [0, 0, 0]
    assert after.loc[unseen, "label"].tolist() == [1, 1, 1]
    others = after.index.difference(unseen)
    assert (after.loc[others, "label"] == before.loc[others, "label"]).all()  # nothing else moved
    # merging the same feedback twice adds nothing
    assert with_feedback(merged.tables, feedback_verifications(url)).added == 0


def test_no_feedback_leaves_the_tables_alone(city_tables, feedback_url):
    url, _ = feedback_url
    merged = with_feedback(city_tables, feedback_verifications(url))
    assert merged.tables is city_tables and merged.added == 0


@pytest.mark.slow
def test_a_retrain_picks_the_feedback_up(city_dir, mlflow_uri, city_tables, policy, feedback_url):
    """The training stage, pointed at the service's store, trains on the feedback and says so in the run."""
    import mlflow

    from training.pipeline import TrainConfig, prepare, train

    url, fb = feedback_url
    t = plan_split(*data_span(city_tables)).train[0]
    visited = set(city_tables.verifications["household_id"])
    unseen = [h for h in city_tables.households["household_id"] if h not in visited][:5]
    for i, h in enumerate(unseen):
        fb.add(_prompt(h, str(t.date()), f"rq{i}"), (t + pd.Timedelta(days=20)).date(), ["illness_poverty"])
    config = TrainConfig(data_dir=str(city_dir), capacity=0.03, num_boost_round=30, alias=None, progress=False,
                         feedback=FeedbackLabels(feedback_verifications(url), source=url))
    prepared = prepare(config)
    assert prepared.feedback == {"feedback_rows": 5, "feedback_added": 5, "feedback_unknown_households": 0}
    first = prepared.snaps.loc[prepared.snaps["as_of"] == t]
    assert first.loc[unseen, "label"].tolist() == [1] * 5
    result = train(config, prepared)
    params = mlflow.get_run(result.run_id).data.params
    assert params["feedback_added"] == "5" and params["feedback_rows"] == "5"


def test_prepared_data_must_match_the_feedback_asked_for(city_dir, feedback_url):
    """Snapshots prepared without feedback are not silently reused for a run that asked for it."""
    from dataclasses import replace

    from training.pipeline import TrainConfig, prepare, train

    url, _ = feedback_url
    config = TrainConfig(data_dir=str(city_dir), num_boost_round=5, alias=None, progress=False)
    prepared = prepare(config)
    with pytest.raises(ValueError, match="feedback"):
        train(replace(config, feedback=FeedbackLabels(feedback_verifications(url), source=url)), prepared)
