"""Training on a Dask cluster: :func:`training.fit.fit_risk_model`'s contract, the booster trained by
``lightgbm.DaskLGBMClassifier`` (data-parallel: every worker holds a share of the rows).

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

Calibration, cause and band lines are those of ``training.fit.calibrated_model`` (Platt on the
validation raw scores, the ``[bands]`` lines), computed on the driver: one validation snapshot fits in memory.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import dask
import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client, wait
from sklearn.metrics import roc_auc_score

from models.bands import BandRule
from models.lgbm import lgbm_params
from models.risk_model import RiskModel
from models.schema import FeatureSchema
from scale.cluster import NO_STRING_CONVERSION, n_workers
from training.fit import calibrated_model

_EPS = 1e-15  # LightGBM's clip of probabilities in binary_logloss


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
    with dask.config.set(NO_STRING_CONVERSION):
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
                        validation: pd.DataFrame | dd.DataFrame, *, bands: BandRule | None = None, seed: int = 0,
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
    model = calibrated_model(risk, booster, schema, x_val, y_val, bands)
    facts = {"best_iteration": best, "num_trees": booster.num_trees(), "params": p, "validation_curve": curve,
             "rounds_trained": trained.current_iteration(), "stopped_early": stopped, "engine": "lightgbm.dask",
             "n_workers": workers}
    return model, facts
