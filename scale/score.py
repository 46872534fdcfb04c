"""Batch scoring on a Dask cluster: ``RiskModel.predict_frame`` per partition of the features."""

from __future__ import annotations

import os
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from features.policy import PolicyBook
from features.tables import Tables
from models.risk_model import RiskModel
from scale.cluster import NO_STRING_CONVERSION
from scale.partitions import features_dask


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
    with dask.config.set(NO_STRING_CONVERSION):
        return features.map_partitions(_score_partition, shared, meta=score_meta(model, features._meta.index),
                                       align_dataframes=False)


def score_tables_dask(client: Client, model: RiskModel, tables: Tables | str | os.PathLike, as_of: Any,
                      policy: PolicyBook, *, npartitions: int | None = None, check: bool = True) -> dd.DataFrame:
    """The nightly batch on the cluster: features per partition of households (:func:`features_dask`),
    then :func:`score_dask`. Lazy: ``.compute()`` it, or write it with ``.to_parquet(...)``."""
    return score_dask(model, features_dask(client, tables, as_of, policy, npartitions=npartitions, check=check))
