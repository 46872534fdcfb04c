"""Training and batch scoring on a Dask cluster, giving what the single-machine path gives.

* :func:`connect` — a ``distributed.Client``: to a scheduler address (argument, else the environment
  variable ``RELIEF_RISK_DASK_SCHEDULER``) or to a ``LocalCluster`` on this machine.
* :func:`fit_risk_model_dask` — :func:`training.fit.fit_risk_model`'s contract, the booster trained
  by ``lightgbm.DaskLGBMClassifier`` (data-parallel: every worker holds a share of the rows).
* :func:`features_dask` — :func:`features.build.build_features` per partition of households: features
  are per household, so partitioning by household is exact (the same float64 bits).
  :func:`snapshots_dask` does the same for ``training.dataset.build_snapshots`` (labels, groups).
* :func:`score_dask` / :func:`score_tables_dask` — ``RiskModel.predict_frame`` per partition.

Two differences from the single-machine fit, both forced by LightGBM's distributed mode:

* **No early stopping inside training.** ``lightgbm.dask`` (4.7) accepts ``eval_set`` but evaluates
  each worker's local share only, and early stopping there is unsupported (workers stop at different
  rounds and the job hangs: lightgbm issues #3712, #4189, #6351, #7009). So the booster is trained for
  ``num_boost_round`` rounds and the best iteration is then chosen on the driver, on the *whole*
  validation set, by the rule ``lightgbm.early_stopping(early_stopping_rounds, first_metric_only=True)``
  applies to ``binary_logloss`` (:func:`select_iteration`). The trees of round k do not depend on
  later rounds, so the model kept is the one early stopping would have kept from this run; only the
  rounds after it are wasted work. Set ``num_boost_round`` near the expected best iteration plus the
  patience, not to the single-machine default of 1000.
* **Monotone constraints use LightGBM's "basic" method.** LightGBM refuses "intermediate"/"advanced"
  in distributed learning and falls back to "basic" itself; it is set explicitly here so the logged
  parameters say what was trained. Every method enforces the constraints exactly; basic is the most
  conservative one (it forbids some splits the others allow).

The kept booster's saved parameters are those of a one-machine model (no worker addresses, one
machine): the registry holds a model, not the cluster that trained it (:func:`without_cluster`).

Calibration and thresholds are those of ``training.fit`` (Platt on the validation raw scores,
``thresholds_for`` at capacity), computed on the driver: one validation snapshot fits in memory.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client, wait
from sklearn.metrics import roc_auc_score

from features.build import as_timestamp, build_features
from features.catalog import FEATURE_IDS
from features.io import check_tables, read_frame
from features.policy import PolicyBook
from features.tables import Tables, make_tables
from models.calibration import PlattCalibrator
from models.lgbm import lgbm_params
from models.risk_model import RiskModel
from models.schema import FeatureSchema
from training.dataset import build_snapshots
from training.fit import thresholds_for

SCHEDULER_ENV = "RELIEF_RISK_DASK_SCHEDULER"
LOCAL = "local"  # connect("local"): a LocalCluster even where the environment names a scheduler
_EPS = 1e-15  # LightGBM's clip of probabilities in binary_logloss
TABLES = ("households", "persons", "income", "claims", "assistance", "verifications")

# Dask's default turns object columns and indexes into pyarrow strings; the household ids stay what
# build_features gives (Python strings, object dtype), so the Dask results equal the pandas ones.
_NO_STRING_CONVERSION = {"dataframe.convert-string": False}


# ---- the cluster -------------------------------------------------------------------------------

def connect(address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1,
            processes: bool = True, **cluster_options: Any) -> Client:
    """A client of the scheduler at ``address`` (e.g. ``tcp://scheduler:8786``); with None, of the
    scheduler named by ``RELIEF_RISK_DASK_SCHEDULER``; with neither (or ``"local"``), of a new
    ``LocalCluster`` on this machine, which closes with the client.

    The local default, 2 single-threaded worker processes, fits a 2-core machine. Processes need the
    calling script to guard its entry point (``if __name__ == "__main__":``), as multiprocessing does.
    Workers of a real cluster must have this project installed (the same version as the client).
    """
    if address is None:
        address = os.environ.get(SCHEDULER_ENV) or None
    if address and address != LOCAL:
        return Client(address)
    # a Client given cluster arguments starts its own LocalCluster and closes it on close()
    return Client(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                  dashboard_address=cluster_options.pop("dashboard_address", None), **cluster_options)


def n_workers(client: Client) -> int:
    return len(client.nthreads())


# ---- training ----------------------------------------------------------------------------------

def _validated(part: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The schema's checks on one partition, as a float64 frame in schema order."""
    return pd.DataFrame(schema.validate(part[schema.ids]), columns=schema.ids, index=part.index)


def _labels(part: pd.Series) -> pd.Series:
    return part.astype("int8")


def _scatter_rows(client: Client, x: np.ndarray, y: np.ndarray, columns: list[str],
                  npartitions: int) -> tuple[dd.DataFrame, dd.Series]:
    """In-memory rows as a Dask DataFrame and label Series, partition i of both on worker i mod n:
    scattered, not embedded in the task graph, and spread over every worker for LightGBM."""
    workers = sorted(client.nthreads())
    bounds = np.linspace(0, len(x), npartitions + 1).astype(int)
    xs, ys = [], []
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        index = pd.RangeIndex(lo, hi)
        where = [workers[i % len(workers)]]
        xs += client.scatter([pd.DataFrame(x[lo:hi], columns=columns, index=index)], workers=where)
        ys += client.scatter([pd.Series(y[lo:hi], index=index, name="label")], workers=where)
    divisions = (*bounds[:-1].tolist(), int(bounds[-1]) - 1)
    with dask.config.set(_NO_STRING_CONVERSION):
        meta_x = pd.DataFrame(np.empty((0, len(columns))), columns=columns, index=pd.RangeIndex(0))
        return (dd.from_delayed(xs, meta=meta_x, divisions=divisions),
                dd.from_delayed(ys, meta=pd.Series(np.empty(0, y.dtype), name="label", index=pd.RangeIndex(0)),
                                divisions=divisions))


def _training_rows(client: Client, frame: pd.DataFrame | dd.DataFrame, schema: FeatureSchema,
                   npartitions: int) -> tuple[dd.DataFrame, dd.Series]:
    """Checked features and labels on the cluster, persisted."""
    if isinstance(frame, dd.DataFrame):
        meta = pd.DataFrame(np.empty((0, len(schema.ids))), columns=schema.ids)
        x = frame[schema.ids].map_partitions(_validated, schema, meta=meta)
        y = frame["label"].map_partitions(_labels, meta=pd.Series(np.empty(0, "int8"), name="label"))
        x, y = client.persist([x, y])
    else:
        x, y = _scatter_rows(client, schema.validate(frame[schema.ids]), frame["label"].to_numpy().astype("int8"),
                             schema.ids, npartitions)
    wait([x, y])
    return x, y


def _validation_rows(client: Client, validation: pd.DataFrame | dd.DataFrame,
                     schema: FeatureSchema) -> tuple[np.ndarray, np.ndarray]:
    """The validation snapshot on the driver: calibration needs all of its raw scores at once."""
    if isinstance(validation, dd.DataFrame):
        validation = client.compute(validation[[*schema.ids, "label"]]).result()
    return schema.validate(validation[schema.ids]), validation["label"].to_numpy()


def _logloss(y: np.ndarray, raw: np.ndarray) -> float:
    p = np.clip(1.0 / (1.0 + np.exp(-raw)), _EPS, 1.0 - _EPS)
    return float(-np.mean(np.where(y > 0, np.log(p), np.log1p(-p))))


def _auc(y: np.ndarray, raw: np.ndarray) -> float:
    return float(roc_auc_score(y, raw)) if 0 < y.sum() < len(y) else float("nan")


def staged_raw_scores(booster: lgb.Booster, x: np.ndarray, chunk: int = 50):
    """Yields the raw score of every row after rounds 1, 2, … of ``booster``: the sum of the leaf
    values each row falls in, added tree by tree in LightGBM's own order (so each equals
    ``booster.predict(x, raw_score=True, num_iteration=k)``), at one pass over the trees."""
    if booster.num_model_per_iteration() != 1:
        raise ValueError("a binary booster has one tree per iteration")
    raw = np.zeros(len(x))
    total = booster.current_iteration()
    for start in range(0, total, chunk):
        k = min(chunk, total - start)
        leaves = np.asarray(booster.predict(x, pred_leaf=True, start_iteration=start, num_iteration=k))
        leaves = leaves.reshape(len(x), k)
        for j in range(k):
            tree = start + j
            values = np.array([booster.get_leaf_output(tree, leaf) for leaf in range(int(leaves[:, j].max()) + 1)])
            raw = raw + values[leaves[:, j]]
            yield raw


def select_iteration(booster: lgb.Booster, x_val: np.ndarray, y_val: np.ndarray,
                     early_stopping_rounds: int) -> tuple[int, dict[str, list[float]], bool]:
    """Early stopping after the fact, on the whole validation set.

    Walks the rounds as ``lightgbm.early_stopping(early_stopping_rounds, first_metric_only=True)``
    does with metrics ``["binary_logloss", "auc"]``: the best round is the first with the lowest
    log-loss, and the walk stops once ``early_stopping_rounds`` rounds have not improved on it.
    Returns the best iteration (1-based, like ``Booster.best_iteration``), the validation curve up
    to it and whether the walk stopped before the last trained round (False: more rounds might help).
    """
    y = np.asarray(y_val)
    curve: dict[str, list[float]] = {"binary_logloss": [], "auc": []}
    best, best_loss, stopped = 0, np.inf, False
    for i, raw in enumerate(staged_raw_scores(booster, x_val)):
        loss = _logloss(y, raw)
        curve["binary_logloss"].append(loss)
        curve["auc"].append(_auc(y, raw))
        if loss < best_loss:
            best, best_loss = i, loss
        elif i - best >= early_stopping_rounds:
            stopped = True
            break
    if not curve["auc"]:
        raise ValueError("the booster has no trees")
    return best + 1, {k: v[: best + 1] for k, v in curve.items()}, stopped


def _calibrate(risk: str, booster: lgb.Booster, schema: FeatureSchema, x_val: np.ndarray, y_val: np.ndarray,
               capacity: float) -> RiskModel:
    """Exactly ``training.fit.fit_risk_model``'s calibration step (Platt on the validation raw
    scores, thresholds at capacity), from its public pieces."""
    raw_val = np.asarray(booster.predict(x_val, raw_score=True))
    calibrator = PlattCalibrator().fit(raw_val, y_val)
    return RiskModel(risk=risk, booster=booster, schema=schema, calibrator=calibrator,
                     thresholds=thresholds_for(calibrator.transform(raw_val), capacity))


# The network settings distributed LightGBM writes into a model's parameters, as a model trained on one
# machine has them: a saved model describes the model, not the cluster (whose addresses would
# otherwise be in the registry), and refitting it locally must not try to reach the old workers.
_ONE_MACHINE = {"tree_learner": "serial", "num_machines": "1", "machines": "", "machine_list_filename": "",
                "local_listen_port": "12400", "time_out": "120"}


def without_cluster(model_str: str, num_threads: int | None = None) -> str:
    """``model_str`` with its parameters' network settings (and ``num_threads``, if given) reset."""
    head, sep, tail = model_str.partition("\nparameters:\n")
    params, end, rest = tail.partition("\nend of parameters")
    if not (sep and end):
        return model_str
    reset = {**_ONE_MACHINE, **({"num_threads": str(num_threads)} if num_threads is not None else {})}
    lines = []
    for line in params.split("\n"):
        m = re.fullmatch(r"\[(\w+): .*\]", line)
        lines.append(f"[{m.group(1)}: {reset[m.group(1)]}]" if m and m.group(1) in reset else line)
    return head + sep + "\n".join(lines) + end + rest


def dask_lgbm_params(schema: FeatureSchema, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """``models.lgbm.lgbm_params`` as distributed LightGBM runs them: monotone constraints by the
    "basic" method (the only one LightGBM allows there) and no ``num_threads`` (each worker uses its
    own thread count)."""
    p = lgbm_params(schema, seed=seed, **overrides)
    p.pop("num_threads", None)
    if p.get("monotone_constraints_method", "basic") != "basic":
        p["monotone_constraints_method"] = "basic"
    return p


def fit_risk_model_dask(client: Client, risk: str, schema: FeatureSchema, train: pd.DataFrame | dd.DataFrame,
                        validation: pd.DataFrame | dd.DataFrame, *, capacity: float, seed: int = 0,
                        num_boost_round: int = 1000, early_stopping_rounds: int = 50, params: dict | None = None,
                        npartitions: int | None = None) -> tuple[RiskModel, dict]:
    """:func:`training.fit.fit_risk_model` with the booster trained across the cluster's workers.

    ``train`` and ``validation`` carry the schema's feature columns and ``label``, as pandas or Dask
    DataFrames. A pandas ``train`` is scattered in ``npartitions`` pieces (default: one per worker)
    round-robin over the workers; a Dask one is used as partitioned. ``num_boost_round`` rounds are
    trained and the best iteration chosen afterwards (:func:`select_iteration`); the returned model
    keeps the trees up to it, as ``lightgbm.train`` keeps them after early stopping. ``facts`` has
    fit_risk_model's keys (``best_iteration``, ``num_trees`` kept, ``params`` as trained,
    ``validation_curve`` on the whole validation set) and ``rounds_trained``, ``stopped_early``
    (False: the best round was within ``early_stopping_rounds`` of the last, more rounds might have
    helped), ``engine``, ``n_workers``.
    """
    workers = n_workers(client)
    p = dask_lgbm_params(schema, seed=seed, **(params or {}))
    x, y = _training_rows(client, train, schema, npartitions or workers)
    classifier = lgb.DaskLGBMClassifier(client=client, n_estimators=num_boost_round, **p)
    with warnings.catch_warnings():
        # the scikit-learn wrapper's n_jobs alias is dropped in favour of each worker's threads
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        classifier.fit(x, y)
    trained = classifier.booster_
    x_val, y_val = _validation_rows(client, validation, schema)
    best, curve, stopped = select_iteration(trained, x_val, y_val, early_stopping_rounds)
    booster = lgb.Booster(model_str=without_cluster(trained.model_to_string(num_iteration=best),
                                                    lgbm_params(schema, **(params or {})).get("num_threads")))
    if booster.feature_name() != schema.ids:
        raise ValueError("the Dask booster's features differ from the schema")
    model = _calibrate(risk, booster, schema, x_val, y_val, capacity)
    facts = {"best_iteration": best, "num_trees": booster.num_trees(), "params": p, "validation_curve": curve,
             "rounds_trained": trained.current_iteration(), "stopped_early": stopped, "engine": "lightgbm.dask",
             "n_workers": workers}
    return model, facts


# ---- features per partition of households ------------------------------------------------------

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
        problems = check_tables(tables, towns=policy.all_towns)
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
    with dask.config.set(_NO_STRING_CONVERSION):
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
    with dask.config.set(_NO_STRING_CONVERSION):
        return dd.from_delayed([build(p, ts, policy, risk) for p in pieces],
                               meta=snapshot_meta(policy, risk, with_truth), verify_meta=False)


# ---- scoring -----------------------------------------------------------------------------------

def score_meta(model: RiskModel, index: pd.Index) -> pd.DataFrame:
    """An empty frame shaped like ``model.predict_frame``'s output, built the way it builds it."""
    p = np.empty(0)
    return pd.DataFrame({"probability": p, "raw_score": np.empty(0), "band": model.thresholds.band(p),
                         "flagged": p >= model.thresholds.flag}, index=index[:0])


def _score_partition(features: pd.DataFrame, model: RiskModel) -> pd.DataFrame:
    if len(features) == 0:
        return score_meta(model, features.index)
    return model.predict_frame(features)


def score_dask(model: RiskModel, features: dd.DataFrame) -> dd.DataFrame:
    """``model.predict_frame`` on every partition of ``features`` (the schema's columns, any others
    ignored): probability, raw score, band and flag, indexed like ``features``. The model is one
    task of the graph, shipped once to each worker that needs it, not once per partition."""
    shared = dask.delayed(model, pure=False)
    with dask.config.set(_NO_STRING_CONVERSION):
        return features.map_partitions(_score_partition, shared, meta=score_meta(model, features._meta.index),
                                       align_dataframes=False)


def score_tables_dask(client: Client, model: RiskModel, tables: Tables | str | os.PathLike, as_of: Any,
                      policy: PolicyBook, *, npartitions: int | None = None, check: bool = True) -> dd.DataFrame:
    """The nightly batch on the cluster: features per partition of households (:func:`features_dask`),
    then :func:`score_dask`. Lazy: ``.compute()`` it, or write it with ``.to_parquet(...)``."""
    return score_dask(model, features_dask(client, tables, as_of, policy, npartitions=npartitions, check=check))


__all__ = [
    "LOCAL", "SCHEDULER_ENV", "connect", "dask_lgbm_params", "feature_meta", "features_dask", "fit_risk_model_dask",
    "n_workers", "score_dask", "score_meta", "score_tables_dask", "select_iteration", "snapshot_meta",
    "snapshots_dask", "split_tables", "staged_raw_scores", "without_cluster",
]
