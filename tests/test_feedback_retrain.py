"""Feedback becomes labels on the next retrain: visits recorded through the API join the platform's
verifications, so a household nobody had verified gets its label from the caseworker's finding."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from serving.audit import AuditRecord, AuditStore
from serving.feedback import FeedbackStore, feedback_verifications
from training.dataset import build_snapshots, data_span, plan_split
from training.feedback import with_feedback


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
