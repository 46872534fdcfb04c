"""The funnel from discovery to help: per risk and town, how many households were flagged, then
visited, then found in need by an assessment, then given a plan, then helped (a measure delivered),
and the median days between consecutive steps. Counts only: no household id leaves this module.

A household reaches a step when it reached the one before and has a qualifying event on or after
its first flag for the risk (:mod:`store.funnel` reads the events): a visit (feedback), an
assessment with any domain at level ≥ 1, a plan measure, a delivered measure. A step's day is the
first such event; the days between steps can be negative when, say, a plan was drafted from the
score before the visit, and the median then says so.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import statistics
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from store.funnel import FunnelFacts, funnel_facts

STEPS = ("flagged", "visited", "need_confirmed", "plan_drafted", "delivered")
STEP_LABELS = {"flagged": "模型标记", "visited": "已走访", "need_confirmed": "评估确认有需求",
               "plan_drafted": "已制定帮扶计划", "delivered": "至少一项措施已落实"}


class FunnelCache:
    """The store's funnel facts, read at most once per ``ttl`` seconds: they change as visits and
    help are recorded, not per request, and reading them scans every flag the store keeps, which a
    service answering ``GET /v1/models`` often must not do each time."""

    def __init__(self, engine: Engine, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.ttl, self.clock = engine, ttl, clock
        self._lock = threading.Lock()
        self._facts: FunnelFacts | None = None
        self._at = -math.inf

    def facts(self) -> FunnelFacts:
        with self._lock:
            if self._facts is None or self.clock() - self._at >= self.ttl:
                self._facts, self._at = funnel_facts(self.engine), self.clock()
            return self._facts


def _first_on_or_after(days: Sequence[str], start: str) -> str | None:
    k = bisect.bisect_left(days, start)
    return days[k] if k < len(days) else None


def _between(a: str, b: str) -> int:
    return (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days


def funnel(facts: FunnelFacts, towns: Collection[str] | None = None) -> list[dict[str, Any]]:
    """``[{"risk", "town", "steps": {step: households}, "median_days": {step: days or None}}]``, by
    risk then town; ``towns`` (a key limited to towns) keeps only those towns' rows."""
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    later = (facts.visits, facts.needs, facts.plans, facts.delivered)
    for (risk, hid), (town, flagged_on) in facts.flags.items():
        if towns is not None and town not in towns:
            continue
        g = groups.setdefault((risk, town), {"steps": dict.fromkeys(STEPS, 0), "gaps": {s: [] for s in STEPS[1:]}})
        g["steps"]["flagged"] += 1
        previous = flagged_on
        for step, days in zip(STEPS[1:], later, strict=True):
            day = _first_on_or_after(days.get(hid, []), flagged_on)
            if day is None:
                break
            g["steps"][step] += 1
            g["gaps"][step].append(_between(previous, day))
            previous = day
    return [{"risk": risk, "town": town, "steps": g["steps"],
             "median_days": {s: (float(statistics.median(v)) if v else None) for s, v in g["gaps"].items()}}
            for (risk, town), g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]


def totals(rows: Sequence[dict[str, Any]], risk: str) -> dict[str, int]:
    """One risk's counts over all its towns (for a chart)."""
    out = dict.fromkeys(STEPS, 0)
    for r in rows:
        if r["risk"] == risk:
            for s in STEPS:
                out[s] += r["steps"][s]
    return out
