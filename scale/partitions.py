"""Features and training snapshots per partition of households on a Dask cluster.

Features are per household, so partitioning by household is exact: :func:`features_dask` is
:func:`features.build.build_features` per partition (the same float64 bits) and :func:`snapshots_dask`
is ``training.dataset.build_snapshots`` per partition (labels, groups). From a folder of table files
the driver reads the household ids only and each task reads its own households' rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from features.build import as_timestamp, build_features
from features.catalog import FEATURE_IDS
from features.io import check_tables, read_frame
from features.policy import PolicyBook
from features.tables import Tables, make_tables
from scale.cluster import NO_STRING_CONVERSION, n_workers
from training.dataset import build_snapshots

TABLES = ("households", "persons", "income", "claims", "assistance", "verifications")


def feature_meta() -> pd.DataFrame:
    """An empty frame shaped like :func:`features.build.build_features`' output."""
    return pd.DataFrame(np.empty((0, len(FEATURE_IDS))), columns=pd.Index(FEATURE_IDS),
                        index=pd.Index([], name="household_id", dtype=object))


def _chunks(keys: pd.Series, npartitions: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Household ids split into ``npartitions`` runs of the sorted normalised ids: per run, the raw
    values (for reading files) and the normalised ones (the features' index, hence divisions)."""
    normal = keys.astype("string").astype(object).to_numpy()
    if pd.isna(normal).any():
        raise ValueError("households.household_id: missing ids")
    order = np.argsort(normal, kind="stable")
    normal, raw = normal[order], keys.to_numpy()[order]
    if len(normal) > 1 and (normal[1:] == normal[:-1]).any():
        raise ValueError("households.household_id: duplicated keys")
    cuts = np.linspace(0, len(normal), min(max(1, npartitions), max(1, len(normal))) + 1).astype(int)
    return ([raw[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)],
            [normal[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)])


def _divisions(normal: list[np.ndarray]) -> tuple | None:
    if any(len(c) == 0 for c in normal):
        return None
    return (*[c[0] for c in normal], normal[-1][-1])


def _positions(values: pd.Series, keys: np.ndarray, what: str) -> np.ndarray:
    """Position of each value among ``keys`` (unique), -1 where it is not one of them."""
    index = pd.Index(keys, dtype=object)
    if not index.is_unique:
        raise ValueError(f"{what}: duplicated keys")
    return index.get_indexer(pd.Index(values.to_numpy(), dtype=object))


def split_tables(tables: Tables, npartitions: int, *, labels: bool = False,
                 truth: pd.DataFrame | None = None) -> tuple[list[dict[str, pd.DataFrame]], tuple | None]:
    """The tables cut into partitions of households: each holds its households, their persons, those
    persons' income and claims and the households' assistance, rows in their original order (so
    per-household sums add the same numbers in the same order). Rows of no household in the
    households table belong to no partition: ``build_features`` leaves them out too. With
    ``labels``, each also holds its households' verifications (else none: features never read
    them); with ``truth``, its households' rows of it under ``"truth"``. Returns the partitions'
    frames and the divisions of their household ids."""
    hh = tables.households
    _, normal = _chunks(hh["household_id"], npartitions)
    part_of_household = np.repeat(np.arange(len(normal)), [len(c) for c in normal])
    keys = np.concatenate(normal)

    def by_household(frame: pd.DataFrame) -> np.ndarray:
        codes = _positions(frame["household_id"], keys, "households.household_id")
        return np.where(codes >= 0, part_of_household[np.maximum(codes, 0)], -1)

    persons = tables.persons
    person_part = by_household(persons)
    known = person_part >= 0
    owner = pd.Series(person_part[known], index=pd.Index(persons["person_id"].to_numpy()[known], dtype=object))
    if not owner.index.is_unique:
        raise ValueError("persons.person_id: duplicated keys")

    def by_person(frame: pd.DataFrame) -> np.ndarray:
        codes = owner.index.get_indexer(pd.Index(frame["person_id"].to_numpy(), dtype=object))
        return np.where(codes >= 0, owner.to_numpy()[np.maximum(codes, 0)], -1)

    sources = {name: getattr(tables, name) for name in TABLES}
    parts = {"households": by_household(hh), "persons": person_part, "income": by_person(tables.income),
             "claims": by_person(tables.claims), "assistance": by_household(tables.assistance)}
    if labels:
        parts["verifications"] = by_household(tables.verifications)
    if truth is not None:
        sources["truth"], parts["truth"] = truth, by_household(truth)
    empty = tables.verifications.iloc[0:0]
    out = []
    for i in range(len(normal)):
        frames = {name: sources[name].loc[parts[name] == i] for name in parts}
        out.append({"verifications": empty, **frames})
    return out, _divisions(normal)


def _tables(frames: dict[str, pd.DataFrame]) -> tuple[Tables, pd.DataFrame | None]:
    return Tables(**{name: frames[name] for name in TABLES}), frames.get("truth")


def _read_subset(directory: str, name: str, column: str, values: Sequence[Any]) -> pd.DataFrame | None:
    """Rows of one table file whose ``column`` is one of ``values``, in file order: a pushed-down
    filter for parquet, a full read then a filter for CSV.

    The filter also bounds ``column`` by the least and greatest of ``values``: where a file is
    sorted by its key (as exports usually are), the row groups of other partitions are then
    skipped on their statistics instead of being read and thrown away."""
    path = Path(directory) / f"{name}.parquet"
    if path.exists():
        values = list(values)
        bounds = [(column, ">=", min(values)), (column, "<=", max(values))] if values else []
        return pd.read_parquet(path, filters=[*bounds, (column, "in", values)])
    frame = read_frame(directory, name)
    return None if frame is None else frame.loc[frame[column].isin(values)]


def _stamp(directory: str) -> tuple:
    """Names, sizes and modification times of the table files: part of each task's key, so a task
    over changed files is a new task, never a result Dask still holds for the old ones."""
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(directory).iterdir())
                 if p.suffix in (".parquet", ".csv"))


def _read_partition(directory: str, households: np.ndarray, policy: PolicyBook, *, labels: bool, check: bool,
                    stamp: tuple = ()) -> dict[str, pd.DataFrame]:
    """One partition's rows, read by the worker itself (the driver reads only the ids), normalised
    as ``read_tables`` normalises them; with ``labels``, its verifications and truth (if a truth file
    is there) too."""
    ids = households.tolist()
    persons = _read_subset(directory, "persons", "household_id", ids)
    if persons is None:
        raise FileNotFoundError(f"{directory}: no persons.parquet or persons.csv")
    person_ids = persons["person_id"].dropna().unique().tolist()
    raw = {"households": _read_subset(directory, "households", "household_id", ids), "persons": persons,
           "income": _read_subset(directory, "income", "person_id", person_ids),
           "claims": _read_subset(directory, "claims", "person_id", person_ids),
           "assistance": _read_subset(directory, "assistance", "household_id", ids)}
    if labels:
        raw["verifications"] = _read_subset(directory, "verifications", "household_id", ids)
    for name, frame in raw.items():
        if frame is None and name != "verifications":
            raise FileNotFoundError(f"{directory}: no {name}.parquet or {name}.csv")
    tables = make_tables(**raw)
    if check:
        problems = check_tables(tables, towns=policy.all_towns, cities=policy.city_towns)
        if problems:
            raise ValueError("bad input tables:\n  " + "\n  ".join(problems[:20]))
    frames = {name: getattr(tables, name) for name in TABLES}
    if labels and (truth := _read_subset(directory, "truth", "household_id", ids)) is not None:
        frames["truth"] = truth
    return frames


def _features(frames: dict[str, pd.DataFrame], as_of: pd.Timestamp, policy: PolicyBook) -> pd.DataFrame:
    return build_features(_tables(frames)[0], as_of, policy)


def _snapshots(frames: dict[str, pd.DataFrame], dates: list[pd.Timestamp], policy: PolicyBook,
               risk: str) -> pd.DataFrame:
    tables, truth = _tables(frames)
    return build_snapshots(tables, dates, policy, risk, truth, progress=False)


def _partitions(client: Client, tables: Tables | str | os.PathLike, policy: PolicyBook, npartitions: int | None, *,
                labels: bool, truth: pd.DataFrame | None, check: bool) -> tuple[list, tuple | None]:
    """Per partition of households, a lazy piece giving its frames (:func:`split_tables`'s form),
    and the divisions. In-memory tables are cut on the driver and scattered; a folder is read by
    the tasks."""
    parts = npartitions or n_workers(client)
    if isinstance(tables, Tables):
        frames, divisions = split_tables(tables, parts, labels=labels, truth=truth)
        return client.scatter(frames), divisions
    directory = str(tables)
    path = Path(directory) / "households.parquet"
    ids = pd.read_parquet(path, columns=["household_id"]) if path.exists() else read_frame(directory, "households")
    if ids is None:
        raise FileNotFoundError(f"{directory}: no households.parquet or households.csv")
    raw, normal = _chunks(ids["household_id"], parts)
    stamp = _stamp(directory)
    read = dask.delayed(_read_partition, pure=True)
    return [read(directory, r, policy, labels=labels, check=check, stamp=stamp) for r in raw], _divisions(normal)


def features_dask(client: Client, tables: Tables | str | os.PathLike, as_of: Any, policy: PolicyBook, *,
                  npartitions: int | None = None, check: bool = True) -> dd.DataFrame:
    """``build_features(tables, as_of, policy)`` as a Dask DataFrame of ``npartitions`` partitions of
    households (default: one per worker), with known divisions on ``household_id``.

    ``tables``: in-memory :class:`Tables` (cut on the driver and scattered to the workers) or the
    folder of the table files, which every worker must be able to read (a shared or mounted path):
    the driver reads the household ids only and each task reads its own households' rows (parquet
    filters; CSV files are read whole by every task). ``check`` runs ``check_tables`` per partition
    of files; the checks across partitions (keys duplicated between partitions, income and claims of
    unknown persons) are ``read_tables``' to make on the whole set.
    """
    t = as_timestamp(as_of)
    pieces, divisions = _partitions(client, tables, policy, npartitions, labels=False, truth=None, check=check)
    build = dask.delayed(_features, pure=True)
    with dask.config.set(NO_STRING_CONVERSION):
        return dd.from_delayed([build(p, t, policy) for p in pieces], meta=feature_meta(), divisions=divisions,
                               verify_meta=False)


def snapshot_meta(policy: PolicyBook, risk: str, with_truth: bool) -> pd.DataFrame:
    """An empty frame shaped like ``training.dataset.build_snapshots``' output."""
    truth = pd.DataFrame({c: pd.Series([], dtype=object) for c in ("household_id", "finding", "start_month",
                                                                   "end_month")}) if with_truth else None
    meta = build_snapshots(make_tables(), [pd.Timestamp("2000-01-31")], policy, risk, truth, progress=False)
    text = pd.DataFrame({"x": np.array(["x"], dtype=object)})["x"].dtype  # what pandas makes of strings
    return meta.astype({c: text for c in meta.columns if c.startswith("group_")})


def snapshots_dask(client: Client, tables: Tables | str | os.PathLike, dates: Sequence[Any], policy: PolicyBook,
                   risk: str, *, truth: pd.DataFrame | None = None, npartitions: int | None = None,
                   check: bool = True) -> dd.DataFrame:
    """``training.dataset.build_snapshots(tables, dates, policy, risk, truth)`` per partition of
    households: features, ``label``, ``visited``, ``group_*``, ``as_of`` (and ``truth``) for every
    household at every date, each partition's rows built by one task from its own rows. The training
    set of :func:`fit_risk_model_dask` without the raw tables ever on one machine (with a folder).

    Row order differs from build_snapshots' (partition, then date, then household; divisions
    unknown, the index repeating per date); the rows are the same. With a folder, ``truth`` is read
    from its ``truth`` file where there is one; with in-memory tables, pass the frame.
    """
    ts = [as_timestamp(d) for d in dates]
    if isinstance(tables, Tables):
        with_truth = truth is not None
    else:
        with_truth = any((Path(tables) / f"truth.{ext}").exists() for ext in ("parquet", "csv"))
    pieces, _ = _partitions(client, tables, policy, npartitions, labels=True, truth=truth, check=check)
    build = dask.delayed(_snapshots, pure=True)
    with dask.config.set(NO_STRING_CONVERSION):
        return dd.from_delayed([build(p, ts, policy, risk) for p in pieces],
                               meta=snapshot_meta(policy, risk, with_truth), verify_meta=False)
