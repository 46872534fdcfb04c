"""The training stage: snapshots → fit → evaluate against the rules → log and register in MLflow.

The MLflow tracking URI is whatever the environment says (``MLFLOW_TRACKING_URI``); without it,
MLflow's default (``sqlite:///mlflow.db`` in the working folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from features.catalog import FEATURE_IDS
from features.io import load_policy_book, policy_file_text, read_frame, read_tables
from models.pyfunc import ARTIFACT_KEY
from models.schema import FeatureSchema
from training import evaluate as ev
from training.dataset import build_snapshots, data_span, plan_split
from training.fit import fit_risk_model
from training.rules import RULES, rule_scores

log = logging.getLogger(__name__)

EXPERIMENT = "relief-risk"
RUNTIME_PACKAGES = ("lightgbm", "numpy", "pandas", "scikit-learn", "mlflow", "pyarrow")


@dataclass
class TrainConfig:
    data_dir: str
    risk: str = "illness_poverty"
    capacity: float = 0.02
    seed: int = 0
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    alias: str | None = "champion"
    experiment: str = EXPERIMENT
    policy_path: str | None = None
    lgbm: dict[str, Any] = field(default_factory=dict)
    progress: bool = True


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    version: str | None
    metrics: dict[str, float]
    comparison: pd.DataFrame
    timings: dict[str, float]


def _pip_requirements() -> list[str]:
    return [f"{p}=={metadata.version(p)}" for p in RUNTIME_PACKAGES]


def _data_fingerprint(data_dir: str) -> dict[str, Any]:
    """Names, sizes and a hash of the raw files: which snapshot of the data this run saw."""
    files = sorted(p for p in Path(data_dir).iterdir() if p.suffix in (".parquet", ".csv"))
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return {"files": {p.name: p.stat().st_size for p in files}, "sha256": h.hexdigest()}


def train(config: TrainConfig) -> TrainResult:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    policy = load_policy_book(config.policy_path)
    tables = read_tables(config.data_dir, policy=policy)
    truth = read_frame(config.data_dir, "truth")
    timings["read_s"] = time.perf_counter() - t0

    first, last = data_span(tables)
    split = plan_split(first, last)
    t0 = time.perf_counter()
    snaps = build_snapshots(tables, [*split.train, split.validation, split.test], policy, config.risk, truth,
                            progress=config.progress)
    timings["features_s"] = time.perf_counter() - t0
    train_df = snaps.loc[snaps["as_of"].isin(split.train)]
    val_df = snaps.loc[snaps["as_of"] == split.validation]
    test_df = snaps.loc[snaps["as_of"] == split.test]
    if train_df["label"].sum() < 10 or val_df["label"].sum() < 5:
        raise ValueError(f"too few {config.risk} findings to train: {int(train_df['label'].sum())} in training, "
                         f"{int(val_df['label'].sum())} in validation; generate a larger city")

    schema = FeatureSchema.from_catalog(FEATURE_IDS)
    t0 = time.perf_counter()
    model, facts = fit_risk_model(config.risk, schema, train_df, val_df, capacity=config.capacity, seed=config.seed,
                                  num_boost_round=config.num_boost_round,
                                  early_stopping_rounds=config.early_stopping_rounds, params=config.lgbm)
    timings["fit_s"] = time.perf_counter() - t0

    # ---- evaluation on the later period --------------------------------------------------------
    t0 = time.perf_counter()
    pred = model.predict_frame(test_df[schema.ids])
    p = pred["probability"].to_numpy()
    y = test_df["label"].to_numpy()
    rules = rule_scores(test_df[schema.ids], split.test, policy)
    comparison = ev.compare(y, p, rules, config.capacity)
    metrics: dict[str, float] = {
        "test_brier": float(ev.brier_score_loss(y, p)),
        "test_ece": float(ev.expected_calibration_error(y, p)),
        "test_positives": float(y.sum()), "test_households": float(len(y)),
        "train_rows": float(len(train_df)), "train_positives": float(train_df["label"].sum()),
        "best_iteration": float(facts["best_iteration"]),
    }
    for scorer, row in comparison.iterrows():
        key = scorer.replace("rule:", "rule_")
        for m in ("roc_auc", "pr_auc", "recall", "precision", "found"):
            metrics[f"test_{key}_{m}"] = float(row[m])
    best_rule = comparison.drop(index="model")["recall"].astype(float).idxmax()
    metrics["test_recall_gain_over_best_rule"] = float(comparison.loc["model", "recall"] - comparison.loc[best_rule, "recall"])
    # selection bias: who gets a verdict at all
    visited = test_df["visited"].to_numpy() == 1
    fired_any = (rules.to_numpy() >= 1000).any(axis=1)
    metrics["test_visited_share"] = float(visited.mean())
    metrics["test_visited_share_rule_fired"] = float(visited[fired_any].mean()) if fired_any.any() else float("nan")
    metrics["test_visited_share_rule_silent"] = float(visited[~fired_any].mean()) if (~fired_any).any() else float("nan")
    truth_cmp = None
    if "truth" in test_df:
        yt = test_df["truth"].to_numpy()
        truth_cmp = ev.compare(yt, p, rules, config.capacity)
        for scorer, row in truth_cmp.iterrows():
            key = scorer.replace("rule:", "rule_")
            for m in ("roc_auc", "recall", "precision"):
                metrics[f"truth_{key}_{m}"] = float(row[m])
        metrics["truth_positives"] = float(yt.sum())
        metrics["truth_share_visited"] = float(visited[yt == 1].mean()) if yt.sum() else float("nan")
    timings["evaluate_s"] = time.perf_counter() - t0

    # ---- MLflow -----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    mlflow.set_experiment(config.experiment)
    version = None
    with mlflow.start_run(run_name=f"{config.risk}-{split.test.date()}") as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"risk": config.risk, "stage": "train"})
        mlflow.log_params({
            "risk": config.risk, "capacity": config.capacity, "seed": config.seed,
            "train_as_of": ",".join(str(t.date()) for t in split.train), "validation_as_of": str(split.validation.date()),
            "test_as_of": str(split.test.date()), "label_days": 180,
            "policy_version_test": policy.at(split.test.date()).version,
            **{f"lgbm_{k}": v for k, v in facts["params"].items() if k != "monotone_constraints"},
        })
        mlflow.log_metrics(metrics)
        mlflow.log_metrics({f"timing_{k}": v for k, v in timings.items()})
        for i, (auc, loss) in enumerate(zip(facts["validation_curve"]["auc"],
                                            facts["validation_curve"]["binary_logloss"], strict=True)):
            mlflow.log_metrics({"validation_auc": auc, "validation_logloss": loss}, step=i)
        mlflow.log_text(schema.to_json(), "feature_schema.json")
        mlflow.log_text(policy_file_text(config.policy_path), "policy_parameters.toml")
        mlflow.log_dict({"data_dir": str(Path(config.data_dir).resolve().name), **_data_fingerprint(config.data_dir),
                         "span": [str(first.date()), str(last.date())],
                         "split": {"train": [str(t.date()) for t in split.train],
                                   "validation": str(split.validation.date()), "test": str(split.test.date())},
                         "rows": {"train": len(train_df), "validation": len(val_df), "test": len(test_df)}},
                        "data_snapshot.json")
        mlflow.log_text(comparison.to_csv(), "evaluation/model_vs_rules.csv")
        if truth_cmp is not None:
            mlflow.log_text(truth_cmp.to_csv(), "evaluation/model_vs_rules_latent_truth.csv")
        mlflow.log_dict({r.name: r.label_zh for r in RULES}, "evaluation/rules.json")
        cal = ev.calibration_table(y, p)
        mlflow.log_text(cal.to_csv(index=False), "evaluation/calibration.csv")
        figs = {
            "plots/calibration.png": ev.plot_calibration(cal, f"{config.risk} 校准曲线（{split.test.date()}）"),
            "plots/recall_at_capacity.png": ev.plot_recall_at_capacity(
                y, {"模型": p, **{f"规则 {c}": rules[c].to_numpy() for c in rules}},
                np.linspace(0.005, 0.1, 20), f"{config.risk}：同等走访能力下的发现率"),
        }
        sample = test_df[schema.ids].sample(n=min(5000, len(test_df)), random_state=config.seed)
        contrib = np.asarray(model.booster.predict(schema.validate(sample), pred_contrib=True))[:, :-1]
        importance = np.abs(contrib).mean(axis=0)
        mlflow.log_dict(dict(zip(schema.ids, importance.tolist(), strict=True)), "evaluation/global_importance.json")
        figs["plots/global_importance.png"] = ev.plot_importance(
            [schema.labels[i] for i in schema.ids], importance, f"{config.risk} 全局重要性")
        for path, fig in figs.items():
            mlflow.log_figure(fig, path)
            plt.close(fig)

        model.meta.update({"trained_at_run": run.info.run_id, "test_as_of": str(split.test.date()),
                           "policy_version": policy.latest.version})
        model_dir = model.save(Path(tmp) / "risk_model")
        example = test_df[schema.ids].head(5).reset_index(drop=True)
        signature = infer_signature(example, model.predict_frame(example).reset_index(drop=True),
                                    params={"explain": False})
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(Path(__file__).resolve().parents[1] / "models" / "pyfunc_entry.py"),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            code_paths=[str(Path(__file__).resolve().parents[1] / pkg) for pkg in ("models", "features")],
            signature=signature, input_example=example, pip_requirements=_pip_requirements(),
            registered_model_name=config.risk if config.alias is not None else None,
        )
        if config.alias is not None:
            version = str(info.registered_model_version)
            client = MlflowClient()
            client.set_registered_model_alias(config.risk, config.alias, version)
            client.update_model_version(config.risk, version, description=(
                f"{config.risk}: trained on {len(train_df)} household-snapshots, tested on {split.test.date()}; "
                f"recall at {config.capacity:.0%} capacity {comparison.loc['model', 'recall']:.3f} "
                f"vs best rule {best_rule} {comparison.loc[best_rule, 'recall']:.3f}."))
    timings["mlflow_s"] = time.perf_counter() - t0
    log.info("trained %s: run %s, version %s", config.risk, run.info.run_id, version)
    return TrainResult(run_id=run.info.run_id, model_name=config.risk, version=version, metrics=metrics,
                       comparison=comparison, timings=timings)


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**d)


def describe(result: TrainResult) -> str:
    return json.dumps({"run_id": result.run_id, "model": result.model_name, "version": result.version,
                       "timings": result.timings, **{k: v for k, v in result.metrics.items()
                                                     if k.startswith(("test_model", "truth_model"))}},
                      indent=2, default=float)


__all__ = ["TrainConfig", "TrainResult", "asdict", "describe", "train"]
