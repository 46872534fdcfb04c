"""One audit record as an auditor reads it: the scores and why, and what the household sent.

Labels and units come from the feature catalogue (``features.catalog``), the same source as the
reasons in the API response, and values are formatted by ``models.explain.format_value``, so the
page and the response read alike. Money is yuan; months are ``YYYY-MM``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from features.catalog import BY_ID
from models.bands import Cause
from models.explain import format_value
from serving.ui import labels
from serving.ui.charts import Chart, Step, waterfall_chart, waterfall_steps
from store.access import AccessEvent
from store.audit import AuditRecord

BEIJING = dt.timezone(dt.timedelta(hours=8), "北京时间")


def beijing(t: dt.datetime) -> str:
    return t.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def feature_label(fid: str) -> str:
    spec = BY_ID.get(fid)
    return spec.label_zh if spec else fid


def shown_value(fid: str, value: float | None) -> str:
    spec = BY_ID.get(fid)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "未报告"
    return format_value(float(value), spec.unit) if spec else f"{value:g}"


@dataclass
class ScoreView:
    risk: str
    probability: float
    band: str
    flagged: bool
    model: dict[str, str]
    base_value: float
    raw_score: float
    reasons: list[dict[str, Any]]
    steps: list[Step]
    chart: Chart
    all_contributions: list[dict[str, Any]]
    residual: float  # raw score − (base value + Σ contributions): zero but for rounding
    cause_absent: str | None = None  # "家中无未成年（18岁以下）成员，不提示此风险" when the gate closed


def score_view(s: dict[str, Any]) -> ScoreView:
    contributions: dict[str, float] = {k: float(v) for k, v in s.get("contributions", {}).items()}
    values: dict[str, float | None] = s.get("features") or {}
    shown = {fid: shown_value(fid, values.get(fid)) if fid in values else "—" for fid in contributions}
    names = {fid: feature_label(fid) for fid in contributions}
    base, raw = float(s["base_value"]), float(s.get("raw_score", s["base_value"]))
    steps = waterfall_steps(base, raw, contributions, names, shown)
    reasons = [{**r, "display": r.get("display") or f"{r.get('label') or feature_label(r['feature'])}："
                f"{shown_value(r['feature'], r.get('value'))}"} for r in s.get("reasons", [])]
    ranked = sorted(contributions, key=lambda f: -abs(contributions[f]))
    return ScoreView(
        risk=s["risk"], probability=float(s["probability"]), band=s["band"], flagged=bool(s["flagged"]),
        model=s.get("model", {}), base_value=base, raw_score=raw, reasons=reasons, steps=steps,
        chart=waterfall_chart(steps),
        all_contributions=[{"feature": f, "label": names[f], "value": shown[f], "contribution": contributions[f]}
                           for f in ranked],
        residual=raw - (base + math.fsum(contributions.values())),
        cause_absent=_cause_absent(s))


def _cause_absent(s: dict[str, Any]) -> str | None:
    """Why a score with a probability is not flagged: the household lacks the risk's cause."""
    if s.get("cause_present") is not False:
        return None
    cause = Cause.of(s["risk"])
    return cause.absent_label if cause is not None else "家中不具备此风险的起因，不提示此风险"


def _age(birth: str | None, as_of: str) -> int | None:
    try:
        b, t = dt.date.fromisoformat(birth or ""), dt.date.fromisoformat(as_of)
    except ValueError:
        return None
    return t.year - b.year - ((t.month, t.day) < (b.month, b.day))


def income_summary(income: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per person and source: months with income, the total and the mean of those months (yuan)."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in income:
        by[(row["person_id"], row["source"])].append(row)
    out = []
    for (person, source), rows in sorted(by.items()):
        months = sorted({r["month"] for r in rows})
        total = math.fsum(float(r["amount"]) for r in rows)
        out.append({"person_id": person, "source": source, "months": len(months), "first": months[0],
                    "last": months[-1], "total": total, "mean": total / len(months)})
    return out


def inputs_view(request: dict[str, Any]) -> dict[str, Any]:
    as_of = request.get("as_of", "")
    members = [{**m, "age": _age(m.get("birth_date"), as_of)} for m in request.get("members", [])]
    claims = sorted(request.get("claims", []), key=lambda c: (c.get("service_date", ""), c.get("claim_id", "")),
                    reverse=True)
    money = ("total_cost", "fund_paid", "critical_illness_paid", "assistance_paid", "out_of_pocket")
    totals = {k: math.fsum(float(c.get(k, 0)) for c in claims) for k in money}
    totals["inpatient_days"] = sum(int(c.get("inpatient_days", 0)) for c in claims)
    income = request.get("income", [])
    return {"household": request.get("household", {}), "members": members, "claims": claims,
            "claim_totals": totals, "income": income_summary(income),
            "income_total": math.fsum(float(r["amount"]) for r in income),
            "income_months": len({r["month"] for r in income}),
            "assistance": request.get("assistance", [])}


def history_rows(records: list[AuditRecord], current: str) -> list[dict[str, Any]]:
    return [{"request_id": r.request_id, "seq": r.seq, "created_at": beijing(r.created_at), "as_of": r.as_of,
             "household_id": r.household_id,
             "kind": r.kind, "current": r.request_id == current,
             "models": ", ".join(f"{m['name']} v{m['version']}" for m in r.models),
             "scores": [{"risk": s["risk"], "probability": s["probability"], "band": s["band"],
                         "flagged": s["flagged"]} for s in r.scores]} for r in records]


def access_rows(events: list[AccessEvent]) -> list[dict[str, Any]]:
    return [{"seq": e.seq, "created_at": beijing(e.created_at), "role": e.caller.role, "key_id": e.caller.key_id,
             "action": e.action, "count": e.count} for e in events]


def case_context(rec: AuditRecord, history: list[AuditRecord], head_seq: int | None,
                 access: list[AccessEvent] | None = None) -> dict[str, Any]:
    return {"rec": rec, "created_at": beijing(rec.created_at), "scores": [score_view(s) for s in rec.scores],
            "inputs": inputs_view(rec.request), "history": history_rows(history, rec.request_id),
            "head_seq": head_seq, "zh": labels.name, "access": access_rows(access or []),
            "purged_at": beijing(rec.purged_at) if rec.purged_at else None}
