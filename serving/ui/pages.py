"""Rendering: one Jinja2 environment with autoescape on for every template, the filters the pages
share, and the headers every page carries (no caching of personal data, no framing, no scripts)."""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from serving.ui import labels

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "ui"
STATIC = Path(__file__).resolve().parents[1] / "static"

# pages hold personal data: never cached, never framed by another site, no script at all
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-src 'self'; frame-ancestors 'self'; base-uri 'none'",
}


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{float(v):,.{digits}f}"


def _yuan(v: Any) -> str:
    return "—" if v is None else f"{float(v):,.2f}"


def _pct(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{float(v) * 100:.{digits}f}%"


def _signed(v: float, digits: int = 3) -> str:
    return f"{float(v):+.{digits}f}"


def _figure(v: float, kind: str) -> str:
    """A run's metric: a count, a share or a score."""
    if kind == "count":
        return f"{v:,.0f}"
    if kind == "share":
        return _pct(v, 1)
    if kind == "points":
        return f"{v * 100:+.1f} 个百分点"
    return f"{v:.4f}"


def _ms_time(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, yuan=_yuan, pct=_pct, signed=_signed, ms_time=_ms_time,
                       zh=lambda code, kind: labels.name(kind, code),
                       zh_short=lambda code, kind: labels.short(kind, code), figure=_figure)
    env.globals.update(zh=labels.name)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
