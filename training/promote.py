"""The promotion gate: whether a registered version may become ``champion`` (the version serving loads).

A challenger is promoted only if, on the same later-period snapshot as the champion,
  1. neither model has seen that snapshot's verifications in training (its ``test_as_of`` is not later);
  2. it beats the champion: recall at capacity and PR-AUC both at least the champion's plus the
     configured gains, and one of them strictly better;
  3. it stays within the fairness bounds (``training/fairness.py``): for every group column, the
     equal-opportunity gap among groups with enough positives, and the largest per-group calibration gap.
With ``beyond_noise_only`` (the default) a fairness gap above its bound is held against the challenger
only if it is beyond sampling noise (the two extreme groups' 95% intervals are apart; the calibration
gap's interval excludes zero). In a city with a few findings per town, TPRs of 0.4 and 0.9 are often
noise; refusing on them would make the gate a lottery, and saying so is more honest than a loose bound.

Aliases: ``champion`` (served), ``challenger`` (the last version that contested and was refused, or
awaits a decision), ``previous_champion`` (for rollback).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.io import load_policy_book, read_frame, read_tables
from models.pyfunc import load_risk_model
from models.risk_model import RiskModel
from training.dataset import data_span, plan_split, snapshot
from training.evaluate import ranking_metrics, top_k_mask
from training.fairness import Fairness, model_fairness

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"


@dataclass(frozen=True)
class Bounds:
    """What the gate requires. Gaps are in probability units (TPR 0.2 = 20 points)."""

    max_eo_gap: float = 0.2
    max_calibration_gap: float = 0.005
    beyond_noise_only: bool = True
    min_group_positives: int = 5
    min_group_households: int = 100
    min_recall_gain: float = 0.0
    min_pr_auc_gain: float = 0.0
    n_boot: int = 200
    seed: int = 0


def load_bounds(path: str | Path | None) -> Bounds:
    """Bounds from the ``[gate]`` table of a TOML file (``experiments/gate.toml``); None: the defaults."""
    if path is None:
        return Bounds()
    table = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("gate", {})
    defaults = Bounds()
    if unknown := sorted(set(table) - {f.name for f in fields(Bounds)}):
        raise ValueError(f"{path}: unknown gate settings {unknown}")
    return Bounds(**{k: type(getattr(defaults, k))(v) for k, v in table.items()})


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN (a figure that could not be measured) becomes null."""
        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return None if isinstance(v, float) and np.isnan(v) else v
        return {"promote": self.promote, "reasons": self.reasons, "figures": clean(self.figures)}


@dataclass
class Evidence:
    """The later-period snapshot both models are scored on: features, ``label``, ``group_*`` columns
    (``training/dataset.snapshot``); ``capacity`` is the share of households caseworkers can visit."""

    frame: pd.DataFrame
    as_of: pd.Timestamp
    capacity: float


def evidence_from_data(data_dir: str | Path, risk: str, capacity: float,
                       policy_path: str | None = None) -> Evidence:
    """The test snapshot of a data folder, split exactly as training splits it."""
    policy = load_policy_book(policy_path)
    tables = read_tables(data_dir, policy=policy)
    as_of = plan_split(*data_span(tables)).test
    frame = snapshot(tables, as_of, policy, risk, read_frame(data_dir, "truth"))
    return Evidence(frame=frame, as_of=as_of, capacity=capacity)


def _unseen(name: str, model: RiskModel, as_of: pd.Timestamp) -> str | None:
    seen = model.meta.get("test_as_of")
    if seen is not None and pd.Timestamp(seen) > as_of:
        return (f"FAIL: the {name} was trained on verifications up to {seen}, later than the evidence snapshot "
                f"{as_of.date()}; comparing on it would reward what it has already seen")
    return None


def _performance(challenger: RiskModel, champion: RiskModel, ev: Evidence, b: Bounds) -> tuple[bool, list[str], dict]:
    y = ev.frame["label"].to_numpy()
    # each ranked as a visit list takes it: a household without the risk's cause last (RiskModel.priority)
    pc, pk = (m.priority(ev.frame[m.schema.ids]) for m in (challenger, champion))
    c, k = ranking_metrics(y, pc, ev.capacity), ranking_metrics(y, pk, ev.capacity)
    d_recall, d_pr = c["recall"] - k["recall"], c["pr_auc"] - k["pr_auc"]
    # paired bootstrap over the period's findings: how much of the recall difference is luck
    hit = (top_k_mask(pc, ev.capacity).astype(int) - top_k_mask(pk, ev.capacity).astype(int))[y == 1]
    draws = np.random.default_rng(b.seed).integers(0, len(hit), size=(b.n_boot, len(hit)))
    lo, hi = np.percentile(hit[draws].mean(axis=1), [2.5, 97.5]) if len(hit) else (np.nan, np.nan)
    beats = d_recall >= b.min_recall_gain and d_pr >= b.min_pr_auc_gain and (d_recall > 0 or d_pr > 0)
    where = f"on the later period {ev.as_of.date()} ({int(y.sum())} verified findings)"
    detail = (f"recall at {ev.capacity:.0%} capacity {c['recall']:.3f} vs {k['recall']:.3f} ({d_recall:+.3f}; 95% "
              f"interval {lo:+.3f} to {hi:+.3f} over {b.n_boot} resamples of the findings), PR-AUC {c['pr_auc']:.3f} "
              f"vs {k['pr_auc']:.3f} ({d_pr:+.3f}); required: neither worse than the champion by more than the "
              f"gains {b.min_recall_gain:+.3f} / {b.min_pr_auc_gain:+.3f} and one strictly better")
    text = ("PASS: beats the champion " if beats else "FAIL: does not beat the champion ") + f"{where}: {detail}"
    figures = {"challenger_recall": c["recall"], "champion_recall": k["recall"], "recall_gain": d_recall,
               "recall_gain_lo": float(lo), "recall_gain_hi": float(hi), "challenger_pr_auc": c["pr_auc"],
               "champion_pr_auc": k["pr_auc"], "pr_auc_gain": d_pr}
    return bool(beats), [text], figures


def _fairness(f: Fairness, b: Bounds, blocking: bool) -> tuple[bool, list[str]]:
    ok, reasons = True, []
    fail = "FAIL" if blocking else "WARN"
    t = f.table.set_index(["column", "group"])

    def tpr(column: str, group: str) -> str:
        r = t.loc[(column, group)]
        return f"{r['tpr']:.2f} [{r['tpr_lo']:.2f}–{r['tpr_hi']:.2f}] in {group} ({r['positives']} positives)"

    for g in f.gaps.itertuples():
        if np.isnan(g.eo_gap):
            reasons.append(f"NOTE: equal-opportunity gap for {g.column} not measurable: fewer than two groups "
                           f"with at least {f.min_positives} positives")
        else:
            over = g.eo_gap > b.max_eo_gap
            held = over and (g.eo_gap_beyond_noise or not b.beyond_noise_only)
            ok &= not held
            verdict = fail if held else ("PASS" if not over else "NOTE")
            noise = ("" if not over else "; beyond sampling noise (the two groups' 95% intervals are apart)"
                     if g.eo_gap_beyond_noise else "; within sampling noise (the two groups' 95% intervals "
                     "overlap)" + ("" if held else ", so not held against it"))
            reasons.append(f"{verdict}: equal-opportunity gap for {g.column} is {g.eo_gap:.2f} "
                           f"{'above' if over else 'within'} the bound {b.max_eo_gap:.2f}: TPR "
                           f"{tpr(g.column, g.lowest_tpr_group)} vs {tpr(g.column, g.highest_tpr_group)}{noise}")
        if not np.isnan(g.calibration_gap_max):
            r = t.loc[(g.column, g.worst_calibrated_group)]
            over = g.calibration_gap_max > b.max_calibration_gap
            held = over and (g.calibration_gap_beyond_noise or not b.beyond_noise_only)
            ok &= not held
            reasons.append(
                f"{fail if held else ('PASS' if not over else 'NOTE')}: largest calibration gap for {g.column} is "
                f"{g.calibration_gap_max:.4f} {'above' if over else 'within'} the bound {b.max_calibration_gap:.4f}: "
                f"in {g.worst_calibrated_group} the mean predicted probability is {r['mean_probability']:.4f} against "
                f"an observed rate of {r['observed_rate']:.4f} (gap 95% interval {r['calibration_gap_lo']:+.4f} to "
                f"{r['calibration_gap_hi']:+.4f})")
    return ok, reasons


def gate(challenger: RiskModel, champion: RiskModel | None, evidence: Evidence, bounds: Bounds | None = None, *,
         challenger_fairness: Fairness | None = None) -> Decision:
    """Whether ``challenger`` may replace ``champion``; with no champion the challenger becomes the
    first one and fairness findings are reported as warnings. Every check gives a reason either way."""
    b = bounds or Bounds()
    f = challenger_fairness or model_fairness(challenger, evidence.frame, n_boot=b.n_boot, seed=b.seed,
                                              min_positives=b.min_group_positives,
                                              min_households=b.min_group_households)
    if champion is None:
        _, notes = _fairness(f, b, blocking=False)
        return Decision(True, ["PASS: no champion exists; the first registered version becomes the champion "
                               "without a comparison", *notes], {"fairness": f.summary, "bounds": asdict(b)})
    reasons = [r for r in (_unseen("challenger", challenger, evidence.as_of),
                           _unseen("champion", champion, evidence.as_of)) if r]
    beats, perf_reasons, figures = _performance(challenger, champion, evidence, b)
    fair, fair_reasons = _fairness(f, b, blocking=True)
    promote = beats and fair and not reasons
    reasons += perf_reasons + fair_reasons
    return Decision(promote, reasons, {**figures, "fairness": f.summary, "bounds": asdict(b),
                                       "evidence_as_of": str(evidence.as_of.date()), "capacity": evidence.capacity})


# ---- the registry's side: aliases and the record of each decision -------------------------------
def champion_version(client: MlflowClient, risk: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(risk, CHAMPION).version)
    except MlflowException:
        return None


def arrival_alias(client: MlflowClient, risk: str, requested: str | None) -> str | None:
    """The alias a newly registered version gets: asking for ``champion`` gives it ``champion`` only
    when none exists, else ``challenger`` (and the gate decides); any other alias is kept as asked."""
    if requested == CHAMPION and champion_version(client, risk) is not None:
        return CHALLENGER
    return requested


def settle(client: MlflowClient, risk: str, version: str, run_id: str, decision: Decision,
           artifact: str = "promotion_decision.json") -> None:
    """Moves ``champion`` (keeping the old one as ``previous_champion``) if the decision says so, and
    records the decision in the version's run and tags."""
    current = champion_version(client, risk)
    if decision.promote and current != version:
        if current is not None:
            client.set_registered_model_alias(risk, PREVIOUS, current)
        client.set_registered_model_alias(risk, CHAMPION, version)
        if CHALLENGER in client.get_model_version(risk, version).aliases:
            client.delete_registered_model_alias(risk, CHALLENGER)
    elif not decision.promote:
        client.set_registered_model_alias(risk, CHALLENGER, version)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    client.log_dict(run_id, {**decision.to_dict(), "version": version, "champion_before": current,
                             "decided_at": stamp}, artifact)
    client.set_model_version_tag(risk, version, "promotion", "promoted" if decision.promote else "refused")
    client.set_model_version_tag(risk, version, "promotion_reasons", "\n".join(decision.reasons)[:4900])


def decide(client: MlflowClient, risk: str, version: str, evidence: Evidence, bounds: Bounds | None = None, *,
           model: RiskModel | None = None, fairness: Fairness | None = None,
           artifact: str = "promotion_decision.json") -> Decision:
    """Gates registered ``version`` against the current champion on ``evidence`` and settles the
    aliases. ``model``/``fairness``: the version's model and fairness when the caller has them (training)."""
    current = champion_version(client, risk)
    if current == version and model is None:
        return Decision(True, [f"PASS: version {version} is already the champion; nothing to move"])
    challenger = model or load_risk_model(f"models:/{risk}/{version}")[0]
    champion = None if current in (None, version) else load_risk_model(f"models:/{risk}/{current}")[0]
    decision = gate(challenger, champion, evidence, bounds, challenger_fairness=fairness)
    decision.figures |= {"challenger_version": version, "champion_version": None if current == version else current}
    settle(client, risk, version, str(client.get_model_version(risk, version).run_id), decision, artifact)
    return decision
