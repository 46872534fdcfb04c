"""The model card of one trained version, in Markdown and in self-contained HTML, for auditors.

Written from what the run measured (metrics, the comparison with today's rules, the fairness table,
the promotion decision), never from hand-kept prose that could drift from the figures. The
Markdown uses only what ``serving/ui/card.py`` renders: headings, paragraphs, bullets, pipe tables.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, TypeAlias

import pandas as pd

from training.dataset import LABEL_DAYS
from training.fairness import Fairness
from training.promote import Decision

Block: TypeAlias = str | list[str] | pd.DataFrame  # a paragraph, a bullet list or a table


@dataclass
class CardFacts:
    risk: str
    version: str | None
    run_id: str
    capacity: float
    flag_threshold: float
    policy_version: str
    snapshot: dict[str, Any]  # as logged in data_snapshot.json
    metrics: dict[str, float]
    comparison: pd.DataFrame
    truth_comparison: pd.DataFrame | None
    rules: dict[str, str]
    fairness: Fairness
    decision: Decision | None
    flag_share: float = 0.0   # the risk's share of the worklists ([bands.share])
    cause: str | None = None  # the cause the risk needs, in Chinese (None: no gate)


def _pct(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _scorers(table: pd.DataFrame, rules: dict[str, str]) -> pd.DataFrame:
    out = table[[c for c in ("roc_auc", "pr_auc", "found", "recall", "precision") if c in table]].copy()
    out.index = ["模型 model" if s == "model" else f"{s}（{rules.get(s.removeprefix('rule:'), '')}）"
                 for s in out.index]
    return out.rename_axis("scorer").reset_index()


def sections(f: CardFacts) -> list[tuple[str, list[Block]]]:
    m, snap, fair = f.metrics, f.snapshot, f.fairness
    split = snap.get("split", {})
    rows = ", ".join(f"{v} {k}" for k, v in snap.get("rows", {}).items())
    groups = fair.table[["column", "group", "n", "positives", "selection_rate", "tpr", "tpr_lo", "tpr_hi", "fpr",
                         "precision", "mean_probability", "observed_rate", "calibration_gap",
                         *[c for c in ("visited_share", "truth_tpr") if c in fair.table]]]
    gaps = fair.gaps.drop(columns=[c for c in ("left_out_of_eo_gap",) if c in fair.gaps])
    left_out = [f"{r.column}: {r.left_out_of_eo_gap}" for r in fair.gaps.itertuples() if r.left_out_of_eo_gap]
    truth_gaps: list[Block] = []
    if "truth_eo_gap" in fair.gaps:
        truth_gaps = ["Against the synthetic latent truth the TPR gaps are " + ", ".join(
            f"{r.column} {_fmt(r.truth_eo_gap)}" for r in fair.gaps.itertuples()) + ". A gap there that the "
            "observed labels do not show is hidden by the visits: a group visited less has fewer findings to miss "
            "(`visited_share`, `truth_tpr` below)."]
    decision: list[Block]
    if f.version is None:
        decision = ["Not registered: this run was logged only."]
    elif f.decision is None:
        decision = ["Registered without the promotion gate (an alias other than champion was asked for)."]
    else:
        decision = [f"Decision at registration: **{'promoted to champion' if f.decision.promote else 'refused'}**.",
                    f.decision.reasons]
    truth: list[Block] = []
    if f.truth_comparison is not None:
        truth = ["Against the synthetic city's latent truth (who was really in illness-induced poverty in the "
                 "window, visited or not):", _scorers(f.truth_comparison, f.rules)]
    return [
        ("用途 Intended use", [[
            "Ranks households for caseworkers' home visits (主动发现): a **support** for deciding whom to visit first.",
            "**Never an automatic denial**: a score never grants, refuses, reduces or ends assistance; every flag is "
            "verified by a visit, and an unflagged household is not thereby found not in need.",
            f"Flagged (high band, 建议走访) = probability ≥ {f.flag_threshold:.4f}: where the top "
            f"{f.flag_share:.1%} of the calibration households start (this risk's share of the worklists' "
            "capacity), never below the policy file's floor; medium and low as docs/bands.md says."
            + (f" A household without the cause ({f.cause}) is never flagged for this risk, whatever its "
               "probability." if f.cause else " This risk has no cause gate."),
            "Eligibility itself is the policy calculator's business (政策计算器), not this model's."]]),
        ("数据与时间跨度 Data and time span", [[
            f"Data folder `{snap.get('data_dir', '?')}`, sha256 `{str(snap.get('sha256', ''))[:16]}`, "
            f"covering {' to '.join(snap.get('span', []))}.",
            f"Training snapshots {', '.join(split.get('train', []))}; validation (early stopping, calibration, "
            f"thresholds) {split.get('validation', '?')}; test {split.get('test', '?')}.",
            f"Household-snapshots: {rows}; positives {int(m.get('train_positives', 0))} in training, "
            f"{int(m.get('test_positives', 0))} in the test period. Policy parameters version {f.policy_version}."]]),
        ("标签定义与选择偏差 Label definition and its selection bias", [[
            f"Label: a caseworker's verification visit finding `{f.risk}` within {LABEL_DAYS} days after the "
            "snapshot date.",
            f"Only visited households have a verdict: {_pct(m.get('test_visited_share'))} of households were visited "
            f"in the test window — {_pct(m.get('test_visited_share_rule_fired'))} where a rule of today fired, "
            f"{_pct(m.get('test_visited_share_rule_silent'))} where none did. Labels lean toward what the rules "
            "already find.",
            *([f"Of the households really in need (synthetic latent truth), only "
               f"{_pct(m.get('truth_share_visited'))} were visited: the rest carry label 0."]
              if "truth_share_visited" in m else []),
            "What training does about it: an unvisited household counts as 0 (there is nothing else to learn from), "
            "`visited` is kept beside every row so the bias is measured, no reweighting is applied (reweighting "
            "moved the bias elsewhere in Amsterdam's Smart Check), and evaluation is also against the latent truth "
            "in the synthetic city."]]),
        ("与现行规则对比 Model vs today's rules at the same capacity", [
            f"Each scorer visits its top {f.capacity:.1%} of households in the test period.",
            _scorers(f.comparison, f.rules), *truth]),
        ("校准 Calibration", [[
            f"Expected calibration error (10 equal-frequency bins) {m.get('test_ece', float('nan')):.4f}; "
            f"Brier score {m.get('test_brier', float('nan')):.4f}.",
            "Platt scaling fitted on the validation snapshot; it keeps the booster's order exactly."]]),
        ("公平性 Fairness", [
            f"By group, at the flag threshold; 95% intervals by bootstrap within each group. The equal-opportunity "
            f"gap is the largest minus the smallest TPR among groups with at least {fair.min_positives} positives; "
            "the calibration gap is mean predicted probability minus observed rate. Town and sex are never "
            "model features; age, disability and assistance status enter through features.",
            gaps, *(["Left out of the gap (too few positives to measure a TPR):", left_out] if left_out else []),
            *truth_gaps, groups]),
        ("登记与晋升 Registration and promotion", decision),
        ("局限 Limitations", [[
            "Synthetic data: the city, its people and its visits are simulated; figures show the method, not a "
            "real city's outcome.",
            f"Few positives: {int(m.get('test_positives', 0))} findings in the test period, a handful per town, "
            "so per-group figures are noisy (see the intervals).",
            "Employment is the latest known status, not a dated history: historical snapshots can see later job "
            "changes, which flatters the training figures.",
            "Labels come from visits chosen by today's rules and tips (above); the model learns their blind spots.",
            "Features tied to benefit use and disability are used (the Allegheny lesson); their effect on groups "
            "is in the fairness table, and each score's reasons name the factors actually used."]]),
    ]


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "—" if math.isnan(v) else (f"{v:.0f}" if v.is_integer() and abs(v) > 1 else f"{v:.4f}")
    return str(v)


def to_markdown(f: CardFacts) -> str:
    out = [f"# 模型卡 Model card: {f.risk} v{f.version or '—'}", "", f"MLflow run `{f.run_id}`.", ""]
    for heading, blocks in sections(f):
        out += [f"## {heading}", ""]
        for b in blocks:
            if isinstance(b, pd.DataFrame):
                out += ["| " + " | ".join(map(str, b.columns)) + " |", "|" + "---|" * len(b.columns)]
                out += ["| " + " | ".join(_fmt(v).replace("|", "/") for v in r) + " |"
                        for r in b.itertuples(index=False)]
            elif isinstance(b, list):
                out += [f"- {item}" for item in b]
            else:
                out.append(b)
            out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escapes, then renders the two Markdown marks the card uses (**bold**, `code`)."""
    parts = html.escape(text).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(f: CardFacts) -> str:
    title = f"模型卡 Model card: {f.risk} v{f.version or '—'}"
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>MLflow run <code>{html.escape(f.run_id)}</code>.</p>"]
    for heading, blocks in sections(f):
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for b in blocks:
            if isinstance(b, pd.DataFrame):
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b.columns)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>"
                               for r in b.itertuples(index=False))
                body.append(f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
                            "</table></div>")
            elif isinstance(b, list):
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b) + "</ul>")
            else:
                body.append(f"<p>{_inline(b)}</p>")
    style = ("body{font-family:'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif;max-width:70em;"
             "margin:2em auto;padding:0 1em;line-height:1.5;color:#222}table{border-collapse:collapse;font-size:.85em}"
             "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f3f5f8}"
             "td:first-child,td:nth-child(2){text-align:left}.scroll{overflow-x:auto;margin:.5em 0}"
             "code{background:#f3f3f3;padding:0 .2em}h2{border-bottom:1px solid #ddd;margin-top:1.6em}")
    return (f"<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
