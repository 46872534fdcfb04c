"""Training and batch scoring on a Dask cluster, giving what the single-machine path gives.

The names callers use, one import away (``from scale.dask import connect, score_tables_dask``); each
job lives in its own module:

* :func:`connect` (``scale/cluster.py``) — a ``distributed.Client``: to a scheduler address
  (argument, else the environment variable ``RELIEF_RISK_DASK_SCHEDULER``) or to a ``LocalCluster``
  on this machine.
* :func:`fit_risk_model_dask` (``scale/fit.py``) — :func:`training.fit.fit_risk_model`'s contract, the
  booster trained by ``lightgbm.DaskLGBMClassifier`` (data-parallel: every worker holds a share of the
  rows); no early stopping inside training (the best iteration is chosen afterwards on the whole
  validation set, :func:`select_iteration`) and "basic" monotone constraints, both forced by
  LightGBM's distributed mode.
* :func:`features_dask` (``scale/partitions.py``) — :func:`features.build.build_features` per partition
  of households: features are per household, so partitioning by household is exact (the same float64
  bits). :func:`snapshots_dask` does the same for ``training.dataset.build_snapshots`` (labels, groups).
* :func:`score_dask` / :func:`score_tables_dask` (``scale/score.py``) — ``RiskModel.predict_frame`` per
  partition.
"""

from __future__ import annotations

from scale.cluster import LOCAL, SCHEDULER_ENV, connect, n_workers
from scale.fit import dask_lgbm_params, fit_risk_model_dask, select_iteration, staged_raw_scores, without_cluster
from scale.partitions import TABLES, feature_meta, features_dask, snapshot_meta, snapshots_dask, split_tables
from scale.score import score_dask, score_meta, score_tables_dask

__all__ = [
    "LOCAL", "SCHEDULER_ENV", "TABLES", "connect", "dask_lgbm_params", "feature_meta", "features_dask",
    "fit_risk_model_dask", "n_workers", "score_dask", "score_meta", "score_tables_dask", "select_iteration",
    "snapshot_meta", "snapshots_dask", "split_tables", "staged_raw_scores", "without_cluster",
]
