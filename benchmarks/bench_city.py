"""Whole-city benchmark: reading the raw tables, the heaviest aggregations of the feature path in four
engines, and the nightly batch (``batch.run_batch``) at several chunk sizes.

One script of some 520 lines on purpose: it runs itself again as a child process for every
measurement (``--child``), so each engine's measurement lives in the file that launches it.

Not a test: prints tables and writes ``benchmarks/results/city.json`` (merged with earlier runs for
other city sizes). Every measurement runs in its own child process, so each starts from the same
memory state and reports its own peak RSS (``ru_maxrss``); wall and CPU seconds (CPU counts every
thread of the child: DuckDB, Polars and arrow use both cores, numpy one).

    relief-risk generate --households 500000 --out /tmp/city500k --seed 3
    MLFLOW_TRACKING_URI=sqlite:////tmp/mlf/mlflow.db python benchmarks/bench_city.py --data /tmp/city500k

Sections:

- read: ``features.io.read_tables`` (pandas, what ``relief-risk score`` uses) against
  ``CityTables.read`` (arrow + numpy, what the batch uses), both with the boundary checks; and the
  step that dominates the latter, income rows keyed by household and sorted by it, in arrow+numpy,
  DuckDB and Polars (same permutation checked).
- aggregate: 12-month income per household; out-of-pocket sums per household over 3/6/12 months;
  the largest 12-month out-of-pocket sum of one member; the largest single inpatient out-of-pocket
  in 12 months. numpy = ``build_features`` on the whole city, its relevant part (``Known`` with its
  key lookups, ``income_features``' sum, ``spending_features``) and bare ``np.bincount`` on the
  store's precomputed household codes; pandas groupby; DuckDB SQL over the parquet files and over
  arrow tables in memory; Polars lazy over the files and over frames in memory. Every engine's
  per-household results are compared with numpy's.
- batch: ``run_batch`` with the registered champion model(s) at each ``--chunks`` size (0 = the whole
  city at once), then ``write_worklist`` once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "city.json"
AGGREGATES = ("income_12m", "oop_3m", "oop_6m", "oop_12m", "oop_12m_max_person", "max_stay_oop_12m")


# ---- measuring in a child process ------------------------------------------------------------------
class Stopwatch:
    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}

    def __call__(self, label: str, f: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        out = f()
        self.figures[label] = {"seconds": round(time.perf_counter() - t, 2),
                               "cpu_seconds": round(time.process_time() - c, 2)}
        return out


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs this script as ``--child ...`` and returns the JSON it prints last."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-4000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["child_wall_seconds"] = round(time.perf_counter() - t, 1)
    return out


def _window(data: str, as_of: str | None) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.known import months_before

    if as_of is None:  # the batch's default: the last day of the latest income month
        year, month = map(int, pc.max(pq.read_table(f"{data}/income.parquet", columns=["month"])["month"]).as_py()
                          .split("-"))
        as_of = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).isoformat()
    day = dt.date.fromisoformat(as_of)
    m = day.year * 12 + day.month - 1
    return {"as_of": as_of, "month": m, "first_month": f"{(m - 11) // 12:04d}-{(m - 11) % 12 + 1:02d}",
            "last_month": f"{m // 12:04d}-{m % 12 + 1:02d}",
            **{f"after_{k}m": months_before(day, k).isoformat() for k in (3, 6, 12)}}


# ---- children: reading ----------------------------------------------------------------------------
def child_read(engine: str, data: str) -> dict[str, Any]:
    from features.io import load_policy_book

    policy = load_policy_book()
    sw = Stopwatch()
    if engine == "pandas":
        from features.io import read_tables

        tables = sw("read", lambda: read_tables(data, policy=policy))
        rows = {name: len(getattr(tables, name)) for name in ("households", "persons", "income", "claims")}
    else:
        from features.city import CityTables

        city = sw("read", lambda: CityTables.read(data, policy=policy))
        rows = city.rows()
    return {**sw.figures["read"], "peak_rss_mb": _peak_mb(), "rows": rows}


def child_join(engine: str, data: str, out: str) -> dict[str, Any]:
    """Income rows keyed by their household's code and sorted by it (stable): what the store needs."""
    import numpy as np

    sw = Stopwatch()
    if engine == "arrow":
        from features._city_columns import _arrow_strings, _lookup, _order_by, _read_raw

        def run() -> tuple[np.ndarray, np.ndarray]:
            households, persons = _read_raw(data, "households"), _read_raw(data, "persons")
            income = _read_raw(data, "income")
            keys = _arrow_strings(households["household_id"])  # sorted in these files
            p_hh = _lookup(persons["household_id"], keys)
            hh = np.append(p_hh, -1)[_lookup(income.pop("person_id"), _arrow_strings(persons["person_id"]))]
            order, hh_sorted = _order_by(hh)
            return (np.arange(len(hh)) if order is None else order), hh_sorted
    elif engine == "duckdb":
        import duckdb

        def run() -> tuple[np.ndarray, np.ndarray]:
            con = duckdb.connect()
            t = con.sql(f"""
                with h as (select household_id, file_row_number as hh
                           from read_parquet('{data}/households.parquet', file_row_number = true)),
                     p as (select person_id, hh from read_parquet('{data}/persons.parquet') join h using (household_id))
                select i.file_row_number as row, p.hh
                from read_parquet('{data}/income.parquet', file_row_number = true) i join p using (person_id)
                order by p.hh, i.file_row_number""").to_arrow_table()
            return t.column("row").to_numpy(), t.column("hh").to_numpy()
    else:
        import polars as pl

        def run() -> tuple[np.ndarray, np.ndarray]:
            h = pl.scan_parquet(f"{data}/households.parquet").select("household_id").with_row_index("hh")
            p = (pl.scan_parquet(f"{data}/persons.parquet").select("person_id", "household_id")
                 .join(h, on="household_id"))
            frame = (pl.scan_parquet(f"{data}/income.parquet").select("person_id").with_row_index("row")
                     .join(p.select("person_id", "hh"), on="person_id").sort(["hh", "row"]).collect())
            return frame["row"].to_numpy(), frame["hh"].to_numpy()
    rows, hh = sw("join_sort", run)
    np.save(out, np.asarray(rows, dtype=np.int64)[:: max(1, len(rows) // 1_000_000)])  # a sample, to compare
    return {**sw.figures["join_sort"], "peak_rss_mb": _peak_mb(), "rows": int(len(rows)),
            "households_seen": int(len(np.unique(hh)))}


# ---- children: aggregations -----------------------------------------------------------------------
def _frame(ids: Any, values: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame({"household_id": ids, **{k: values[k] for k in AGGREGATES}})


def child_numpy(data: str, w: dict[str, Any], out: str) -> dict[str, Any]:
    import numpy as np

    from features.build import build_features
    from features.city import CityTables
    from features.io import load_policy_book
    from features.known import Known, sum_by
    from features.spending import spending_features

    policy = load_policy_book()
    sw = Stopwatch()
    city = sw("load", lambda: CityTables.read(data, check=False))
    tables = city.slice(0, city.n)
    day = dt.date.fromisoformat(w["as_of"])
    features = sw("build_features", lambda: build_features(tables, day, policy))

    def relevant() -> dict[str, Any]:
        known = Known(tables, day)
        rows = known.income(known.month - 11, ("amount",))
        out = {"income_12m": sum_by(rows["hh"], rows["amount"], known.n)}
        return out | spending_features(known, np.ones(known.n))
    part = sw("relevant_part", relevant)

    def bare() -> dict[str, Any]:
        """np.bincount on the store's household codes: the aggregation without any key lookup."""
        n, parts = city.n, city._parts
        persons = parts["persons"]
        born = persons.columns["birth_date"] <= np.datetime64(day, "ns")
        person_hh = np.repeat(np.arange(n), np.diff(persons.offsets))
        inc = parts["income"]
        month = inc.month_index[inc.columns["month"].codes]
        keep = (month >= w["month"] - 11) & (month <= w["month"]) & born[inc.key_codes]
        income_hh = np.repeat(np.arange(n), np.diff(inc.offsets))
        out = {"income_12m": np.bincount(income_hh[keep], inc.columns["amount"][keep], n)}
        cl = parts["claims"]
        d = cl.columns["service_date"]
        keep = (d > np.datetime64(w["after_12m"], "ns")) & (d <= np.datetime64(day, "ns")) & born[cl.key_codes]
        hh = np.repeat(np.arange(n), np.diff(cl.offsets))[keep]
        oop, d, person = cl.columns["out_of_pocket"][keep], d[keep], cl.key_codes[keep]
        out["oop_12m"] = np.bincount(hh, oop, n)
        for k in (3, 6):
            out[f"oop_{k}m"] = np.bincount(hh, np.where(d > np.datetime64(w[f"after_{k}m"], "ns"), oop, 0.0), n)
        per_person = np.bincount(person, oop, len(person_hh))
        has = np.bincount(person, minlength=len(person_hh)) > 0
        top = np.zeros(n)
        np.maximum.at(top, person_hh[has], per_person[has])
        out["oop_12m_max_person"] = top
        setting = cl.columns["setting"]
        inpatient = np.array([v == "inpatient" if isinstance(v, str) else False
                              for v in setting.values])[setting.codes[keep]]
        stay = np.zeros(n)
        np.maximum.at(stay, hh[inpatient], oop[inpatient])
        out["max_stay_oop_12m"] = stay
        return out
    bare_out = sw("bincount_on_store_codes", bare)
    _frame(city.household_ids, part).to_parquet(out)
    # the features agree with their relevant part (build_features is what the batch runs)
    for k in AGGREGATES[1:]:
        np.testing.assert_allclose(features[k].to_numpy(), part[k], rtol=1e-12, atol=1e-9)
    for k in AGGREGATES:
        np.testing.assert_allclose(bare_out[k], part[k], rtol=1e-9, atol=1e-6)
    return {**sw.figures, "peak_rss_mb": _peak_mb()}


def child_pandas(data: str, w: dict[str, Any], out: str) -> dict[str, Any]:
    import pandas as pd

    sw = Stopwatch()

    def load() -> dict[str, pd.DataFrame]:
        return {"households": pd.read_parquet(f"{data}/households.parquet", columns=["household_id"]),
                "persons": pd.read_parquet(f"{data}/persons.parquet",
                                           columns=["person_id", "household_id", "birth_date"]),
                "income": pd.read_parquet(f"{data}/income.parquet", columns=["person_id", "month", "amount"]),
                "claims": pd.read_parquet(f"{data}/claims.parquet",
                                          columns=["person_id", "service_date", "setting", "out_of_pocket"])}
    f = sw("load", load)

    def query() -> pd.DataFrame:
        t = pd.Timestamp(w["as_of"])
        p = f["persons"].loc[(f["persons"]["birth_date"] <= t)
                             & f["persons"]["household_id"].isin(f["households"]["household_id"]),
                             ["person_id", "household_id"]]
        inc = f["income"]
        inc = inc.loc[(inc["month"] >= w["first_month"]) & (inc["month"] <= w["last_month"])].merge(p, on="person_id")
        c = f["claims"]
        c = c.loc[(c["service_date"] > pd.Timestamp(w["after_12m"])) & (c["service_date"] <= t)]
        c = c.merge(p, on="person_id")
        by = c.groupby("household_id")["out_of_pocket"]
        since_6m = c["service_date"] > pd.Timestamp(w["after_6m"])
        since_3m = c["service_date"] > pd.Timestamp(w["after_3m"])
        res = pd.DataFrame({
            "income_12m": inc.groupby("household_id")["amount"].sum(),
            "oop_12m": by.sum(),
            "oop_6m": c.loc[since_6m].groupby("household_id")["out_of_pocket"].sum(),
            "oop_3m": c.loc[since_3m].groupby("household_id")["out_of_pocket"].sum(),
            "oop_12m_max_person": (c.groupby(["household_id", "person_id"])["out_of_pocket"].sum()
                                   .groupby(level=0).max()),
            "max_stay_oop_12m": c.loc[c["setting"] == "inpatient"].groupby("household_id")["out_of_pocket"].max(),
        })
        return res.reindex(f["households"]["household_id"].sort_values().to_numpy()).fillna(0.0)
    res = sw("query", query)
    _frame(res.index.to_numpy(), {k: res[k].to_numpy() for k in AGGREGATES}).to_parquet(out)
    return {**sw.figures, "peak_rss_mb": _peak_mb()}


def _sql(source: dict[str, str], w: dict[str, Any]) -> str:
    return f"""
    with p as (select person_id, household_id from {source['persons']}
               where birth_date <= TIMESTAMP '{w['as_of']}'
                 and household_id in (select household_id from {source['households']})),
         inc as (select household_id, sum(amount) as income_12m
                 from {source['income']} join p using (person_id)
                 where month between '{w['first_month']}' and '{w['last_month']}' group by household_id),
         c as (select household_id, person_id, service_date, setting, out_of_pocket as oop
               from {source['claims']} join p using (person_id)
               where service_date > TIMESTAMP '{w['after_12m']}' and service_date <= TIMESTAMP '{w['as_of']}'),
         cs as (select household_id, sum(oop) as oop_12m,
                       sum(oop) filter (where service_date > TIMESTAMP '{w['after_6m']}') as oop_6m,
                       sum(oop) filter (where service_date > TIMESTAMP '{w['after_3m']}') as oop_3m,
                       max(oop) filter (where setting = 'inpatient') as max_stay_oop_12m
                from c group by household_id),
         pp as (select household_id, max(s) as oop_12m_max_person
                from (select household_id, person_id, sum(oop) as s from c group by household_id, person_id)
                group by household_id)
    select h.household_id, coalesce(income_12m, 0) as income_12m, coalesce(oop_3m, 0) as oop_3m,
           coalesce(oop_6m, 0) as oop_6m, coalesce(oop_12m, 0) as oop_12m,
           coalesce(oop_12m_max_person, 0) as oop_12m_max_person, coalesce(max_stay_oop_12m, 0) as max_stay_oop_12m
    from {source['households']} h left join inc using (household_id) left join cs using (household_id)
         left join pp using (household_id)
    order by h.household_id"""


def child_duckdb(data: str, w: dict[str, Any], out: str) -> dict[str, Any]:
    import duckdb
    import pyarrow.parquet as pq

    sw = Stopwatch()
    files = {t: f"read_parquet('{data}/{t}.parquet')" for t in ("households", "persons", "income", "claims")}
    con = duckdb.connect()
    res = sw("files_end_to_end", lambda: con.sql(_sql(files, w)).df())
    tables = sw("load", lambda: {t: pq.read_table(f"{data}/{t}.parquet") for t in files})
    for t, table in tables.items():
        con.register(f"mem_{t}", table)
    res_mem = sw("query", lambda: con.sql(_sql({t: f"mem_{t}" for t in files}, w)).df())
    assert res.equals(res_mem) or all(abs(res[k] - res_mem[k]).max() < 1e-6 for k in AGGREGATES)
    res.to_parquet(out)
    threads = con.sql("select current_setting('threads')").fetchall()[0][0]
    return {**sw.figures, "peak_rss_mb": _peak_mb(), "threads": threads}


def child_polars(data: str, w: dict[str, Any], out: str) -> dict[str, Any]:
    import polars as pl

    sw = Stopwatch()
    as_of = dt.datetime.fromisoformat(w["as_of"])

    def plan(src: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
        h = src["households"].select("household_id")
        p = (src["persons"].filter(pl.col("birth_date") <= as_of).select("person_id", "household_id")
             .join(h, on="household_id", how="semi"))
        inc = (src["income"].filter(pl.col("month").is_between(pl.lit(w["first_month"]), pl.lit(w["last_month"])))
               .join(p, on="person_id").group_by("household_id").agg(pl.col("amount").sum().alias("income_12m")))
        c = (src["claims"].filter((pl.col("service_date") > dt.datetime.fromisoformat(w["after_12m"]))
                                  & (pl.col("service_date") <= as_of))
             .join(p, on="person_id").rename({"out_of_pocket": "oop"}))
        after_6m, after_3m = dt.datetime.fromisoformat(w["after_6m"]), dt.datetime.fromisoformat(w["after_3m"])
        cs = c.group_by("household_id").agg(
            pl.col("oop").sum().alias("oop_12m"),
            pl.col("oop").filter(pl.col("service_date") > after_6m).sum().alias("oop_6m"),
            pl.col("oop").filter(pl.col("service_date") > after_3m).sum().alias("oop_3m"),
            pl.col("oop").filter(pl.col("setting") == "inpatient").max().alias("max_stay_oop_12m"))
        pp = (c.group_by("household_id", "person_id").agg(pl.col("oop").sum().alias("s"))
              .group_by("household_id").agg(pl.col("s").max().alias("oop_12m_max_person")))
        return (h.join(inc, on="household_id", how="left").join(cs, on="household_id", how="left")
                .join(pp, on="household_id", how="left").fill_null(0.0).sort("household_id")
                .select("household_id", *AGGREGATES))
    names = ("households", "persons", "income", "claims")
    res = sw("files_end_to_end", lambda: plan({t: pl.scan_parquet(f"{data}/{t}.parquet") for t in names}).collect())
    frames = sw("load", lambda: {t: pl.read_parquet(f"{data}/{t}.parquet") for t in names})
    sw("query", lambda: plan({t: f.lazy() for t, f in frames.items()}).collect())
    res.to_pandas().to_parquet(out)
    return {**sw.figures, "peak_rss_mb": _peak_mb(), "threads": pl.thread_pool_size()}


# ---- children: the batch --------------------------------------------------------------------------
def child_batch(data: str, chunk: int, out: str, as_of: str | None, explain: str, record: bool) -> dict[str, Any]:
    from batch import run_batch
    from domain.loader import load_served
    from features.io import load_policy_book

    policy = load_policy_book()
    models, missing = load_served(warm=False)  # explainers built in the batch, as the command line does
    t, c = time.perf_counter(), time.process_time()
    summary = run_batch(data, out, models, policy, as_of=as_of, chunk=chunk, explain=explain,
                        record_url=f"sqlite:///{out}/audit.db" if record else None, progress=False)
    return {"seconds": round(time.perf_counter() - t, 2), "cpu_seconds": round(time.process_time() - c, 2),
            "stages": summary.seconds, "peak_rss_mb": summary.peak_rss_mb, "chunks": summary.chunks,
            "flagged": summary.flagged, "explained": summary.explained,
            "models": [f"{m['name']} v{m['version']}" for m in summary.models], "not_served": missing}


def child_worklist(data: str, batch_dir: str, out: str, capacity: float) -> dict[str, Any]:
    from batch import write_worklist
    from domain.advice import Advisor
    from features.city import CityTables
    from features.io import load_policy_book

    policy = load_policy_book()
    sw = Stopwatch()
    city = sw("read", lambda: CityTables.read(data, policy=policy))
    files = sw("worklist", lambda: write_worklist(batch_dir, city, out, capacity, Advisor.load(policy=policy),
                                                  progress=False))
    return {**sw.figures, "peak_rss_mb": _peak_mb(), "listed": sum(files.listed.values())}


def run_child(argv: list[str]) -> None:
    kind, rest = argv[0], argv[1:]
    if kind == "read":
        out = child_read(rest[0], rest[1])
    elif kind == "join":
        out = child_join(rest[0], rest[1], rest[2])
    elif kind == "agg":
        engine, data, window, path = rest
        out = {"numpy": child_numpy, "pandas": child_pandas, "duckdb": child_duckdb,
               "polars": child_polars}[engine](data, json.loads(window), path)
    elif kind == "batch":
        data, chunk, out_dir, as_of, explain, record = rest
        out = child_batch(data, int(chunk), out_dir, None if as_of == "-" else as_of, explain, record == "1")
    elif kind == "worklist":
        out = child_worklist(rest[0], rest[1], rest[2], float(rest[3]))
    else:
        raise SystemExit(f"unknown child {kind}")
    print(json.dumps(out))


# ---- the parent -----------------------------------------------------------------------------------
def compare(paths: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Largest absolute and relative difference of each engine's results from numpy's."""
    import numpy as np
    import pandas as pd

    ref = pd.read_parquet(paths["numpy"]).set_index("household_id").sort_index()
    out = {}
    for engine, path in paths.items():
        other = pd.read_parquet(path).set_index("household_id").sort_index()
        assert list(other.index) == list(ref.index), f"{engine}: other households"
        diff = {}
        for k in AGGREGATES:
            a, b = other[k].to_numpy(dtype=float), ref[k].to_numpy(dtype=float)
            diff[k] = float(np.max(np.abs(a - b)))
            diff[k + "_rel"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))
        out[engine] = {"max_abs": max(diff[k] for k in AGGREGATES),
                       "max_rel": max(diff[k + "_rel"] for k in AGGREGATES), "agree": all(
                           diff[k + "_rel"] < 1e-9 for k in AGGREGATES)}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        run_child(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", default="/tmp/city500k")
    ap.add_argument("--as-of", default=None, help="default: the last day of the latest income month")
    ap.add_argument("--sections", default="read,join,aggregate,batch,worklist")
    ap.add_argument("--chunks", default="25000,50000,100000,0", help="batch chunk sizes; 0 = the whole city")
    ap.add_argument("--explain", default="flagged")
    ap.add_argument("--capacity", type=float, default=0.02)
    ap.add_argument("--skip-pandas-read", action="store_true", help="skip read_tables (minutes at 500k)")
    ap.add_argument("--record", action="store_true",
                    help="also time one batch (50k chunks) that records every household's scores in SQLite")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sections = set(args.sections.split(","))

    import pyarrow.parquet as pq

    from features.io import read_frame  # noqa: F401 - fail early if the project is not importable
    n = pq.ParquetFile(f"{args.data}/households.parquet").metadata.num_rows
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    run: dict[str, Any] = results.setdefault("city", {}).setdefault(str(n), {})
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_before": os.getloadavg(), "when": dt.datetime.now(dt.UTC).isoformat()}
    w = _window(args.data, args.as_of)
    run["window"] = w
    run["rows"] = {t: pq.ParquetFile(f"{args.data}/{t}.parquet").metadata.num_rows
                   for t in ("households", "persons", "income", "claims", "assistance")}
    print(f"city of {n:,} households {run['rows']}, as_of {w['as_of']}; load average {os.getloadavg()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_city_"))

    def show(label: str, r: dict[str, Any], key: str = "") -> None:
        fig = r[key] if key else r
        print(f"  {label:46s} {fig['seconds']:8.1f} s wall {fig['cpu_seconds']:8.1f} s CPU"
              + (f"   peak RSS {r['peak_rss_mb']:8,.0f} MB" if "peak_rss_mb" in r else ""), flush=True)

    if "read" in sections:
        print("read the raw tables, with the boundary checks:")
        run.setdefault("read", {})
        for engine in (["store"] if args.skip_pandas_read else ["pandas", "store"]):
            r = run["read"][engine] = _child(["read", engine, args.data])
            show({"pandas": "features.io.read_tables (pandas)", "store": "CityTables.read (arrow + numpy)"}[engine], r)
    if "join" in sections:
        print("income rows keyed by household code and sorted by it:")
        run.setdefault("join", {})
        samples = {}
        for engine in ("arrow", "duckdb", "polars"):
            samples[engine] = tmp / f"join_{engine}.npy"
            r = run["join"][engine] = _child(["join", engine, args.data, str(samples[engine])])
            show(f"{engine}", r)
        import numpy as np
        same = all(np.array_equal(np.load(samples["arrow"]), np.load(p)) for p in samples.values())
        run["join"]["same_permutation"] = same
        print(f"  same rows in the same order: {same}")
    if "aggregate" in sections:
        print("aggregations (12-month income; out-of-pocket 3/6/12 months, per member, per stay):")
        run.setdefault("aggregate", {})
        paths = {}
        for engine in ("numpy", "pandas", "duckdb", "polars"):
            paths[engine] = tmp / f"agg_{engine}.parquet"
            r = run["aggregate"][engine] = _child(["agg", engine, args.data, json.dumps(w), str(paths[engine])])
            for key in [k for k in r if isinstance(r[k], dict)]:
                show(f"{engine}: {key}", {**r[key], "peak_rss_mb": r["peak_rss_mb"]} if key == "load" else r[key])
        run["aggregate"]["agreement"] = agreement = compare(paths)
        for engine, a in agreement.items():
            print(f"  {engine:7s} agrees with numpy: {a['agree']} (max abs diff {a['max_abs']:.2e}, "
                  f"max rel {a['max_rel']:.2e})")
    if "batch" in sections:
        print(f"run_batch (explain {args.explain}), models from {os.environ.get('MLFLOW_TRACKING_URI', 'default')}:")
        run.setdefault("batch", {})
        for chunk in [int(c) for c in args.chunks.split(",")]:
            out_dir = tmp / f"batch_{chunk}"
            r = run["batch"][str(chunk) if chunk else "all"] = _child(
                ["batch", args.data, str(chunk), str(out_dir), args.as_of or "-", args.explain, "0"])
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items() if k != "total")
            print(f"  chunk {chunk or 'all':>7}: {r['seconds']:6.1f} s wall {r['cpu_seconds']:6.1f} s CPU, peak RSS "
                  f"{r['peak_rss_mb']:7,.0f} MB, {r['chunks']} chunks; {stages}; flagged {r['flagged']}", flush=True)
        if args.record:
            r = run["batch"]["50000+record"] = _child(
                ["batch", args.data, "50000", str(tmp / "batch_record"), args.as_of or "-", args.explain, "1"])
            print(f"  chunk 50000 + record_url (SQLite): {r['seconds']:6.1f} s wall {r['cpu_seconds']:6.1f} s CPU, "
                  f"of which record {r['stages']['record']:.1f} s; peak RSS {r['peak_rss_mb']:7,.0f} MB", flush=True)
    if "worklist" in sections:
        batch_dir = tmp / "batch_50000"
        if not (batch_dir / "summary.json").exists():
            _child(["batch", args.data, "50000", str(batch_dir), args.as_of or "-", "flagged", "0"])
        r = run["worklist"] = _child(["worklist", args.data, str(batch_dir), str(tmp / "worklist"), str(args.capacity)])
        print(f"write_worklist (capacity {args.capacity}): {r['listed']} households listed")
        show("worklist (after CityTables.read)", r, "worklist")
    results["machine"]["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"written {args.out} (scratch files in {tmp})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
