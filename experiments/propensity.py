"""Labels without the rules' bias? Inverse visit-propensity weighting against the latent truth (issue #12, item 3).

A training label is a visit's finding in (T, T+180d]; a household nobody visited counts as 0. Who
gets visited depends on today's rules (a fired rule → a visit with probability 0.35), on reviews of
assistance recipients, on random draws, and on tips from neighbours about households in *latent*
hardship (synthcity/_visits.py). This script models the visit propensity from what is observable at T
and compares, per risk, at the same capacity and against the synthetic city's latent truth:

- ``baseline``: ``training.fit.fit_risk_model`` as the service trains today (all rows, unvisited = 0);
- ``ipw``: the same LightGBM (``models.lgbm.lgbm_params``, same monotone constraints) trained on the
  *visited* rows only, each weighted by 1 / clip(propensity, floor, 1) (normalised to mean 1); early
  stopping and Platt calibration on the visited validation rows, weighted alike;
- ``visited_only``: the same as ``ipw`` without weights (a diagnostic: what the selection of rows does
  on its own, apart from the weighting);
- ``pu_ratio``: the baseline's probability divided by the clipped propensity, the "selected at random"
  positive-unlabelled correction P(truth | x) ∝ P(label | x) / P(visited | x) (Bekker & Davis 2018),
  learnt from all rows (no monotone guarantee: the propensity is not monotone);
- ``rule``: the best of today's rules for the risk (the one with the highest recall against the truth
  on the test snapshot, which flatters the rules).

Each scorer visits its top ceil(capacity × n) households of the test snapshot (the model variants in
``RiskModel.priority`` order: no household without the risk's cause first); recall counts the latent
truth's positives among them. Intervals: 1,000 paired bootstrap resamples of the test households (the
same resample for every scorer), per city and pooled over cities.

    PYTHONPATH=. .venv/bin/python experiments/propensity.py --cities /tmp/c0 /tmp/c201 /tmp/c202 /tmp/c203 \
        --names demo seed201 seed202 seed203 --out /tmp/propensity.md

(cities from ``relief-risk generate --households 20000 --seed S --out /tmp/cS``). It writes the
figures and the verdict table; experiments/propensity.md adds a hand-written reading of them.

Nothing in the packages imports this file; tests/test_propensity_experiment.py checks its parts.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from features.catalog import FEATURE_IDS
from features.io import load_policy_book, read_frame, read_tables
from features.policy import PolicyBook
from features.risks import RISKS
from features.tables import Tables
from models.bands import BandRule
from models.calibration import PlattCalibrator
from models.lgbm import lgbm_params
from models.risk_model import RiskModel
from models.schema import FeatureSchema
from training.dataset import LABEL_DAYS, Split, build_snapshots, data_span, plan_split, relabel, truth_labels
from training.evaluate import top_k_mask
from training.fit import calibrated_model, fit_risk_model
from training.rules import RULES_BY_RISK, rule_scores

EXPERIMENT = "relief-risk-propensity"
FLOOR = 0.02  # propensities below are clipped: no visited household weighs more than 50
EXTRAS = (*(f"rule_{r.name}" for rules in RULES_BY_RISK.values() for r in rules), "visited_prev_180d",
                 "found_prev_180d")
VARIANTS = ("baseline", "ipw", "visited_only", "pu_ratio", "rule")
PROPENSITY_PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "max_depth": 6,
                     "min_data_in_leaf": 50, "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
                     "lambda_l2": 1.0, "verbosity": -1, "num_threads": 2, "deterministic": True,
                     "force_row_wise": True}


# ---- data -------------------------------------------------------------------------------------------
@dataclass
class City:
    name: str
    policy: PolicyBook
    tables: Tables
    truth: pd.DataFrame
    split: Split
    snaps: pd.DataFrame  # the split's snapshots, labelled for illness_poverty, with ``truth`` and the extras


def load_city(data_dir: str | Path, policy: PolicyBook | None = None, dates: list[pd.Timestamp] | None = None,
              name: str | None = None) -> City:
    """Reads a city as ``training.pipeline.prepare`` does and builds its snapshots once (``dates``:
    all of the split's by default)."""
    policy = policy or load_policy_book()
    tables = read_tables(data_dir, policy=policy)
    truth = read_frame(data_dir, "truth")
    if truth is None:
        raise ValueError(f"{data_dir} has no latent truth: this experiment needs a synthetic city")
    split = plan_split(*data_span(tables))
    dates = dates or [*split.train, split.validation, split.test]
    snaps = build_snapshots(tables, dates, policy, "illness_poverty", truth, progress=False)
    extra = propensity_extras(snaps, tables, policy)
    for c in extra:  # beside the features: relabel() keeps them, the risk models never read them
        snaps[c] = extra[c].to_numpy()
    return City(name=name or Path(data_dir).name, policy=policy, tables=tables, truth=truth, split=split,
                snaps=snaps)


def propensity_extras(snaps: pd.DataFrame, tables: Tables, policy: PolicyBook) -> pd.DataFrame:
    """What the visit process reacts to beyond the catalogue's features, as observable at T: every
    risk's rule scores (the rules fire visits), and visits and findings in the 180 days before T
    (nobody is visited again within 6 months; a finding brings reviews through assistance)."""
    v = tables.verifications
    as_of = snaps["as_of"].to_numpy()
    out = {}
    for t in pd.unique(as_of):  # snapshots are whole dates in order (build_snapshots)
        rows = as_of == t
        part = snaps.loc[rows]
        t = pd.Timestamp(t)
        cols = {}
        for risk in RISKS:
            scores = rule_scores(part[list(FEATURE_IDS)], t, policy, risk)
            cols |= {f"rule_{c}": scores[c].to_numpy() for c in scores}
        before = v.loc[(v["visited_on"] <= t) & (v["visited_on"] > t - pd.Timedelta(days=LABEL_DAYS))]
        cols["visited_prev_180d"] = part.index.isin(before["household_id"]).astype(float)
        cols["found_prev_180d"] = part.index.isin(
            before.loc[before["finding"] != "not_in_need", "household_id"]).astype(float)
        out[t] = pd.DataFrame(cols, index=part.index)
    return pd.concat([out[pd.Timestamp(t)] for t in pd.unique(as_of)], ignore_index=True)


def any_truth(city: City, rows: pd.DataFrame) -> np.ndarray:
    """Per row: in latent hardship of any risk at some month of (T, T+6 months]."""
    out = np.zeros(len(rows), dtype=bool)
    as_of = rows["as_of"].to_numpy()
    for t in pd.unique(as_of):
        m = as_of == t
        for risk in RISKS:
            out[m] |= truth_labels(city.truth, pd.Index(rows.index[m]), pd.Timestamp(t), risk) == 1
    return out


def selection_table(city: City, rows: pd.DataFrame, e: np.ndarray, bins: int = 5) -> pd.DataFrame:
    """Why weighting on observables cannot undo this selection: per propensity quintile, the latent
    hardship rate among the visited against among all households. Inverse-propensity weighting
    assumes they are equal (visits ignore hardship given what is observed); tips break that."""
    truth = any_truth(city, rows)
    visited = rows["visited"].to_numpy() == 1
    q = pd.qcut(pd.Series(e).rank(method="first"), bins, labels=False).to_numpy()
    out = []
    for b in range(bins):
        m = q == b
        out.append({"quintile": b + 1, "mean_propensity": float(e[m].mean()), "visited": int(visited[m].sum()),
                    "truth_rate_visited": float(truth[m & visited].mean()) if (m & visited).any() else float("nan"),
                    "truth_rate_all": float(truth[m].mean())})
    return pd.DataFrame(out)


def parts(city: City, risk: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train, validation and test rows labelled for ``risk`` (positional: ``extra`` rows align)."""
    snaps = city.snaps if risk == "illness_poverty" else relabel(city.snaps, city.tables.verifications, risk,
                                                                 city.truth)
    as_of = snaps["as_of"]
    return (snaps.loc[as_of.isin(city.split.train).to_numpy()], snaps.loc[(as_of == city.split.validation).to_numpy()],
            snaps.loc[(as_of == city.split.test).to_numpy()])


# ---- the propensity model ---------------------------------------------------------------------------
@dataclass
class Propensity:
    """P(visited in (T, T+180d] | what is observable at T): LightGBM, Platt-calibrated on the
    validation snapshot, clipped to [floor, 1] by :meth:`predict`."""

    booster: lgb.Booster
    calibrator: PlattCalibrator
    columns: list[str]
    floor: float = FLOOR
    facts: dict = field(default_factory=dict)

    def raw(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(x[self.columns].to_numpy("float64"), raw_score=True))

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.clip(self.calibrator.transform(self.raw(x)), self.floor, 1.0)


def propensity_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """What the propensity model sees of ``rows`` (snapshot rows of a :class:`City`): the catalogue's
    features and the extras of :func:`propensity_extras`."""
    return rows[[*FEATURE_IDS, *EXTRAS]]


def fit_propensity(x_train: pd.DataFrame, v_train: np.ndarray, x_val: pd.DataFrame, v_val: np.ndarray, *,
                   seed: int = 0, floor: float = FLOOR, num_boost_round: int = 1000,
                   early_stopping_rounds: int = 50) -> Propensity:
    columns = list(x_train.columns)
    d_train = lgb.Dataset(x_train.to_numpy("float64"), label=v_train, feature_name=columns, free_raw_data=True)
    d_val = lgb.Dataset(x_val.to_numpy("float64"), label=v_val, reference=d_train)
    booster = lgb.train({**PROPENSITY_PARAMS, "seed": seed, "metric": ["binary_logloss", "auc"]}, d_train,
                        num_boost_round=num_boost_round, valid_sets=[d_val], valid_names=["validation"],
                        callbacks=[lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)])
    booster.free_dataset()
    calibrator = PlattCalibrator().fit(np.asarray(booster.predict(x_val.to_numpy("float64"), raw_score=True)), v_val)
    model = Propensity(booster=booster, calibrator=calibrator, columns=columns, floor=floor)
    gain = booster.feature_importance("gain")
    model.facts = {"best_iteration": booster.best_iteration,
                   "auc_train": float(roc_auc_score(v_train, model.raw(x_train))),
                   "auc_validation": float(roc_auc_score(v_val, model.raw(x_val))),
                   "top_features": [columns[j] for j in np.argsort(-gain)[:8]]}
    return model


def ipw_weights(propensity: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """1 / clip(propensity, floor, 1): ≥ 1, finite, at most 1 / floor."""
    return 1.0 / np.clip(np.asarray(propensity, dtype="float64"), floor, 1.0)


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's (Σw)² / Σw²."""
    return float(w.sum() ** 2 / (w ** 2).sum())


# ---- the weighted risk model ------------------------------------------------------------------------
def weighted_platt(raw: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> PlattCalibrator:
    c = PlattCalibrator()
    lr = LogisticRegression(C=c.C, solver="lbfgs").fit(np.asarray(raw, "float64").reshape(-1, 1), y, sample_weight=w)
    c.slope_, c.intercept_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if not c.slope_ > 0:
        raise ValueError("calibration slope is not positive on the weighted visited validation rows")
    return c


def fit_visited_model(risk: str, schema: FeatureSchema, train: pd.DataFrame, validation: pd.DataFrame,
                      e_train: np.ndarray | None, e_val: np.ndarray | None, *, bands: BandRule | None = None,
                      seed: int = 0, floor: float = FLOOR, num_boost_round: int = 1000,
                      early_stopping_rounds: int = 50, params: dict | None = None) -> tuple[RiskModel, dict]:
    """The risk model on the visited rows only (``visited == 1``), weighted by 1 / clip(propensity)
    normalised to mean 1 within each part (``e_* = None``: unweighted). LightGBM settings and monotone
    constraints are ``lgbm_params(schema)``'s, as in ``training.fit.fit_risk_model``; Platt calibration
    on the visited validation rows with the same weights."""
    p = lgbm_params(schema, seed=seed, **(params or {}))
    vt, vv = train["visited"].to_numpy() == 1, validation["visited"].to_numpy() == 1
    tr, va = train.loc[vt], validation.loc[vv]
    w_tr = w_va = None
    if e_train is not None:
        w_tr = ipw_weights(np.asarray(e_train)[vt], floor)
        w_va = ipw_weights(np.asarray(e_val)[vv], floor)
        w_tr, w_va = w_tr / w_tr.mean(), w_va / w_va.mean()
    x_tr, x_va = schema.validate(tr[schema.ids]), schema.validate(va[schema.ids])
    y_tr, y_va = tr["label"].to_numpy(), va["label"].to_numpy()
    d_train = lgb.Dataset(x_tr, label=y_tr, weight=w_tr, feature_name=schema.ids, free_raw_data=True)
    d_val = lgb.Dataset(x_va, label=y_va, weight=w_va, reference=d_train)
    booster = lgb.train({**p, "metric": ["binary_logloss", "auc"]}, d_train, num_boost_round=num_boost_round,
                        valid_sets=[d_val], valid_names=["validation"],
                        callbacks=[lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)])
    booster.free_dataset()
    model = calibrated_model(risk, booster, schema, x_va, y_va, bands)  # cause gate and band lines as today
    model.calibrator = weighted_platt(booster.predict(x_va, raw_score=True), y_va, w_va)
    facts = {"best_iteration": booster.best_iteration, "train_rows": int(vt.sum()),
             "train_positives": int(y_tr.sum()), "validation_rows": int(vv.sum()),
             "train_index": tr.index, "weights": w_tr}
    return model, facts


# ---- evaluation -------------------------------------------------------------------------------------
def recall(y: np.ndarray, chosen: np.ndarray) -> float:
    return float(y[chosen].sum() / y.sum()) if y.sum() else float("nan")


def bootstrap_counts(y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot × positives): how often each truth-positive household is drawn in each resample of
    all households (with replacement). Recall depends on the positives' counts only."""
    rng = np.random.default_rng(seed)
    n, pos = len(y), np.flatnonzero(y == 1)
    out = np.empty((n_boot, len(pos)), dtype=np.int32)
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, n, n), minlength=n)[pos]
    return out


def boot_found(counts: np.ndarray, y: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Per resample: the positives found by the list ``chosen`` (fixed on the full test snapshot)."""
    return counts @ chosen[y == 1].astype(np.int32)


def interval(draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass
class RiskResult:
    city: str
    risk: str
    positives: int
    k: int
    found: dict[str, int]
    boot_found: dict[str, np.ndarray]  # per scorer, per resample
    boot_positives: np.ndarray
    best_rule: str
    facts: dict


def evaluate_risk(city: City, risk: str, propensity: Propensity, *, capacity: float, seed: int, n_boot: int,
                  bands: BandRule, num_boost_round: int = 1000) -> RiskResult:
    train, val, test = parts(city, risk)
    schema = FeatureSchema.for_risk(risk)
    e_train = propensity.predict(propensity_matrix(train))
    e_val = propensity.predict(propensity_matrix(val))
    e_test = propensity.predict(propensity_matrix(test))
    base, base_facts = fit_risk_model(risk, schema, train, val, bands=bands, seed=seed, num_boost_round=num_boost_round)
    ipw, ipw_facts = fit_visited_model(risk, schema, train, val, e_train, e_val, bands=bands, seed=seed,
                                       num_boost_round=num_boost_round)
    vis, vis_facts = fit_visited_model(risk, schema, train, val, None, None, bands=bands, seed=seed,
                                       num_boost_round=num_boost_round)
    x = base.matrix(test[schema.ids])
    present = base.cause_present(x)
    p_base = base.calibrator.transform(base.raw_score(x))
    ratio = p_base / e_test
    scores = {"baseline": base.priority(x), "ipw": ipw.priority(x), "visited_only": vis.priority(x),
              "pu_ratio": ratio if present is None else np.where(present, ratio, -1.0)}
    y = test["truth"].to_numpy().astype(int)
    rules = rule_scores(test[schema.ids], city.split.test, city.policy, risk)
    rule_recall = {c: recall(y, top_k_mask(rules[c].to_numpy(), capacity)) for c in rules}
    best_rule = max(rule_recall, key=rule_recall.get)
    scores["rule"] = rules[best_rule].to_numpy()
    chosen = {name: top_k_mask(s, capacity) for name, s in scores.items()}
    counts = bootstrap_counts(y, n_boot, seed)
    w, vt = ipw_facts["weights"], train["visited"].to_numpy() == 1
    facts = {"baseline_best_iteration": base_facts["best_iteration"], "ipw_best_iteration": ipw_facts["best_iteration"],
             "visited_only_best_iteration": vis_facts["best_iteration"],
             "train_rows": len(train), "train_label_positives": int(train["label"].sum()),
             "train_visited_rows": ipw_facts["train_rows"],
             "weight_max_normalised": float(w.max()), "weight_ess": effective_sample_size(w),
             "weight_max_raw": float(ipw_weights(e_train[vt]).max()),
             "share_at_floor": float((e_train[vt] <= propensity.floor).mean()),
             "test_truth_share_visited": float(test.loc[y == 1, "visited"].mean()),
             "test_label_positives": int(test["label"].sum())}
    return RiskResult(city=city.name, risk=risk, positives=int(y.sum()), k=int(chosen["baseline"].sum()),
                      found={n: int(y[c].sum()) for n, c in chosen.items()},
                      boot_found={n: boot_found(counts, y, c) for n, c in chosen.items()},
                      boot_positives=counts.sum(axis=1), best_rule=best_rule, facts=facts)


def summarise(results: list[RiskResult]) -> dict:
    """Recall per scorer and the paired differences to the baseline, pooled over ``results`` (one
    risk, several cities: found and positives are summed; resamples are independent per city)."""
    positives = sum(r.positives for r in results)
    bp = sum(r.boot_positives for r in results)
    out = {"positives": positives, "k": sum(r.k for r in results), "best_rule": sorted({r.best_rule for r in results})}
    for name in VARIANTS:
        found = sum(r.found[name] for r in results)
        draws = sum(r.boot_found[name] for r in results) / bp
        out[name] = {"found": found, "recall": found / positives, "ci": interval(draws)}
        if name != "baseline":
            diff = draws - sum(r.boot_found["baseline"] for r in results) / bp
            point = (found - sum(r.found["baseline"] for r in results)) / positives
            out[name]["diff"] = point
            out[name]["diff_ci"] = interval(diff)
            out[name]["p_worse"] = float((diff < 0).mean())
    return out


def verdict(summary: dict, per_city: list[dict], name: str = "ipw") -> str:
    """Adopt where the pooled paired difference's 95% interval lies above 0; "promising" where the
    pooled gain is positive and no city loses; else not."""
    s = summary[name]
    if s["diff_ci"][0] > 0:
        return "adopt"
    if s["diff"] > 0 and all(c[name]["diff"] >= 0 for c in per_city):
        return "not adopted (point gain in every city, interval includes 0)"
    return "not adopted"


# ---- the report -------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(ci: tuple[float, float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def markdown(cities: list[City], props: dict[str, Propensity], results: list[RiskResult], capacity: float,
             n_boot: int, seconds: float) -> tuple[str, dict]:
    risks = [risk for risk in RISKS if any(r.risk == risk for r in results)]
    by_risk = {risk: [r for r in results if r.risk == risk] for risk in risks}
    pooled = {risk: summarise(rs) for risk, rs in by_risk.items()}
    per_city = {risk: [summarise([r]) for r in rs] for risk, rs in by_risk.items()}
    verdicts = {risk: {v: verdict(pooled[risk], per_city[risk], v) for v in ("ipw", "pu_ratio")} for risk in risks}
    lines = [
        "# Labels without the rules' bias: inverse visit-propensity weighting (issue #12, item 3)",
        "",
        f"Generated by `experiments/propensity.py` in {seconds / 60:.0f} min on {len(cities)} synthetic cities of "
        f"20,000 households ({', '.join(c.name for c in cities)}); capacity {_pct(capacity)} of the test snapshot's "
        f"households; recall against the latent truth (in hardship at some month of (T, T+6 months]); 95% "
        f"intervals from {n_boot:,} paired bootstrap resamples of the test households (the same resample "
        "for every scorer; pooled: independent resamples per city, found and positives summed). "
        "LightGBM seed 0; the split is `training.dataset.plan_split`'s (3 training snapshots, validation, test).",
        "",
        "## The variants",
        "",
        "- **baseline**: `training.fit.fit_risk_model` as today: all rows, an unvisited household is a 0.",
        "- **ipw**: the same LightGBM settings and monotone constraints (`models.lgbm.lgbm_params`) on the "
        "*visited* training rows only, weighted 1 / clip(propensity, 0.02, 1), normalised to mean 1; early "
        "stopping and Platt calibration on the visited validation rows, weighted alike.",
        "- **visited_only**: as ipw without the weights (a diagnostic: the effect of dropping the unvisited "
        "rows alone).",
        "- **pu_ratio**: the baseline's calibrated probability divided by the clipped propensity: under "
        "\"selected at random given x\", P(truth | x) ∝ P(label | x) / P(visited | x) (positive-unlabelled "
        "learning, Bekker & Davis 2018). Learnt from all rows; the ratio keeps no monotone guarantee.",
        "- **rule**: the best of today's rules for the risk, chosen by its recall against the truth on the "
        "test snapshot itself (this flatters the rules).",
        "",
        "Every model variant ranks by `RiskModel.priority` (no household without the risk's cause first; "
        "pu_ratio puts them last too) and visits its top ceil(2% × n).",
        "",
        "## The propensity model",
        "",
        "P(any visit in (T, T+180d] | what is observable at T), LightGBM without constraints on the training "
        "snapshots, early stopping and Platt calibration on the validation snapshot, clipped to [0.02, 1]. "
        "It sees the catalogue's 53 features (household make-up, income, medical costs, assistance), every "
        "risk's rule scores (`training.rules.rule_scores`: the rules that fire visits), and whether the household "
        "was visited, and found in need, in the 180 days before T (no revisit within 6 months; found households "
        "get assistance and its reviews). It cannot see the latent hardship that drives the tips.",
        "",
        "| city | visited share (train) | AUC train | AUC validation | AUC test | best iteration "
        "| top features (gain) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in cities:
        f = props[c.name].facts
        lines.append(f"| {c.name} | {_pct(f['visited_share_train'])} | {f['auc_train']:.3f} | "
                     f"{f['auc_validation']:.3f} | {f['auc_test']:.3f} | {f['best_iteration']} | "
                     f"{', '.join(f['top_features'][:5])} |")
    lines += ["", "Is a visit ignorable given what the propensity model sees? Training rows of "
              f"{cities[0].name} by quintile of the propensity: the share in latent hardship of any risk among "
              "the visited and among all. Inverse-propensity weighting assumes the two are equal within a "
              "quintile (more finely: given x).", "",
              "| quintile | mean propensity (unclipped) | visited | in hardship, visited | in hardship, all |",
              "| --- | --- | --- | --- | --- |"]
    for row in props[cities[0].name].facts["selection"].itertuples():
        lines.append(f"| {row.quintile} | {_pct(row.mean_propensity)} | {row.visited} | "
                     f"{_pct(row.truth_rate_visited)} | {_pct(row.truth_rate_all)} |")
    lines += ["", "Weights (training rows of the ipw fit, normalised to mean 1, first city's; the same "
              "propensity serves every risk, the visited rows differ by nothing but the label):", ""]
    r0 = [r for r in results if r.city == cities[0].name]
    lines += ["| risk | visited training rows | positives among them | max 1/propensity | at the floor "
              "| max weight (normalised) | effective sample size |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in r0:
        f = r.facts
        lines.append(f"| {r.risk} | {f['train_visited_rows']:,} | {f['train_label_positives']} | "
                     f"{f['weight_max_raw']:.1f} | {_pct(f['share_at_floor'])} | {f['weight_max_normalised']:.1f} | "
                     f"{f['weight_ess']:.0f} "
                     f"({_pct(f['weight_ess'] / f['train_visited_rows'])}) |")
    lines += ["", "## Recall at 2% against the latent truth, pooled over the cities", "",
              "| risk | truth positives | baseline | ipw | ipw − baseline (pp) | visited_only | pu_ratio "
              "| pu_ratio − baseline (pp) | best rule |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for risk in risks:
        s = pooled[risk]

        def cell(n: str, s: dict = s) -> str:
            return f"{_pct(s[n]['recall'])} {_ci(s[n]['ci'])}"

        def dcell(n: str, s: dict = s) -> str:
            return f"{_pp(s[n]['diff'])} {_ci(s[n]['diff_ci'])}"

        lines.append(f"| {risk} | {s['positives']} | {cell('baseline')} | {cell('ipw')} | {dcell('ipw')} | "
                     f"{cell('visited_only')} | {cell('pu_ratio')} | {dcell('pu_ratio')} | {cell('rule')} "
                     f"({'/'.join(s['best_rule'])}) |")
    lines += ["", "Per city (found of truth positives at 2%; baseline / ipw / visited_only / pu_ratio / rule; "
              "ipw − baseline in pp with its interval):", "",
              "| risk | city | positives | baseline | ipw | visited_only | pu_ratio | rule | ipw − baseline |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for risk in risks:
        for r, s in zip(by_risk[risk], per_city[risk], strict=True):
            lines.append(f"| {risk} | {r.city} | {r.positives} | " + " | ".join(str(r.found[n]) for n in VARIANTS)
                         + f" | {_pp(s['ipw']['diff'])} {_ci(s['ipw']['diff_ci'])} |")
    lines += ["", "## Verdict", "",
              "Criterion: a variant is adopted for a risk only if the pooled paired difference to the baseline "
              "(recall against the truth at 2%) has a 95% interval above 0. A point gain whose interval includes 0 "
              "is reported but not adopted.", "",
              "| risk | ipw | pu_ratio |", "| --- | --- | --- |"]
    for risk in risks:
        lines.append(f"| {risk} | {verdicts[risk]['ipw']} | {verdicts[risk]['pu_ratio']} |")
    lines.append("")
    return "\n".join(lines), {"pooled": pooled, "verdicts": verdicts}


# ---- main -------------------------------------------------------------------------------------------
def run(data_dirs: list[str], *, names: list[str] | None = None, capacity: float, seed: int, n_boot: int,
        num_boost_round: int = 1000, risks: tuple[str, ...] = RISKS,
        log=print) -> tuple[list[City], dict[str, Propensity], list[RiskResult]]:
    policy = load_policy_book()
    bands = BandRule.load()
    cities, props, results = [], {}, []
    for i, d in enumerate(data_dirs):
        t0 = time.perf_counter()
        city = load_city(d, policy, name=names[i] if names else None)
        cities.append(city)
        train, val, test = parts(city, "illness_poverty")
        prop = fit_propensity(propensity_matrix(train), train["visited"].to_numpy(),
                              propensity_matrix(val), val["visited"].to_numpy(), seed=seed)
        prop.facts["auc_test"] = float(roc_auc_score(test["visited"], prop.raw(propensity_matrix(test))))
        prop.facts["visited_share_train"] = float(train["visited"].mean())
        prop.facts["selection"] = selection_table(  # unclipped: the floor would tie most rows
            city, train, prop.calibrator.transform(prop.raw(propensity_matrix(train))))
        props[city.name] = prop
        log(f"{city.name}: snapshots and propensity in {time.perf_counter() - t0:.0f}s, {prop.facts}")
        for risk in risks:
            t0 = time.perf_counter()
            r = evaluate_risk(city, risk, prop, capacity=capacity, seed=seed, n_boot=n_boot, bands=bands,
                              num_boost_round=num_boost_round)
            results.append(r)
            log(f"  {risk}: positives {r.positives}, found {r.found} ({time.perf_counter() - t0:.0f}s)")
    return cities, props, results


def _log_mlflow(args: argparse.Namespace, text: str, summary: dict, props: dict[str, Propensity], out: Path) -> str:
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):  # a local store in the checkout's mlruns/ (git ignores it)
        store = Path(__file__).resolve().parents[1] / "mlruns"
        store.mkdir(exist_ok=True)
        mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            mlflow.create_experiment(EXPERIMENT, artifact_location=(store / "artifacts").as_uri())
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="ipw-vs-baseline") as run:
        mlflow.log_params({"cities": ",".join(args.names or args.cities), "capacity": args.capacity, "seed": args.seed,
                           "n_boot": args.n_boot, "propensity_floor": FLOOR, "variants": ",".join(VARIANTS)})
        for name, p in props.items():
            mlflow.log_metrics({f"propensity_auc_validation_{name}": p.facts["auc_validation"],
                                f"propensity_auc_test_{name}": p.facts["auc_test"]})
        for risk, s in summary["pooled"].items():
            for v in VARIANTS:
                mlflow.log_metric(f"{risk}_recall_{v}", s[v]["recall"])
                if v != "baseline":
                    mlflow.log_metrics({f"{risk}_diff_{v}": s[v]["diff"], f"{risk}_diff_{v}_lo": s[v]["diff_ci"][0],
                                        f"{risk}_diff_{v}_hi": s[v]["diff_ci"][1]})
        mlflow.set_tags({f"verdict_{risk}": v["ipw"] for risk, v in summary["verdicts"].items()})
        mlflow.log_artifact(str(out))
        return run.info.run_id


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cities", nargs="+", required=True, help="synthetic city folders (with truth)")
    ap.add_argument("--names", nargs="+", default=None, help="the cities' names in the report (default: folder names)")
    ap.add_argument("--capacity", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default="experiments/propensity.md")
    ap.add_argument("--json", default=None, help="also write the pooled figures here")
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cities, props, results = run(args.cities, names=args.names, capacity=args.capacity, seed=args.seed,
                                 n_boot=args.n_boot)
    text, summary = markdown(cities, props, results, args.capacity, args.n_boot, time.perf_counter() - t0)
    out = Path(args.out)
    out.write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=float))
    if not args.no_mlflow:
        print("mlflow run", _log_mlflow(args, text, summary, props, out))
    print(text)


if __name__ == "__main__":
    main()
