"""Rolling-origin backtest of the five risk models against today's rules (issue #12, item 5).

For each city seed (never used while tuning: the demo and the tests use 0 and 7), one synthetic city
is generated (or reused from ``--data-root``), its point-in-time snapshots are built once for every
date any origin needs, and for each of K origins the data's end is cut ``k × step`` months earlier:
``training.dataset.plan_split(first, cut)`` gives that origin's training, validation and test dates,
so each origin learns only from label windows that closed before its validation date, and its test
window closes by the cut. For each origin and risk a model is fitted on the training snapshots
(early stopping and calibration on validation), and the test households are ranked by the model
and by each of today's rules (``training.rules``); at 2% capacity each scorer's recall is measured
against the latent truth (``truth``: in hardship in the next 6 months) and the verified labels
(``label``: a visit found it in the next 180 days).

The rule the model is compared with is the one with the best recall on the origin's VALIDATION
snapshot (against the same target), so the comparison never selects on the test period; the rule
best on the test period itself is reported beside it (the harder comparison).

Intervals: a household bootstrap. Each draw resamples the households of a city with replacement,
the same draw for all of that city's test periods (a household appears in every period, and the
6-month windows of neighbouring origins overlap, so the periods of one city are not independent),
and independently across cities. In every draw each scorer's top ``ceil(capacity × n)`` of the
resampled period is taken again (ties broken by the original order), so recall at capacity,
the best rule's recall and their ratio are recomputed per draw; 95% percentile intervals. Pooled:
per draw, found and positives are summed over all periods (seeds × origins) and the ratio is
Σ found by the model / Σ found by the rule.

Label variants (issue #12 item 3: propensity-weighted labels) plug in as a :class:`Variant`:
``weights_for(train_df)`` gives per-row training weights (None: unweighted) and ``fit`` fits with
them; the default fits ``training.fit.fit_risk_model`` and refuses weights, which it does not take.

Run (the full backtest; ``--quick`` for a smoke run on one small city)::

    PYTHONPATH=$PWD .venv/bin/python experiments/backtest.py
    PYTHONPATH=$PWD .venv/bin/python experiments/backtest.py --quick --no-mlflow

The ceiling beside it (models trained on the latent truth, which no bureau has; illness only)::

    PYTHONPATH=$PWD .venv/bin/python experiments/backtest.py --variant truth-labels --risks illness_poverty \
        --compare experiments/backtest.json --out experiments/backtest_ceiling

Writes ``<out>.md``, ``<out>.json`` and ``<out>.png`` (``--out``, default ``experiments/backtest``)
and logs one MLflow run in the experiment ``relief-risk-backtest`` (tracking URI from
``MLFLOW_TRACKING_URI``, else MLflow's default in the working folder, as training does).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from features.io import load_policy_book, read_frame, read_tables, write_tables
from features.policy import PolicyBook
from features.risks import RISK_LABELS, RISKS
from features.tables import Tables
from models.risk_model import RiskModel
from models.schema import FeatureSchema
from training import evaluate as ev
from training.dataset import LABEL_DAYS, Split, build_snapshots, data_span, plan_split, relabel
from training.fit import fit_risk_model
from training.rules import rule_scores

log = logging.getLogger("backtest")

EXPERIMENT = "relief-risk-backtest"
TARGETS = ("truth", "label")  # the latent truth (headline) and the verified labels
CAPACITY = 0.02
DEFAULTS = {"households": 40_000, "months": 48, "end_month": "2026-10", "seeds": (101, 102, 103), "origins": 4,
            "step_months": 3, "n_boot": 1000}
QUICK = {"households": 6_000, "seeds": (101,), "n_boot": 200}
ILLNESS = "illness_poverty"
ILLNESS_TARGET = 1.5


# ---- cities --------------------------------------------------------------------------------------
def city_folder(root: str | Path, households: int, months: int, end_month: str, seed: int) -> Path:
    return Path(root) / f"city-h{households}-m{months}-e{end_month}-s{seed}"


def ensure_city(root: str | Path, households: int, months: int, end_month: str, seed: int,
                progress: bool = True) -> tuple[Path, float]:
    """The city's folder under ``root``, generated unless a complete one is there (``city.json``
    is written last); returns the folder and the seconds generation took (0 when reused)."""
    from synthcity import generate_city

    out = city_folder(root, households, months, end_month, seed)
    marker = out / "city.json"
    if marker.exists():
        return out, 0.0
    t0 = time.perf_counter()
    city = generate_city(households, end_month=end_month, n_months=months, seed=seed, progress=progress)
    write_tables({**city.tables(), "truth": city.truth}, out)
    seconds = time.perf_counter() - t0
    marker.write_text(json.dumps({"households": households, "months": months, "end_month": end_month, "seed": seed,
                                  "seconds": round(seconds, 1)}), encoding="utf-8")
    return out, seconds


def load_city(folder: str | Path, policy: PolicyBook) -> tuple[Tables, pd.DataFrame]:
    tables = read_tables(folder, policy=policy)
    truth = read_frame(folder, "truth")
    if truth is None:
        raise FileNotFoundError(f"{folder}: no truth table; the backtest needs a synthetic city")
    return tables, truth


# ---- origins -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Origin:
    k: int
    cut: pd.Timestamp  # the data's end for this origin: nothing after it is used
    split: Split

    @property
    def dates(self) -> list[pd.Timestamp]:
        return [*self.split.train, self.split.validation, self.split.test]


def plan_origins(first: pd.Timestamp, last: pd.Timestamp, origins: int, step_months: int) -> list[Origin]:
    """Origin k cuts the data at ``last − k × step_months`` months and splits what is left with
    :func:`plan_split`, the training pipeline's own split."""
    out = []
    for k in range(origins):
        cut = last - pd.DateOffset(months=k * step_months)
        out.append(Origin(k=k, cut=cut, split=plan_split(first, cut)))
    return out


def lookahead_problems(origin: Origin) -> list[str]:
    """Where an origin's label windows (T, T + LABEL_DAYS] would reach a later split or past its cut."""
    window = pd.Timedelta(days=LABEL_DAYS)
    s, problems = origin.split, []
    problems += [f"train {t.date()} window reaches validation {s.validation.date()}"
                 for t in s.train if t + window > s.validation]
    problems += [f"train {t.date()} window reaches the test period" for t in s.train if t + window > s.test]
    if s.validation + window > s.test:
        problems.append(f"validation {s.validation.date()} window reaches test {s.test.date()}")
    if s.test + window > origin.cut:
        problems.append(f"test {s.test.date()} window passes the cut {origin.cut.date()}")
    return problems


def snapshot_dates(origins: Sequence[Origin]) -> list[pd.Timestamp]:
    return sorted({t for o in origins for t in o.dates})


# ---- employment as of each date -------------------------------------------------------------------
EMPLOYMENT = ("as_of", "latest")


def city_snapshots(tables: Tables, truth: pd.DataFrame, dates: Sequence[pd.Timestamp], policy: PolicyBook,
                   risk: str, employment: str = "as_of", progress: bool = False) -> pd.DataFrame:
    """:func:`training.dataset.build_snapshots` over ``dates``; with ``employment="as_of"`` each
    date's features read the employment status as of that date (``training.dataset.employment_as_of``,
    what ``relief-risk train`` does), with ``"latest"`` the persons table as it is (a sensitivity run:
    what training read before)."""
    if employment not in EMPLOYMENT:
        raise ValueError(f"employment must be one of {EMPLOYMENT}, got {employment!r}")
    return build_snapshots(tables, list(dates), policy, risk, truth, progress=progress,
                           employment_at_date=employment == "as_of")


# ---- variants: how a model is fitted -------------------------------------------------------------
FitFn = Callable[[str, pd.DataFrame, pd.DataFrame, int, "np.ndarray | None", dict], RiskModel]


def fit_lgbm(risk: str, train: pd.DataFrame, validation: pd.DataFrame, seed: int, weights: np.ndarray | None,
             options: dict) -> RiskModel:
    """``training.fit.fit_risk_model`` as the service trains it. It takes ``capacity=`` (the flag
    threshold) or, in newer versions, the band rule ``bands=`` (left at its default); neither
    changes the ranking the backtest measures. It takes no weights: a weighted variant needs a
    fit of its own."""
    if weights is not None:
        raise NotImplementedError("fit_risk_model takes no sample weights; give the variant a fit that does")
    kwargs: dict[str, Any] = {"seed": seed, **options}
    if "capacity" in inspect.signature(fit_risk_model).parameters:
        kwargs["capacity"] = CAPACITY
    model, facts = fit_risk_model(risk, FeatureSchema.for_risk(risk), train, validation, **kwargs)
    model.meta["best_iteration"] = int(facts["best_iteration"])
    return model


def no_weights(train: pd.DataFrame) -> np.ndarray | None:
    return None


def fit_on_truth(risk: str, train: pd.DataFrame, validation: pd.DataFrame, seed: int, weights: np.ndarray | None,
                 options: dict) -> RiskModel:
    """The ceiling, not a model to deploy: :func:`fit_lgbm` with the latent truth as the label, in
    training and in validation (early stopping, calibration). No bureau has the truth; what this finds
    is as much as these features, settings and monotone constraints can find when the labels carry no
    visit bias at all, so the gap to it is what any label correction could still win."""
    return fit_lgbm(risk, train.assign(label=train["truth"]), validation.assign(label=validation["truth"]), seed,
                    weights, options)


@dataclass(frozen=True)
class Variant:
    """A way of training: ``weights_for(train_df)`` → per-row weights or None, and ``fit`` with them."""

    name: str = "verified-labels"
    weights_for: Callable[[pd.DataFrame], np.ndarray | None] = no_weights
    fit: FitFn = fit_lgbm
    about: str = "trained on the verified labels (visits' findings), as the service trains"  # for the report
    zh: str = "以核实标签训练"  # for the plot's legend
    ceiling: bool = False  # trained on what no bureau has: a yardstick, never a model


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant(),
    Variant("truth-labels", fit=fit_on_truth, ceiling=True, zh="以潜在真值训练",
            about="trained on the latent truth itself: the ceiling of these features and settings, which no "
                  "bureau can train"),
)}


def variant_of(name: str) -> Variant:
    """The variant a report names; one not in :data:`VARIANTS` (plugged in by code) is described by its name."""
    return VARIANTS.get(name) or Variant(name, about=f"trained as the variant `{name}`", zh=name)


def model_scores(model: RiskModel, frame: pd.DataFrame) -> np.ndarray:
    """The model's ranking: ``RiskModel.priority`` where it exists (households without the risk's
    cause last, as the worklist takes them), else the calibrated probability."""
    x = model.matrix(frame[model.schema.ids])
    if hasattr(model, "priority"):
        return np.asarray(model.priority(x), dtype="float64")
    return np.asarray(model.calibrator.transform(model.raw_score(x)), dtype="float64")


# ---- one origin, one risk ------------------------------------------------------------------------
@dataclass
class Period:
    """One test period (city seed × origin × risk): targets, scores and the rule chosen on validation."""

    seed: int
    k: int
    risk: str
    origin: Origin
    households: pd.Index
    y: dict[str, np.ndarray]                  # target -> 0/1 per test household
    scores: dict[str, np.ndarray]             # "model", "rule:<name>" -> score per test household
    validation_recall: dict[str, dict[str, float]]  # target -> scorer -> recall on the validation snapshot
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def rules(self) -> list[str]:
        return [s for s in self.scores if s != "model"]

    def best_rule_on_validation(self, target: str) -> str:
        r = self.validation_recall[target]
        return max(self.rules, key=lambda s: (np.nan_to_num(r[s], nan=-1.0), -self.rules.index(s)))

    def point(self, target: str) -> dict[str, dict[str, float]]:
        return {s: ev.at_capacity(self.y[target], v, CAPACITY) for s, v in self.scores.items()}

    def best_rule_on_test(self, target: str) -> str:
        p = self.point(target)
        return max(self.rules, key=lambda s: (np.nan_to_num(p[s]["recall"], nan=-1.0), -self.rules.index(s)))


def scorers(model: RiskModel, frame: pd.DataFrame, as_of: pd.Timestamp, policy: PolicyBook,
            risk: str) -> dict[str, np.ndarray]:
    rules = rule_scores(frame[model.schema.ids], as_of, policy, risk)
    return {"model": model_scores(model, frame), **{f"rule:{c}": rules[c].to_numpy() for c in rules.columns}}


def run_origin(snaps: pd.DataFrame, origin: Origin, risk: str, policy: PolicyBook, variant: Variant, *, seed: int,
               city_seed: int, fit_options: dict | None = None) -> Period:
    """Fits ``risk`` on the origin's training snapshots of ``snaps`` (labelled for ``risk``) and
    scores its validation and test households with the model and the rules."""
    s = origin.split
    train_df = snaps.loc[snaps["as_of"].isin(s.train)]
    val_df = snaps.loc[snaps["as_of"] == s.validation]
    test_df = snaps.loc[snaps["as_of"] == s.test]
    t0 = time.perf_counter()
    model = variant.fit(risk, train_df, val_df, seed, variant.weights_for(train_df), dict(fit_options or {}))
    fit_s = time.perf_counter() - t0
    val_scores = scorers(model, val_df, s.validation, policy, risk)
    validation_recall = {t: {n: ev.at_capacity(val_df[t].to_numpy(), v, CAPACITY)["recall"]
                             for n, v in val_scores.items()} for t in TARGETS}
    return Period(
        seed=city_seed, k=origin.k, risk=risk, origin=origin, households=test_df.index,
        y={t: test_df[t].to_numpy().astype("int8") for t in TARGETS},
        scores=scorers(model, test_df, s.test, policy, risk), validation_recall=validation_recall,
        facts={"train_rows": len(train_df), "train_label_positives": int(train_df["label"].sum()),
               "validation_label_positives": int(val_df["label"].sum()),
               "best_iteration": model.meta.get("best_iteration"), "fit_s": round(fit_s, 2)})


# ---- the bootstrap -------------------------------------------------------------------------------
def taken_at_capacity(counts: np.ndarray, order: np.ndarray, capacity: float) -> np.ndarray:
    """How many copies of each household (columns in ``order``) a scorer's top ``ceil(capacity × n)``
    of each resample takes. ``counts`` (draws × households): how often each household is drawn;
    ``order``: the households by the scorer's ranking (ties by position). The copies of a household
    are adjacent in that order, so the top k take whole households down the order and part of the
    copies of the one where k is reached."""
    c = np.atleast_2d(counts)[:, order]
    n = c.sum(axis=1, keepdims=True)
    k = np.maximum(1, np.ceil(capacity * n)).astype(np.int64)  # as training.evaluate.top_k_mask
    before = np.cumsum(c, axis=1) - c
    return np.clip(k - before, 0, c)


def found_at_capacity(counts: np.ndarray, y: np.ndarray, order: np.ndarray, capacity: float) -> np.ndarray:
    """Findings among a scorer's top ``ceil(capacity × n)`` of each resample (one per row of
    ``counts``); with every count 1 this is :func:`training.evaluate.at_capacity`'s ``found``."""
    return taken_at_capacity(counts, order, capacity) @ np.asarray(y)[order].astype(np.int64)


def ranking_order(score: np.ndarray) -> np.ndarray:
    """The order :func:`training.evaluate.top_k_mask` takes: by score descending, ties by position."""
    return np.lexsort((np.arange(len(score)), -np.asarray(score, dtype="float64")))


@dataclass
class Draws:
    """Per period, per draw: positives and found per scorer, per target."""

    positives: dict[str, np.ndarray]            # target -> (B,)
    found: dict[str, dict[str, np.ndarray]]     # target -> scorer -> (B,)


def bootstrap_city(periods: Sequence[Period], n_boot: int, seed: Sequence[int], chunk: int = 100,
                   progress: bool = False) -> list[Draws]:
    """Resamples the households of one city (the same draw for all ``periods``, which must be the
    city's) ``n_boot`` times; returns each period's draws in order."""
    universe = pd.Index(sorted(set().union(*(p.households for p in periods))))
    rng = np.random.default_rng(list(seed))
    cols = [universe.get_indexer(p.households) for p in periods]
    orders = [{s: ranking_order(v) for s, v in p.scores.items()} for p in periods]
    out = [Draws(positives={t: np.zeros(n_boot, np.int64) for t in TARGETS},
                 found={t: {s: np.zeros(n_boot, np.int64) for s in p.scores} for t in TARGETS}) for p in periods]
    n = len(universe)
    for start in tqdm(range(0, n_boot, chunk), desc="bootstrap", unit="chunk", disable=not progress, leave=False):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b)[:, None] * n)
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        for p, col, order, d in zip(periods, cols, orders, out, strict=True):
            c = counts[:, col]
            for t in TARGETS:
                d.positives[t][start:start + b] = c @ p.y[t].astype(np.int64)
            for s in p.scores:
                taken = taken_at_capacity(c, order[s], CAPACITY)
                for t in TARGETS:
                    d.found[t][s][start:start + b] = taken @ p.y[t][order[s]].astype(np.int64)
    return out


def interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (sample values, no interpolation: a ratio can be infinite in a draw)."""
    x = np.asarray(x, dtype="float64")
    x = x[~np.isnan(x)]
    if not len(x):
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(x, [a, 1 - a], method="inverted_cdf")
    return float(lo), float(hi)


def _div(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(b) > 0, np.asarray(a, dtype="float64") / np.maximum(np.asarray(b), 1),
                        np.where(np.asarray(a) > 0, np.inf, np.nan))


def summarise(found_model: Sequence[float], found_rule: Sequence[float], positives: Sequence[float],
              boot_model: np.ndarray, boot_rule: np.ndarray, boot_pos: np.ndarray) -> dict[str, Any]:
    """Point estimates (sums over the given periods) and intervals (the draws' sums)."""
    fm, fr, pos = float(np.sum(found_model)), float(np.sum(found_rule)), float(np.sum(positives))
    return {
        "positives": int(pos), "model_found": int(fm), "rule_found": int(fr),
        "model_recall": float(_div(fm, pos)), "model_recall_ci": interval(_div(boot_model, boot_pos)),
        "rule_recall": float(_div(fr, pos)), "rule_recall_ci": interval(_div(boot_rule, boot_pos)),
        "ratio": float(_div(fm, fr)), "ratio_ci": interval(_div(boot_model, boot_rule)),
    }


def period_figures(p: Period, d: Draws) -> dict[str, Any]:
    s = p.origin.split
    row: dict[str, Any] = {
        "seed": p.seed, "origin": p.k, "risk": p.risk, "cut": str(p.origin.cut.date()),
        "train_as_of": [str(t.date()) for t in s.train], "validation_as_of": str(s.validation.date()),
        "test_as_of": str(s.test.date()), "households": len(p.households), **p.facts, "targets": {}}
    for t in TARGETS:
        point = p.point(t)
        chosen, on_test = p.best_rule_on_validation(t), p.best_rule_on_test(t)
        fig = summarise([point["model"]["found"]], [point[chosen]["found"]], [p.y[t].sum()],
                        d.found[t]["model"], d.found[t][chosen], d.positives[t])
        fig |= {"best_rule": chosen, "validation_recall": p.validation_recall[t],
                "recall": {sc: point[sc]["recall"] for sc in point},
                "best_rule_on_test": on_test, "ratio_to_best_on_test": float(_div(point["model"]["found"],
                                                                                  point[on_test]["found"]))}
        row["targets"][t] = fig
    return row


def _pool(pairs: Sequence[tuple[Period, Draws]], target: str, rules: Sequence[str]) -> dict[str, Any]:
    """The model against ``rules`` (one per period), summed over ``pairs``."""
    points = [p.point(target) for p, _ in pairs]
    return summarise([pt["model"]["found"] for pt in points],
                     [pt[r]["found"] for pt, r in zip(points, rules, strict=True)],
                     [p.y[target].sum() for p, _ in pairs],
                     sum(d.found[target]["model"] for _, d in pairs),
                     sum(d.found[target][r] for (_, d), r in zip(pairs, rules, strict=True)),
                     sum(d.positives[target] for _, d in pairs))


def pooled_figures(periods: Sequence[Period], draws: Sequence[Draws], risk: str) -> dict[str, Any]:
    """Σ over the risk's periods (all seeds and origins) of found and positives, per draw."""
    pairs = [(p, d) for p, d in zip(periods, draws, strict=True) if p.risk == risk]
    out: dict[str, Any] = {"periods": len(pairs), "households": int(sum(len(p.households) for p, _ in pairs))}
    for t in TARGETS:
        chosen = [p.best_rule_on_validation(t) for p, _ in pairs]
        harder = _pool(pairs, t, [p.best_rule_on_test(t) for p, _ in pairs])
        out[t] = _pool(pairs, t, chosen) | {
            "best_rules": dict(Counter(chosen).most_common()),
            "vs_best_on_test": {k: harder[k] for k in ("rule_recall", "rule_recall_ci", "ratio", "ratio_ci")}}
    return out


# ---- the whole run -------------------------------------------------------------------------------
@dataclass
class Config:
    households: int = DEFAULTS["households"]
    months: int = DEFAULTS["months"]
    end_month: str = DEFAULTS["end_month"]
    seeds: tuple[int, ...] = DEFAULTS["seeds"]
    origins: int = DEFAULTS["origins"]
    step_months: int = DEFAULTS["step_months"]
    n_boot: int = DEFAULTS["n_boot"]
    boot_seed: int = 12
    fit_seed: int = 0
    risks: tuple[str, ...] = RISKS
    employment: str = "as_of"  # the persons' employment as of each snapshot date, or "latest" (see city_snapshots)
    data_root: str = "data/backtest"
    fit_options: dict = field(default_factory=dict)  # e.g. {"num_boost_round": 60} in the test
    progress: bool = True


def run_city(config: Config, tables: Tables, truth: pd.DataFrame, policy: PolicyBook, city_seed: int,
             variant: Variant, timings: dict[str, float], bar: tqdm | None = None) -> list[Period]:
    first, last = data_span(tables)
    origins = plan_origins(first, last, config.origins, config.step_months)
    for o in origins:
        if problems := lookahead_problems(o):
            raise AssertionError(f"origin {o.k}: {problems}")
    t0 = time.perf_counter()
    snaps = city_snapshots(tables, truth, snapshot_dates(origins), policy, config.risks[0], config.employment,
                           progress=config.progress)
    timings["snapshots_s"] = timings.get("snapshots_s", 0.0) + time.perf_counter() - t0
    periods = []
    for risk in config.risks:
        t0 = time.perf_counter()
        labelled = snaps if risk == config.risks[0] else relabel(snaps, tables.verifications, risk, truth)
        timings["relabel_s"] = timings.get("relabel_s", 0.0) + time.perf_counter() - t0
        for o in origins:
            t0 = time.perf_counter()
            periods.append(run_origin(labelled, o, risk, policy, variant, seed=config.fit_seed, city_seed=city_seed,
                                      fit_options=config.fit_options))
            timings["fit_and_score_s"] = timings.get("fit_and_score_s", 0.0) + time.perf_counter() - t0
            if bar is not None:
                bar.update()
        del labelled
    return periods


def run(config: Config, variant: Variant | None = None) -> dict[str, Any]:
    variant = variant or Variant()
    policy = load_policy_book()
    timings: dict[str, float] = {"generate_s": 0.0, "read_s": 0.0}
    periods: list[Period] = []
    draws: list[Draws] = []
    started = time.perf_counter()
    bar = tqdm(total=len(config.seeds) * len(config.risks) * config.origins, desc="fits", unit="fit",
               disable=not config.progress)
    for s in config.seeds:
        folder, gen_s = ensure_city(config.data_root, config.households, config.months, config.end_month, s,
                                    progress=config.progress)
        timings["generate_s"] += gen_s
        t0 = time.perf_counter()
        tables, truth = load_city(folder, policy)
        timings["read_s"] += time.perf_counter() - t0
        city_periods = run_city(config, tables, truth, policy, s, variant, timings, bar)
        del tables, truth
        t0 = time.perf_counter()
        draws += bootstrap_city(city_periods, config.n_boot, (config.boot_seed, s), progress=config.progress)
        timings["bootstrap_s"] = timings.get("bootstrap_s", 0.0) + time.perf_counter() - t0
        periods += city_periods
    bar.close()
    timings["total_s"] = time.perf_counter() - started
    return assemble(config, variant, periods, draws, timings)


def assemble(config: Config, variant: Variant, periods: Sequence[Period], draws: Sequence[Draws],
             timings: dict[str, float]) -> dict[str, Any]:
    """All figures as one JSON-ready dict: the configuration, the timings, every period, the pools."""
    return {
        "config": {**{k: v for k, v in vars(config).items() if k not in ("progress",)}, "capacity": CAPACITY,
                   "label_days": LABEL_DAYS, "variant": variant.name,
                   "best_rule": "chosen per period on the validation snapshot (recall at capacity, same target)",
                   "interval": "95% percentile, household bootstrap (one draw per city, shared by its periods)"},
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "periods": [period_figures(p, d) for p, d in zip(periods, draws, strict=True)],
        "pooled": {r: pooled_figures(periods, draws, r) for r in config.risks},
    }


# ---- reporting -----------------------------------------------------------------------------------
def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else ("∞" if math.isinf(x) else
                                                                               f"{x:.{digits}f}")


def _ci(fig: dict, key: str, digits: int = 3) -> str:
    lo, hi = fig[f"{key}_ci"]
    return f"{_f(fig[key], digits)} [{_f(lo, digits)}, {_f(hi, digits)}]"


def verdict(risk: str, pooled: dict) -> str:
    """Illness against its 1.5× target, every other risk against its rule, on the truth's interval."""
    f = pooled["truth"]
    ratio, (lo, hi) = f["ratio"], f["ratio_ci"]
    if risk == ILLNESS:
        if lo >= ILLNESS_TARGET:
            return f"reaches {ILLNESS_TARGET}× (the interval's lower bound {_f(lo, 2)} ≥ {ILLNESS_TARGET})"
        if ratio >= ILLNESS_TARGET:
            return (f"the point estimate reaches {ILLNESS_TARGET}× but the interval's lower bound ({_f(lo, 2)}) "
                    "does not: not shown")
        return (f"does NOT reach {ILLNESS_TARGET}×: ratio {_f(ratio, 2)}, lower bound {_f(lo, 2)}"
                + (" (better than the rule, though)" if lo > 1 else ""))
    if lo > 1:
        return f"beats its rule (lower bound {_f(lo, 2)} > 1)"
    if lo == 1:
        return "at least matches its rule (lower bound 1.00: worse in no draw)"
    if ratio >= 1:
        return f"matches its rule within noise (ratio {_f(ratio, 2)} ≥ 1, but the lower bound {_f(lo, 2)} < 1)"
    if hi >= 1:
        return (f"below its rule on the point estimate (ratio {_f(ratio, 2)}); the interval reaches 1 "
                f"({_f(hi, 2)}), so not shown worse")
    return f"WORSE than its rule (ratio {_f(ratio, 2)}, upper bound {_f(hi, 2)} < 1)"


CAVEATS = [
    "Caveats:", "",
    "- Every city comes from the same generator (synthcity, unchanged): this measures the models against the "
    "rules in that world, not in a real one. The seeds differ; the story does not.",
    "- The 6-month windows of neighbouring origins overlap (origins are 3 months apart), so the periods of "
    "one city are not independent; the bootstrap resamples a city's households jointly across its periods for "
    "that reason, so the pooled interval carries that dependence instead of counting K independent tests.",
    "- `employment` in the persons table is the latest known status (a documented synthcity simplification): "
    "a snapshot as of an early date would show a job lost after it, future information that the model of "
    "unemployment poverty (and its rule) would use. By default the backtest rebuilds each date's status: an "
    "`unemployed` person still paid a wage in that month was `employed` then (`employment_as_of`); a person "
    "unemployed at that date but back at work by the end still reads `employed` (information lost, not "
    "leaked). `relief-risk train` does the same (`training.dataset.employment_as_of`); the sensitivity "
    "table above, where present, gives the figures with the latest status, as training read it before.",
]
TRAINED_ON = {  # the last caveat, by whether the run is a ceiling
    False: "- The model is trained on verified labels (visits' findings), never on the truth; the truth is only "
           "the yardstick. Variants (issue #12 item 3, propensity-weighted labels) plug in as `Variant`.",
    True: "- The models of this run are trained on the latent truth (`--variant truth-labels`), which no bureau "
          "has: a ceiling to measure the deployable models against, never one to deploy.",
}


def comparison(other: dict) -> dict[str, Any]:
    """The pooled figures of another run (``--compare``), to show beside this run's."""
    keys = ("positives", "model_recall", "model_recall_ci", "rule_recall", "rule_recall_ci", "ratio", "ratio_ci")
    return {"employment": other["config"].get("employment", "latest"),
            "variant": other["config"].get("variant", "verified-labels"), "mlflow": other.get("mlflow"),
            "config": {k: other["config"][k] for k in ("households", "months", "seeds", "origins", "step_months",
                                                        "n_boot")},
            "pooled": {r: {t: {k: p[t][k] for k in keys} for t in TARGETS} for r, p in other["pooled"].items()}}


def comparison_lines(result: dict) -> list[str]:
    other = result.get("compare")
    if not other:
        return []
    by_variant = other.get("variant", "verified-labels") != result["config"]["variant"]
    key = "variant" if by_variant else "employment"
    mine, theirs = result["config"][key], other[key]
    rows = [(r, _ci(p["truth"], "model_recall"), _ci(other["pooled"][r]["truth"], "model_recall"),
             _ci(p["truth"], "rule_recall"), _ci(other["pooled"][r]["truth"], "rule_recall"),
             f"**{_ci(p['truth'], 'ratio', 2)}**", _ci(other["pooled"][r]["truth"], "ratio", 2))
            for r, p in result["pooled"].items() if r in other["pooled"]]
    same = {k: v for k, v in other["config"].items() if json.loads(json.dumps(result["config"].get(k))) != v}
    run = other.get("mlflow") or {}
    heading = (f"### Beside the compared run: the models' labels (`{mine}` here, `{theirs}` there)"
               if by_variant else
               f"### Sensitivity: the employment status (`{mine}` here, `{theirs}` in the compared run)")
    what = (f"models {variant_of(theirs).about}" if by_variant else
            f"the persons' employment status {EMPLOYMENT_TEXT[theirs]}")
    return [heading, "",
            f"The compared run: the same harness with {what}"
            + (f" (MLflow run `{run['run_id']}`)" if run.get("run_id") else "")
            + (f"; its configuration differs in {json.dumps(same)}" if same else "; the same cities, origins and draws")
            + ". Pooled, against the latent truth:", "",
            *_table(("risk", f"model recall ({mine})", f"model recall ({theirs})", f"rule recall ({mine})",
                     f"rule recall ({theirs})", f"ratio ({mine})", f"ratio ({theirs})"), rows), ""]


EMPLOYMENT_TEXT = {"as_of": "as of each snapshot date",
                   "latest": ("as the latest known (what `relief-risk train` read before it too rebuilt "
                              "each date's status)")}


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [_row(*header), _row(*["---"] * len(header)), *(_row(*r) for r in rows)]


def _rule(name: str) -> str:
    return name.removeprefix("rule:")


def summary_lines(result: dict) -> list[str]:
    """The honest summary: illness against its 1.5× target, every other risk against its rule."""
    pooled = result["pooled"]
    ceiling = variant_of(result["config"]["variant"]).ceiling
    out = []
    for risk, p in pooled.items():
        f = p["truth"]
        lo, hi = f["ratio_ci"]
        rules = ", ".join(_rule(r) for r in f["best_rules"])
        rows = [r["targets"]["truth"] for r in result["periods"] if r["risk"] == risk]
        above = sum(r["ratio_ci"][0] > 1 for r in rows)
        below = sum(r["ratio_ci"][1] < 1 for r in rows)
        who = "the model trained on the truth (the ceiling)" if ceiling else "the model"
        out.append(f"- **{risk}** ({RISK_LABELS[risk]}): at 2% capacity {who} finds {_f(f['model_recall'])} of "
                   f"the households truly in need, the rule chosen on validation ({rules}) "
                   f"{_f(f['rule_recall'])}: ratio **{_f(f['ratio'], 2)}** [{_f(lo, 2)}, {_f(hi, 2)}] over "
                   f"{p['periods']} periods, {f['positives']:,} truth positives. {verdict(risk, p)[0].upper()}"
                   f"{verdict(risk, p)[1:]}. Per period (ratios {_f(min(r['ratio'] for r in rows), 2)} to "
                   f"{_f(max(r['ratio'] for r in rows), 2)}): the interval is above 1 in {above}, "
                   f"below 1 in {below}, of {len(rows)}.")
    return out


def to_markdown(result: dict, plot_name: str | None = None) -> str:
    c, pooled, t = result["config"], result["pooled"], result["timings"]
    ceiling = variant_of(c["variant"]).ceiling
    illness_sizes = [r["targets"]["truth"]["positives"] for r in result["periods"] if r["risk"] == ILLNESS]
    lines = [
        ("# The ceiling: models trained on the latent truth against today's rules (issue #12)"
         if ceiling else
         "# Rolling-origin backtest: the five risk models against today's rules (issue #12, item 5)"), "",
        f"Generated by `experiments/backtest.py`{' --quick (a smoke run)' if c.get('quick') else ''}. Cities of "
        f"{c['households']:,} households over {c['months']} months to {c['end_month']}, seeds "
        f"{', '.join(map(str, c['seeds']))} (never used while tuning: the demo and the tests use 0 and 7); "
        f"{c['origins']} rolling origins {c['step_months']} months apart per city; capacity {c['capacity']:.0%} of "
        f"households per 180 days; {c['n_boot']:,} bootstrap draws; variant `{c['variant']}`; the persons' "
        f"employment status {EMPLOYMENT_TEXT[c['employment']]}"
        + (f"; the smallest illness test period has {min(illness_sizes):,} truth positives" if illness_sizes else "")
        + ".", "",
        "## Summary", "", *summary_lines(result), "",
        "**How to read it.** Recall at capacity: of the households truly in the hardship at some month of the "
        "6 months after the test date (the synthetic city's latent truth), the share a scorer's top 2% holds. "
        "Each origin cuts the data's end `k × step` months earlier and splits what is left with the pipeline's "
        "`plan_split`: training label windows close by the validation date, the validation window by the test "
        "date, the test window by the cut, so no origin learns from anything its test period reveals. The rule "
        "a period compares with is the one with the best recall on that origin's *validation* snapshot (against "
        "the same target), so the test period never picks it; the column \"vs rule best on test\" compares with "
        "the rule best on the test period itself (the harder comparison). Intervals: 95% percentile, household "
        "bootstrap; each draw resamples a city's households once for all its periods (neighbouring origins' "
        "windows overlap and share households), cities independently, and takes each scorer's top 2% again. "
        "Pooled: Σ found / Σ positives over every period of the risk, per draw; the ratio is Σ found by the "
        "model / Σ found by the rule. Positives are household-periods: a household in need at several test "
        "dates counts at each.", "",
    ]
    vt = [(f"{r} ({RISK_LABELS[r]})", p["periods"], f"{p['truth']['positives']:,}", _ci(p["truth"], "model_recall"),
           _ci(p["truth"], "rule_recall"), f"**{_ci(p['truth'], 'ratio', 2)}**",
           _ci(p["truth"]["vs_best_on_test"], "ratio", 2)) for r, p in pooled.items()]
    lines += ["### Pooled, against the latent truth", "",
              *_table(("risk", "periods", "truth positives", "model recall", "rule recall", "ratio",
                       "vs rule best on test"), vt), ""]
    lt = [(r, f"{p['label']['positives']:,}", _ci(p["label"], "model_recall"), _ci(p["label"], "rule_recall"),
           _ci(p["label"], "ratio", 2)) for r, p in pooled.items()]
    lines += ["### Pooled, against the verified labels", "",
              "What visits found in the 180 days after the test date: biased toward what the rules already flag "
              "(their flags trigger visits), so these favour the rules.", "",
              *_table(("risk", "label positives", "model recall", "rule recall", "ratio"), lt), ""]
    if ceiling:
        lines += ["**This run is a ceiling, not a model.** Its models learn from the latent truth, which no bureau "
                  "has (`fit_on_truth`); the rules and the yardstick are the same as the main run's. What it finds "
                  "is as much as the catalogue's features, these LightGBM settings and the monotone constraints "
                  "can find with labels free of any visit bias: the main run's gap to it bounds what a label "
                  "correction could win, and its own ratio what the features allow.", ""]
    lines += comparison_lines(result)
    if plot_name:
        lines += [f"![ratio per origin]({plot_name})", ""]
    lines += ["Wall time on the shared 2-core machine: " + ", ".join(
        f"{k.removesuffix('_s').replace('_', ' ')} {v / 60:.1f} min" if v >= 120 else
        f"{k.removesuffix('_s').replace('_', ' ')} {v:.0f} s" for k, v in t.items())
        + (" (the cities were reused from an earlier run's cache)" if t.get("generate_s") == 0 else "") + ".", "",
        *CAVEATS, TRAINED_ON[ceiling], ""]
    for risk in pooled:
        rows = []
        for r in (r for r in result["periods"] if r["risk"] == risk):
            f, g = r["targets"]["truth"], r["targets"]["label"]
            rows.append((r["seed"], r["test_as_of"], f"{r['households']:,}", f"{f['positives']:,}",
                         _ci(f, "model_recall"), _rule(f["best_rule"]), _ci(f, "rule_recall"), _ci(f, "ratio", 2),
                         f"{g['positives']:,}", _ci(g, "ratio", 2)))
        f, g = pooled[risk]["truth"], pooled[risk]["label"]
        rows.append(("**pooled**", "all", f"{pooled[risk]['households']:,}", f"{f['positives']:,}",
                     _ci(f, "model_recall"), ", ".join(f"{_rule(k)} ×{v}" for k, v in f["best_rules"].items()),
                     _ci(f, "rule_recall"), f"**{_ci(f, 'ratio', 2)}**", f"{g['positives']:,}", _ci(g, "ratio", 2)))
        lines += [f"## {risk} ({RISK_LABELS[risk]})", "",
                  *_table(("seed", "test as of", "households", "truth positives", "model recall", "rule (validation)",
                           "rule recall", "ratio", "label positives", "label ratio"), rows), ""]
    if result["periods"]:
        first = result["periods"][0]
        lines += ["Origins of the first city: " + "; ".join(
            f"{r['origin']}: train {r['train_as_of'][0]} … {r['train_as_of'][-1]} ({len(r['train_as_of'])} "
            f"snapshots), validation {r['validation_as_of']}, test {r['test_as_of']}, cut {r['cut']}"
            for r in result["periods"] if r["seed"] == first["seed"] and r["risk"] == first["risk"]) + ".", ""]
    return "\n".join(lines)


def plot(result: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from features.cjk_font import use_cjk_font

    use_cjk_font()
    risks = list(result["pooled"])
    fig, axes = plt.subplots(1, len(risks), figsize=(max(3.2 * len(risks), 6.4), 3.4), sharey=False, squeeze=False)
    compared = result.get("compare") or {}
    other = compared.get("pooled", {})
    if compared.get("variant", "verified-labels") != result["config"]["variant"]:
        other_name = variant_of(compared["variant"]).zh
    else:
        other_name = {"as_of": "就业状态按各快照日", "latest": "就业状态取最新"}.get(compared.get("employment"),
                                                                                  "对照运行")
    seeds = result["config"]["seeds"]
    for ax, risk in zip(axes[0], risks, strict=True):
        rows = [r for r in result["periods"] if r["risk"] == risk]
        tests = sorted({r["test_as_of"] for r in rows})
        for j, s in enumerate(seeds):
            mine = sorted((r for r in rows if r["seed"] == s), key=lambda r: r["test_as_of"])
            x = np.array([tests.index(r["test_as_of"]) for r in mine]) + (j - (len(seeds) - 1) / 2) * 0.15
            y = np.array([r["targets"]["truth"]["ratio"] for r in mine])
            lo = np.array([r["targets"]["truth"]["ratio_ci"][0] for r in mine])
            hi = np.array([r["targets"]["truth"]["ratio_ci"][1] for r in mine])
            ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], fmt="o", ms=3,
                        capsize=2, label=f"城市种子 {s}")
        p = result["pooled"][risk]["truth"]
        ax.axhspan(*p["ratio_ci"], color="tab:green", alpha=0.15, label="合并 95% 区间")
        ax.axhline(p["ratio"], color="tab:green", lw=1)
        if risk in other:
            q = other[risk]["truth"]
            ax.axhspan(*q["ratio_ci"], color="grey", alpha=0.2, label=f"{other_name}（对照）合并 95% 区间")
            ax.axhline(q["ratio"], color="grey", lw=1)
        ax.axhline(1.0, color="grey", ls="--", lw=1)
        if risk == ILLNESS:
            ax.axhline(ILLNESS_TARGET, color="tab:red", ls=":", lw=1, label=f"目标 {ILLNESS_TARGET}×")
        ax.set_xticks(range(len(tests)), [t[:7] for t in tests], rotation=45, fontsize=7)
        ax.set_title(f"{RISK_LABELS[risk]}", fontsize=10)
        ax.set_xlabel("测试期（起点）", fontsize=8)
    axes[0][0].set_ylabel("模型召回 / 最佳规则召回（2% 能力）", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(("上限：以潜在真值训练的模型与最佳规则的召回比（95% 自助区间）"
                  if variant_of(result["config"]["variant"]).ceiling else
                  "滚动起点回测：模型与最佳规则的召回比（潜在真值，95% 自助区间）"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def log_mlflow(result: dict, paths: Sequence[Path]) -> str:
    import mlflow

    mlflow.set_experiment(EXPERIMENT)
    c = result["config"]
    with mlflow.start_run(run_name=f"backtest-{c['variant']}") as run:
        mlflow.set_tags({"stage": "backtest", "variant": c["variant"]})
        mlflow.log_params({"seeds": ",".join(map(str, c["seeds"])), "households": c["households"],
                           "months": c["months"], "end_month": c["end_month"], "origins": c["origins"],
                           "step_months": c["step_months"], "capacity": c["capacity"], "n_boot": c["n_boot"],
                           "boot_seed": c["boot_seed"], "fit_seed": c["fit_seed"], "label_days": c["label_days"],
                           "risks": ",".join(c["risks"]), "variant": c["variant"], "employment": c["employment"],
                           "best_rule_choice": "validation"})
        metrics: dict[str, float] = {}
        for risk, p in result["pooled"].items():
            for t in TARGETS:
                f = p[t]
                pre = f"{risk}_{t}"
                metrics |= {f"{pre}_model_recall": f["model_recall"], f"{pre}_rule_recall": f["rule_recall"],
                            f"{pre}_ratio": f["ratio"], f"{pre}_ratio_lo": f["ratio_ci"][0],
                            f"{pre}_ratio_hi": f["ratio_ci"][1], f"{pre}_model_recall_lo": f["model_recall_ci"][0],
                            f"{pre}_model_recall_hi": f["model_recall_ci"][1], f"{pre}_positives": f["positives"]}
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.log_metrics({f"timing_{k}": v for k, v in result["timings"].items()})
        for path in paths:
            mlflow.log_artifact(str(path), artifact_path="backtest")
        return run.info.run_id


def write(result: dict, out: str | Path) -> list[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png, md, js = out.with_suffix(".png"), out.with_suffix(".md"), out.with_suffix(".json")
    plot(result, png)
    md.write_text(to_markdown(result, png.name), encoding="utf-8")
    js.write_text(json.dumps(result, indent=1, default=float, ensure_ascii=False) + "\n", encoding="utf-8")
    return [md, js, png]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}")
    p.add_argument("--households", type=int)
    p.add_argument("--months", type=int, default=DEFAULTS["months"])
    p.add_argument("--end-month", default=DEFAULTS["end_month"])
    p.add_argument("--seeds", help="comma-separated city seeds (default 101,102,103)")
    p.add_argument("--origins", type=int, default=DEFAULTS["origins"], help="rolling origins per city (K)")
    p.add_argument("--step-months", type=int, default=DEFAULTS["step_months"], help="months between origins")
    p.add_argument("--n-boot", type=int)
    p.add_argument("--boot-seed", type=int, default=12)
    p.add_argument("--risks", default="all", help="'all' or comma-separated risks")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="verified-labels",
                   help="how the models learn: the verified labels (default, as the service trains), or the "
                        "latent truth (a ceiling no bureau can train)")
    p.add_argument("--employment", choices=EMPLOYMENT, default="as_of",
                   help="persons' employment as of each snapshot date (default), or the latest status "
                        "(as training reads it)")
    p.add_argument("--compare", metavar="JSON", help="another run's JSON (e.g. --employment latest): its pooled "
                                                      "figures are shown beside this run's")
    p.add_argument("--data-root", default="data/backtest", help="cache folder of the generated cities")
    p.add_argument("--out", help="output path without suffix (default experiments/backtest; "
                                  "--quick: data/backtest/quick/backtest)")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    base = {**DEFAULTS, **(QUICK if a.quick else {})}
    config = Config(
        households=a.households or base["households"], months=a.months, end_month=a.end_month,
        seeds=tuple(int(s) for s in a.seeds.split(",")) if a.seeds else base["seeds"], origins=a.origins,
        step_months=a.step_months, n_boot=a.n_boot or base["n_boot"], boot_seed=a.boot_seed,
        risks=RISKS if a.risks == "all" else tuple(r.strip() for r in a.risks.split(",")), data_root=a.data_root,
        employment=a.employment, progress=not a.no_progress)
    result = run(config, VARIANTS[a.variant])
    result["config"]["quick"] = a.quick
    if a.compare:
        result["compare"] = comparison(json.loads(Path(a.compare).read_text(encoding="utf-8")))
    paths = write(result, a.out or ("data/backtest/quick/backtest" if a.quick else "experiments/backtest"))
    if not a.no_mlflow:
        run_id = log_mlflow(result, paths)
        log.info("MLflow run %s in experiment %s", run_id, EXPERIMENT)
        result["mlflow"] = {"experiment": EXPERIMENT, "run_id": run_id}  # the local copy names its run
        paths[1].write_text(json.dumps(result, indent=1, default=float, ensure_ascii=False) + "\n", encoding="utf-8")
    for risk, pooled in result["pooled"].items():
        log.info("%s: %s", risk, verdict(risk, pooled))
    log.info("wrote %s; timings %s", ", ".join(map(str, paths)), result["timings"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
