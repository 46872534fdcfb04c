"""Who entered and who left each list between two nightly runs (batch/list_changes.py): on the
synthetic city, runs a few months apart and a run on altered rows give exactly the set differences
of the runs' memberships; a first run says it has no previous run; the previous run is found among
the sibling folders, or named, or refused when the folder holds no run."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch import run_batch
from batch.list_changes import LIST_CHANGES_FILE, find_previous, memberships
from domain.loader import load_served
from features.city import CityTables
from features.tables import make_tables
from policy.lists import load_lists
from relief_risk.batch_commands import batch_lines

pytestmark = pytest.mark.slow

EARLIER, LATER = "2026-07-31", "2026-10-31"


@pytest.fixture(scope="module")
def served(trained):
    models, _ = load_served()
    return models


@pytest.fixture(scope="module")
def runs(served, city_dir, policy, tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    city = CityTables.read(city_dir, policy=policy)
    first = run_batch(city, root / EARLIER, served, policy, as_of=EARLIER, explain="none", progress=False)
    second = run_batch(city, root / LATER, served, policy, as_of=LATER, explain="none", progress=False)
    return {"root": root, "first": first, "second": second}


def pairs(folder) -> set[tuple[str, str]]:
    scores = pq.read_table(folder / "scores.parquet", columns=["household_id", "lists"]).to_pylist()
    return {(r["household_id"], x) for r in scores for x in r["lists"]}


def changed(folder, change: str) -> set[tuple[str, str]]:
    frame = pd.read_parquet(folder / LIST_CHANGES_FILE)
    rows = frame[frame["change"] == change]
    return set(zip(rows["household_id"], rows["list"], strict=True))


def test_a_first_run_has_no_previous_run_and_counts_nobody(runs):
    first = runs["first"]
    assert first.previous is None and first.list_changes is None
    assert not (runs["root"] / EARLIER / LIST_CHANGES_FILE).exists() and "list_changes" not in first.files
    assert json.loads((runs["root"] / EARLIER / "summary.json").read_text())["previous"] is None
    assert "no previous run" in "\n".join(batch_lines(first))


def test_entered_and_left_are_the_set_differences_of_the_two_runs(runs):
    before, now = pairs(runs["root"] / EARLIER), pairs(runs["root"] / LATER)
    out = runs["root"] / LATER
    entered, left = changed(out, "entered"), changed(out, "left")
    assert entered == now - before and left == before - now
    assert entered and left  # three months apart, the synthetic city moves both ways
    second = runs["second"]
    assert second.previous == {"out_dir": str((runs["root"] / EARLIER).resolve()), "as_of": EARLIER}
    book_order = [d.id for d in load_lists().at(LATER)]
    assert list(second.list_changes) == book_order
    for list_id, counts in second.list_changes.items():
        assert counts == {"entered": sum(1 for _, x in entered if x == list_id),
                          "left": sum(1 for _, x in left if x == list_id)}
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert written["list_changes"] == second.list_changes and written["previous"] == second.previous
    line = next(x for x in batch_lines(second) if x.startswith("list changes"))
    c = second.list_changes["low_income_margin"]
    assert f"since the run as of {EARLIER}" in line and f"low_income_margin +{c['entered']:,} -{c['left']:,}" in line


def test_the_file_reads_in_chinese_and_in_book_order(runs):
    frame = pd.read_parquet(runs["root"] / LATER / LIST_CHANGES_FILE)
    assert list(frame.columns) == ["household_id", "town", "list", "label", "change", "change_zh"]
    labels = {d.id: d.label_zh for d in load_lists().definitions}
    assert (frame["label"] == frame["list"].map(labels)).all()
    assert set(zip(frame["change"], frame["change_zh"], strict=True)) == {("entered", "新进入"), ("left", "退出")}
    order = {d.id: k for k, d in enumerate(load_lists().at(LATER))}
    assert frame["list"].map(order).is_monotonic_increasing
    towns = memberships(runs["root"] / LATER).drop_duplicates("household_id").set_index("household_id")["town"]
    came = frame[frame["change"] == "entered"]
    assert (came["town"].to_numpy() == towns.loc[came["household_id"]].to_numpy()).all()


def test_altered_rows_and_a_named_previous_run(runs, served, city_tables, policy, tmp_path):
    # a later night: 500 households gone from the data, and everybody's income halved
    gone = set(city_tables.households["household_id"].iloc[:500])
    persons = city_tables.persons[~city_tables.persons["household_id"].isin(gone)]
    kept = set(persons["person_id"])
    income = city_tables.income[city_tables.income["person_id"].isin(kept)].assign(
        amount=lambda f: f["amount"] / 2)
    tables = make_tables(households=city_tables.households[~city_tables.households["household_id"].isin(gone)],
                         persons=persons, income=income.drop(columns=["month_index"], errors="ignore"),
                         claims=city_tables.claims[city_tables.claims["person_id"].isin(kept)],
                         assistance=city_tables.assistance[~city_tables.assistance["household_id"].isin(gone)],
                         verifications=city_tables.verifications.iloc[0:0])
    out = tmp_path / "altered"
    summary = run_batch(tables, out, served, policy, as_of=LATER, explain="none", progress=False,
                        previous=runs["root"] / LATER)
    before, now = pairs(runs["root"] / LATER), pairs(out)
    assert changed(out, "entered") == now - before and changed(out, "left") == before - now
    assert {h for h, _ in before if h in gone} <= {h for h, _ in changed(out, "left")}
    assert summary.list_changes["low_income_margin"]["entered"] > 0
    # none: no comparison, and no stale file left from an earlier run in the same folder
    again = run_batch(tables, out, served, policy, as_of=LATER, explain="none", progress=False, previous="none")
    assert again.previous is None and not (out / LIST_CHANGES_FILE).exists()


def test_finding_and_refusing_the_previous_run(runs, tmp_path):
    import datetime as dt

    root = runs["root"]
    assert find_previous(root / "2026-11-30", dt.date(2026, 11, 30)) == (root / LATER).resolve()
    assert find_previous(root / LATER, dt.date(2026, 10, 31)) == (root / EARLIER).resolve()
    assert find_previous(root / EARLIER, dt.date(2026, 7, 31)) is None
    from batch.list_changes import resolve_previous

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"--previous .*empty: not a batch run's folder"):
        resolve_previous(tmp_path / "empty", tmp_path / "out", dt.date(2026, 10, 31))
