"""The training stage: snapshots → fit → evaluate against the rules and across groups → log,
register in MLflow and let the promotion gate decide whether the new version serves.

``train`` does one risk; ``train_all`` does several (by default every finding of the contract) on
one read of the data and one set of feature snapshots, relabelled per risk, each risk in its own
run and registered model.

The MLflow tracking URI is whatever the environment says (``MLFLOW_TRACKING_URI``); without it,
MLflow's default (``sqlite:///mlflow.db`` in the working folder). Which run and experiment a risk
logs into: :func:`training_run`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from features.cells import neutralise_frame
from features.io import load_policy_book, policy_file_text, read_frame, read_tables
from features.policy import PolicyBook
from features.risks import RISKS
from features.tables import Tables
from models import run_artifacts as artifacts
from models.bands import BandRule
from models.drift import seasonal_references
from models.risk_model import RiskModel
from models.schema import FeatureSchema
from training.card import CardFacts, to_html, to_markdown
from training.dataset import LABEL_DAYS, Split, build_snapshots, data_span, plan_split, relabel
from training.fairness import Fairness, model_fairness, plot_tpr
from training.feedback import FeedbackLabels, with_feedback
from training.fit import fit_risk_model
from training.promote import CHAMPION, Bounds, Decision, Evidence, arrival_alias, decide
from training.registry import log_and_register, log_evidence
from training.report import RULE_LABELS, evaluate_period

log = logging.getLogger(__name__)

EXPERIMENT = "relief-risk"


class TooFewFindings(ValueError):
    """The data holds too few findings of a risk to train and validate a model of it."""


SEASONAL_ROWS = 50_000  # households per calendar month's drift reference (deciles: a sample is plenty)


def _seasonal(model: RiskModel, dated: Sequence[tuple[pd.Timestamp, pd.DataFrame]], seed: int) -> list[dict]:
    """A drift reference per calendar month the snapshots cover (models.drift.seasonal_references),
    the test and validation periods' first (scores the model did not train on), then training's."""
    frames = []
    for t, frame in dated:
        part = frame.sample(n=min(SEASONAL_ROWS, len(frame)), random_state=seed) if len(frame) else frame
        x = model.matrix(part)
        frames.append((str(t.date()), x, model.calibrator.transform(model.raw_score(x))))
    return seasonal_references(frames, model.schema.ids)


@dataclass
class TrainConfig:
    """``alias``: ``"champion"`` (the default) registers the version and lets it contest: it becomes
    the champion at once only if none exists; otherwise it is registered as ``challenger`` and the
    promotion gate (``training/promote.py``, bounds ``gate``) decides whether ``champion`` moves to it.
    Any other alias (e.g. ``"candidate"``) registers under that alias without contesting; None logs the
    run without registering. Either way the run logs its fairness table and model card. ``experiment``
    names the run's MLflow experiment outside ``mlflow run``; inside, the run is the one ``mlflow run``
    opened, in its experiment (:func:`training_run`)."""

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
    gate: Bounds = field(default_factory=Bounds)
    feedback: FeedbackLabels | None = None  # caseworkers' feedback, read by the caller: joins the labels


PROJECT_RUN_ENV = "MLFLOW_RUN_ID"  # set by `mlflow run` for the entry point's process: the run it opened


def _resume_project_run(run_name: str | None = None) -> contextlib.AbstractContextManager[Run]:
    """The run ``mlflow run`` opened (``MLFLOW_RUN_ID``), resumed in its own experiment. MLflow refuses
    to resume it after ``set_experiment`` named another ("active experiment ID does not match
    environment run ID"), so the active experiment becomes the run's, whatever ``--experiment-name``
    said. The variable is consumed (as MLflow's own ``start_run`` does), so a later run is a new one."""
    run_id = os.environ.pop(PROJECT_RUN_ENV)
    mlflow.set_experiment(experiment_id=MlflowClient().get_run(run_id).info.experiment_id)
    return mlflow.start_run(run_id=run_id, run_name=run_name)


@contextlib.contextmanager
def training_run(experiment: str, run_name: str) -> Iterator[Run]:
    """The run one risk logs into:

    - under an active run (``train_all`` under ``mlflow run``, or a caller's own run): a child run of
      it, in its experiment;
    - in an entry point of ``mlflow run`` (``MLFLOW_RUN_ID`` set): that run, in its experiment;
    - otherwise: a new run in ``experiment`` (created if missing).
    """
    active = mlflow.active_run()
    if active is not None:
        cm = mlflow.start_run(run_name=run_name, experiment_id=active.info.experiment_id, nested=True)
    elif os.environ.get(PROJECT_RUN_ENV):
        cm = _resume_project_run(run_name)
    else:
        mlflow.set_experiment(experiment)
        cm = mlflow.start_run(run_name=run_name)
    with cm as run:
        yield run


@contextlib.contextmanager
def _parent_run(risks: Sequence[str]) -> Iterator[None]:
    """In an entry point of ``mlflow run``, the run it opened becomes the parent of each risk's run
    (each risk keeps a run of its own, in that run's experiment); otherwise nothing."""
    if mlflow.active_run() is None and os.environ.get(PROJECT_RUN_ENV):
        with _resume_project_run():
            mlflow.set_tags({"stage": "train", "risks": ",".join(risks)})
            yield
    else:
        yield


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    version: str | None
    metrics: dict[str, float]
    comparison: pd.DataFrame
    timings: dict[str, float]
    fairness: Fairness | None = None
    decision: Decision | None = None


def data_fingerprint(data_dir: str) -> dict[str, Any]:
    """Names, sizes and a hash of the raw files: which snapshot of the data this run saw."""
    files = sorted(p for p in Path(data_dir).iterdir() if p.suffix in (".parquet", ".csv"))
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return {"files": {p.name: p.stat().st_size for p in files}, "sha256": h.hexdigest()}


@dataclass
class Prepared:
    """The data read and the feature snapshots built once, labelled for ``risk``."""

    data_dir: str
    policy_path: str | None
    policy: PolicyBook
    tables: Tables
    truth: pd.DataFrame | None
    first: pd.Timestamp
    last: pd.Timestamp
    split: Split
    snaps: pd.DataFrame
    risk: str
    timings: dict[str, float]
    feedback: dict[str, int] = field(default_factory=dict)
    feedback_source: str | None = None

    def for_risk(self, risk: str) -> Prepared:
        if risk == self.risk:
            return self
        return replace(self, snaps=relabel(self.snaps, self.tables.verifications, risk, self.truth), risk=risk)


def _source(config: TrainConfig) -> str | None:
    return None if config.feedback is None else config.feedback.source


def prepare(config: TrainConfig) -> Prepared:
    """Reads ``config.data_dir`` and builds the snapshots of the split, labelled for ``config.risk``."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    policy = load_policy_book(config.policy_path)
    tables = read_tables(config.data_dir, policy=policy)
    truth = read_frame(config.data_dir, "truth")
    feedback: dict[str, int] = {}
    if config.feedback is not None:
        merged = with_feedback(tables, config.feedback.rows)
        tables = merged.tables
        feedback = {"feedback_rows": merged.feedback_rows, "feedback_added": merged.added,
                    "feedback_unknown_households": merged.unknown_households}
        log.info("feedback: %s", feedback)
    timings["read_s"] = time.perf_counter() - t0

    first, last = data_span(tables)
    split = plan_split(first, last)
    t0 = time.perf_counter()
    snaps = build_snapshots(tables, [*split.train, split.validation, split.test], policy, config.risk, truth,
                            progress=config.progress)
    timings["features_s"] = time.perf_counter() - t0
    return Prepared(data_dir=config.data_dir, policy_path=config.policy_path, policy=policy, tables=tables,
                    truth=truth, first=first, last=last, split=split, snaps=snaps, risk=config.risk, timings=timings,
                    feedback=feedback, feedback_source=_source(config))


def train(config: TrainConfig, prepared: Prepared | None = None) -> TrainResult:
    """Trains, evaluates, logs and registers the model of ``config.risk``; ``prepared`` (from
    :func:`prepare` on the same data folder and policy) saves reading and building the snapshots again."""
    if prepared is None:
        prepared = prepare(config)
    elif ((Path(prepared.data_dir).resolve(), prepared.policy_path, prepared.feedback_source)
          != (Path(config.data_dir).resolve(), config.policy_path, _source(config))):
        raise ValueError(f"prepared from {prepared.data_dir} (policy {prepared.policy_path}, feedback "
                         f"{prepared.feedback_source}), asked to train on {config.data_dir} (policy "
                         f"{config.policy_path}, feedback {_source(config)})")
    t0 = time.perf_counter()
    prepared = prepared.for_risk(config.risk)
    timings = {**prepared.timings, "relabel_s": time.perf_counter() - t0}
    policy, split, snaps, first, last = prepared.policy, prepared.split, prepared.snaps, prepared.first, prepared.last
    train_df = snaps.loc[snaps["as_of"].isin(split.train)]
    val_df = snaps.loc[snaps["as_of"] == split.validation]
    test_df = snaps.loc[snaps["as_of"] == split.test]
    if train_df["label"].sum() < 10 or val_df["label"].sum() < 5:
        raise TooFewFindings(f"too few {config.risk} findings to train: {int(train_df['label'].sum())} in training, "
                             f"{int(val_df['label'].sum())} in validation; generate a larger city")

    schema = FeatureSchema.for_risk(config.risk)
    t0 = time.perf_counter()
    bands = BandRule.load(config.policy_path)
    model, facts = fit_risk_model(config.risk, schema, train_df, val_df, bands=bands, seed=config.seed,
                                  num_boost_round=config.num_boost_round,
                                  early_stopping_rounds=config.early_stopping_rounds, params=config.lgbm)
    timings["fit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = evaluate_period(model, test_df, split.test, policy, config.capacity, seed=config.seed)
    # drift references, one per calendar month, the test period's first: it is also the default reference
    # (the latest period, the population the model meets next)
    references = _seasonal(model, [(split.test, test_df), (split.validation, val_df)]
                           + [(t, train_df.loc[train_df["as_of"] == t]) for t in reversed(split.train)], config.seed)
    reference = next(r["profile"] for r in references if r["as_of"] == str(split.test.date()))
    report.metrics |= {"train_rows": float(len(train_df)), "train_positives": float(train_df["label"].sum()),
                       "best_iteration": float(facts["best_iteration"])}
    b = config.gate
    fairness = model_fairness(model, test_df, n_boot=b.n_boot, seed=b.seed, min_positives=b.min_group_positives,
                              min_households=b.min_group_households)
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dates = {"train": [str(t.date()) for t in split.train], "validation": str(split.validation.date()),
             "test": str(split.test.date())}
    with training_run(config.experiment, f"{config.risk}-{split.test.date()}") as run:
        mlflow.set_tags({"risk": config.risk, "stage": "train"})
        mlflow.log_params({
            "risk": config.risk, "capacity": config.capacity, "seed": config.seed, "label_days": LABEL_DAYS,
            "train_as_of": ",".join(dates["train"]), "validation_as_of": dates["validation"],
            "test_as_of": dates["test"], "policy_version_test": policy.at(split.test.date()).version,
            **prepared.feedback,
            **{f"lgbm_{k}": v for k, v in facts["params"].items() if k != "monotone_constraints"},
        })
        for i, (auc, loss) in enumerate(zip(facts["validation_curve"]["auc"],
                                            facts["validation_curve"]["binary_logloss"], strict=True)):
            mlflow.log_metrics({"validation_auc": auc, "validation_logloss": loss}, step=i)
        snapshot_facts = {"data_dir": Path(config.data_dir).resolve().name, **data_fingerprint(config.data_dir),
                          "span": [str(first.date()), str(last.date())], "split": dates,
                          "rows": {"train": len(train_df), "validation": len(val_df), "test": len(test_df)}}
        log_evidence(report, schema_json=schema.to_json(), policy_text=policy_file_text(config.policy_path),
                     snapshot=snapshot_facts)
        model.meta.update({"trained_at_run": run.info.run_id, "test_as_of": dates["test"],
                           "policy_version": policy.latest.version, "reference": reference,
                           "references": references})
        mlflow.log_dict(reference, artifacts.DRIFT_REFERENCE)
        mlflow.log_dict(references, artifacts.DRIFT_REFERENCES)
        _log_fairness(fairness, f"{config.risk} 各组召回率（{dates['test']}）")
        cmp, best = report.comparison, report.best_rule
        client = MlflowClient()
        version = log_and_register(model, test_df[schema.ids].head(5),
                                   alias=arrival_alias(client, config.risk, config.alias), description=(
            f"{config.risk}: trained on {len(train_df)} household-snapshots, tested on {dates['test']}; recall at "
            f"{config.capacity:.0%} capacity {cmp.loc['model', 'recall']:.3f} vs best rule {best} "
            f"{cmp.loc[best, 'recall']:.3f}."))
        decision = None
        if version is not None and config.alias == CHAMPION:
            decision = decide(client, config.risk, version, Evidence(test_df, split.test, config.capacity), b,
                              model=model, fairness=fairness)
        card = CardFacts(risk=config.risk, version=version, run_id=run.info.run_id, capacity=config.capacity,
                         flag_threshold=model.thresholds.flag, flag_share=model.thresholds.capacity,
                         cause=None if model.cause is None else model.cause.label, policy_version=policy.latest.version,
                         snapshot=snapshot_facts, metrics=report.metrics, comparison=cmp,
                         truth_comparison=report.truth_comparison, rules=RULE_LABELS, fairness=fairness,
                         decision=decision)
        mlflow.log_text(to_markdown(card), artifacts.MODEL_CARD_MD)
        mlflow.log_text(to_html(card), artifacts.MODEL_CARD_HTML)
        if version is not None:
            client.set_model_version_tag(config.risk, version, "model_card",
                                         f"runs:/{run.info.run_id}/{artifacts.MODEL_CARD_MD}")
        timings["mlflow_s"] = time.perf_counter() - t0
        mlflow.log_metrics({f"timing_{k}": v for k, v in timings.items()})
    log.info("trained %s: run %s, version %s", config.risk, run.info.run_id, version)
    return TrainResult(run_id=run.info.run_id, model_name=config.risk, version=version, metrics=report.metrics,
                       comparison=report.comparison, timings=timings, fairness=fairness, decision=decision)


@dataclass
class TrainAllResult:
    results: dict[str, TrainResult]
    skipped: dict[str, str]  # risk -> why it could not be trained (too few findings)


def train_all(config: TrainConfig, risks: Sequence[str] = RISKS) -> TrainAllResult:
    """:func:`train` for each of ``risks`` (``config`` with its risk replaced), on one read of the data
    and one set of snapshots, each in a run of its own (under ``mlflow run``, children of the run it
    opened). A risk with too few findings is skipped and said so; any other error stops."""
    unknown = [r for r in risks if r not in RISKS]
    if unknown or not risks or len(set(risks)) != len(risks):
        raise ValueError(f"risks must be distinct, among {', '.join(RISKS)}; got {list(risks)}")
    prepared = prepare(replace(config, risk=risks[0]))
    results: dict[str, TrainResult] = {}
    skipped: dict[str, str] = {}
    with _parent_run(risks):
        for risk in risks:
            try:
                results[risk] = train(replace(config, risk=risk), prepared)
            except TooFewFindings as exc:
                log.warning("%s", exc)
                skipped[risk] = str(exc)
    return TrainAllResult(results=results, skipped=skipped)


def _log_fairness(fairness: Fairness, title: str) -> None:
    """The group table, the gaps by column, the summary metrics and the TPR plot, under ``fairness/``."""
    mlflow.log_text(neutralise_frame(fairness.table).to_csv(index=False), artifacts.FAIRNESS_GROUPS)  # text, never
    mlflow.log_text(neutralise_frame(fairness.gaps).to_csv(index=False), artifacts.FAIRNESS_GAPS)    # a formula
    mlflow.log_metrics(fairness.summary)
    fig = plot_tpr(fairness, title)
    mlflow.log_figure(fig, artifacts.FAIRNESS_TPR_PLOT)
    plt.close(fig)


def describe(result: TrainResult) -> str:
    return json.dumps({"run_id": result.run_id, "model": result.model_name, "version": result.version,
                       "timings": result.timings,
                       "promotion": ({"promote": result.decision.promote, "reasons": result.decision.reasons}
                                     if result.decision else None), **{k: v for k, v in result.metrics.items()
                                                     if k.startswith(("test_model", "truth_model"))}},
                      indent=2, default=float)
