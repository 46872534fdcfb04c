"""Chart geometry for the auditor's pages, computed here and drawn as inline SVG by the templates.

The geometry is plain numbers and strings, so the templates escape every label (Jinja2 autoescape)
and the browser draws the Chinese text with the fonts it has: no image library and no font on the
server. Scales are linear; log-odds for explanations, probabilities for calibration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TOP_STEPS = 10  # features drawn one by one in a waterfall; the rest are one "其他 N 项" bar

# layout, in SVG user units (the SVG scales to the page width)
WIDTH = 920
LABEL_W = 360     # left column: feature labels, right-aligned (24 CJK characters at 13px ≈ 315)
VALUE_W = 96      # right column: the number of each bar
ROW_H = 26
BAR_H = 16
TOP = 8
AXIS_H = 34


@dataclass(frozen=True)
class Step:
    """One bar of a waterfall: ``start`` → ``end`` on the log-odds axis."""

    kind: str            # base | raises | lowers | other | total
    label: str
    value: float         # the contribution, or the base value / raw score itself
    start: float
    end: float
    feature: str | None = None
    shown_value: str = ""  # the household's own value, as a caseworker reads it


@dataclass(frozen=True)
class Bar:
    y: float
    x: float
    w: float
    cls: str
    label: str
    value_text: str
    title: str


@dataclass
class Chart:
    width: float
    height: float
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    zero_x: float
    axis_y: float
    axis_label: str
    connectors: list[tuple[float, float, float]] = field(default_factory=list)  # x, y1, y2
    label_x: float = LABEL_W - 10
    value_x: float = WIDTH - VALUE_W + 8


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, t = [], first
    while t <= hi + 1e-9 * step:
        out.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return out


def _tick_text(t: float) -> str:
    return f"{t:g}" if abs(t) >= 1e-3 or t == 0 else f"{t:.0e}"


def waterfall_steps(base_value: float, raw_score: float, contributions: Mapping[str, float],
                    labels: Mapping[str, str], shown_values: Mapping[str, str], top: int = TOP_STEPS) -> list[Step]:
    """Base value, then the ``top`` largest contributions (by magnitude, ties in feature order), then
    the rest as one step, then the raw score: ``base + Σ steps = raw score``."""
    order = sorted(contributions, key=lambda f: -abs(contributions[f]))  # sorted() is stable: ties keep order
    steps = [Step("base", "基准值 base value", base_value, 0.0, base_value)]
    at = base_value
    for fid in order[:top]:
        c = contributions[fid]
        steps.append(Step("raises" if c > 0 else "lowers" if c < 0 else "other", labels.get(fid, fid), c, at, at + c,
                          feature=fid, shown_value=shown_values.get(fid, "")))
        at += c
    rest = order[top:]
    if rest:
        c = math.fsum(contributions[f] for f in rest)
        steps.append(Step("other", f"其他 {len(rest)} 项", c, at, at + c))
        at += c
    steps.append(Step("total", "原始分数 raw score", raw_score, 0.0, raw_score))
    return steps


def _scale(lo: float, hi: float, x0: float, x1: float):
    span = hi - lo or 1.0
    return lambda v: x0 + (v - lo) / span * (x1 - x0)


def waterfall_chart(steps: Sequence[Step]) -> Chart:
    ends = [v for s in steps for v in (s.start, s.end)] + [0.0]
    lo, hi = min(ends), max(ends)
    pad = (hi - lo) * 0.04 or 0.5
    ticks = nice_ticks(lo - pad, hi + pad)
    lo, hi = min(lo - pad, ticks[0]), max(hi + pad, ticks[-1])
    x = _scale(lo, hi, LABEL_W, WIDTH - VALUE_W)
    bars: list[Bar] = []
    connectors: list[tuple[float, float, float]] = []
    for i, s in enumerate(steps):
        y = TOP + i * ROW_H
        a, b = sorted((x(s.start), x(s.end)))
        sign = "" if s.kind in ("base", "total") else ("+" if s.value > 0 else "")
        title = f"{s.label}：{s.shown_value}，" if s.shown_value else f"{s.label}："
        bars.append(Bar(y=y, x=a, w=max(b - a, 1.0), cls=s.kind, label=s.label, value_text=f"{sign}{s.value:.3f}",
                        title=f"{title}{s.value:+.6f}"))
        if i < len(steps) - 1:  # each step starts where the one above it ended
            connectors.append((x(s.end), y + BAR_H, y + ROW_H))
    height = TOP + len(steps) * ROW_H + AXIS_H
    return Chart(width=WIDTH, height=height, bars=bars, ticks=[(x(t), _tick_text(t)) for t in ticks], zero_x=x(0.0),
                 axis_y=TOP + len(steps) * ROW_H, axis_label="对数几率 log-odds", connectors=connectors)


def bar_chart(rows: Sequence[tuple[str, float]], axis_label: str, digits: int = 3) -> Chart:
    """Horizontal bars from zero, in the order given (the caller sorts)."""
    hi = max([v for _, v in rows] + [0.0]) or 1.0
    ticks = nice_ticks(0.0, hi * 1.02)
    hi = max(hi * 1.02, ticks[-1])
    x = _scale(0.0, hi, LABEL_W, WIDTH - VALUE_W)
    bars = [Bar(y=TOP + i * ROW_H, x=x(0.0), w=max(x(v) - x(0.0), 1.0), cls="importance", label=label,
                value_text=f"{v:.{digits}f}", title=f"{label}：{v:.6f}") for i, (label, v) in enumerate(rows)]
    return Chart(width=WIDTH, height=TOP + len(rows) * ROW_H + AXIS_H, bars=bars,
                 ticks=[(x(t), _tick_text(t)) for t in ticks], zero_x=x(0.0), axis_y=TOP + len(rows) * ROW_H,
                 axis_label=axis_label)


def share_chart(bins: Sequence[str], reference: Sequence[float], current: Sequence[float]) -> Chart:
    """Drift of one variable: per bin, the training reference's share above the window's share
    (two bars, classes ``reference`` and ``current``; an empty ``current`` draws the reference only)."""
    rows: list[tuple[str, str, float]] = []
    for i, label in enumerate(bins):
        rows.append((label, "reference", float(reference[i])))
        if current:
            rows.append(("", "current", float(current[i])))
    hi = max([v for *_, v in rows] + [0.01])
    ticks = nice_ticks(0.0, hi * 1.02)
    hi = max(hi * 1.02, ticks[-1])
    x = _scale(0.0, hi, LABEL_W, WIDTH - VALUE_W)
    names = {"reference": "训练参考", "current": "当前窗口"}
    bars = [Bar(y=TOP + i * ROW_H, x=x(0.0), w=max(x(v) - x(0.0), 1.0), cls=cls, label=label,
                value_text=f"{v:.1%}", title=f"{bins[i // (2 if current else 1)]} · {names[cls]}：{v:.2%}")
            for i, (label, cls, v) in enumerate(rows)]
    return Chart(width=WIDTH, height=TOP + len(rows) * ROW_H + AXIS_H, bars=bars,
                 ticks=[(x(t), f"{t:.0%}") for t in ticks], zero_x=x(0.0), axis_y=TOP + len(rows) * ROW_H,
                 axis_label="占比 share（灰：训练参考 reference；红：当前窗口 current）")


@dataclass
class ScatterChart:
    """Observed rate against mean predicted probability, with the diagonal of perfect calibration."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    points: list[tuple[float, float, str]]
    polyline: str
    diagonal: tuple[float, float, float, float]
    xticks: list[tuple[float, str]]
    yticks: list[tuple[float, str]]


def calibration_chart(rows: Sequence[Mapping[str, float]]) -> ScatterChart:
    w, h, left, right, top, bottom = 460.0, 400.0, 64.0, 440.0, 16.0, 340.0
    vals = [max(float(r["mean_probability"]), float(r["observed_rate"])) for r in rows]
    lim = max([0.05] + [v * 1.1 for v in vals if math.isfinite(v)])
    ticks = nice_ticks(0.0, lim, 6)
    lim = max(lim, ticks[-1])
    sx = _scale(0.0, lim, left, right)

    def sy(v: float) -> float:
        return bottom - (v / lim) * (bottom - top)

    pts = [(sx(float(r["mean_probability"])), sy(float(r["observed_rate"])),
            f"预测 {float(r['mean_probability']):.4f}，实际 {float(r['observed_rate']):.4f}，{int(r.get('n', 0))} 户")
           for r in rows]
    return ScatterChart(width=w, height=h, left=left, right=right, top=top, bottom=bottom, points=pts,
                        polyline=" ".join(f"{px:.1f},{py:.1f}" for px, py, _ in pts),
                        diagonal=(sx(0.0), sy(0.0), sx(lim), sy(lim)),
                        xticks=[(sx(t), _tick_text(t)) for t in ticks], yticks=[(sy(t), _tick_text(t)) for t in ticks])
