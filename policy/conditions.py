"""The condition language of the policy file's ``[[list]]`` and ``[[measure]]`` entries: reading it,
checked, and evaluating it for many households at once.

Conditions are over the feature ids of :mod:`features.catalog` with explicit thresholds, a threshold
being a number, a parameter of the dated ``[[version]]`` in force (``dibao_line``, ``edge_line`` …)
or a ``[rules]`` key. Nothing is ``eval``'d: a condition is a feature, an operator from :data:`OPS`
and a threshold; groups are ``all`` / ``any`` / ``none``; the one named helper is ``low_income``.
Entries are checked when loaded, so a typo fails there, naming the entry and the field.

A missing value satisfies no condition, so it never makes a group hold by itself; in a ``none``
group it therefore does not make it fail. An income nobody reported is such a value: the features
give it as 0 with an indicator (``features.catalog.UNREPORTED_BY``), and the conditions read it as
missing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pandas as pd

from features.catalog import BY_ID, FEATURE_IDS, UNREPORTED_BY
from features.dated import parse_day
from features.policy import PolicyVersion

OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal,
}
OP_ZH = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "=", "!=": "≠"}
NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
# [[version]] parameters a threshold may name: Chinese name and unit
PARAMS = {
    "dibao_line": ("低保标准", "元/人·月"), "edge_line": ("低保边缘标准", "元/人·月"),
    "edge_multiple": ("低保边缘倍数", "比值"), "pdi_urban": ("上年城镇居民人均可支配收入", "元/年"),
    "pdi_rural": ("上年农村居民人均可支配收入", "元/年"), "pdi_all": ("上年居民人均可支配收入", "元/年"),
    "rigid_share": ("支出型困难刚性支出占收入比例", "比值"),
}
RULE_LABELS = {
    "xian_burden_general": ("一般人群个人自付预警线（西安规则）", "元"),
    "xian_burden_low_income": ("低收入人群个人自付预警线（西安规则）", "元"),
    "single_stay_general": ("单次住院自付预警线（一般人群）", "元"),
    "single_stay_monitored": ("单次住院自付预警线（监测对象）", "元"),
    "catastrophic_capacity_share": ("灾难性医疗支出占支付能力比例（WHO）", "比值"),
}
ON_PROGRAMS = {"on_dibao": "低保", "on_dibao_edge": "低保边缘", "on_tekun": "特困供养",
               "on_expenditure_hardship": "支出型困难救助"}
HELPERS = {"low_income": ("低收入人口", (*ON_PROGRAMS, "income_12m_per_capita_month"))}
GROUPS = ("all", "any", "none")
SMALL_FRAME = 1000
_ASCII_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class DefinitionError(ValueError):
    """A bad ``[[list]]`` or ``[[measure]]`` definition; the message names the entry and the field."""


@dataclass(frozen=True)
class Condition:
    """``feature op threshold``; the threshold is ``value``, the parameter ``param`` or the rule
    ``rule``, times ``times``."""

    feature: str
    op: str
    value: float | None = None
    param: str | None = None
    rule: str | None = None
    times: float = 1.0

    def threshold(self, v: PolicyVersion | None, rules: Mapping[str, float]) -> float:
        if self.param is not None:
            if v is None:
                raise ValueError(f"condition on {self.feature} needs the policy parameters in force")
            base = v.edge_line if self.param == "edge_line" else float(getattr(v, self.param))
        elif self.rule is not None:
            if self.rule not in rules:
                raise KeyError(f"the policy book has no rule {self.rule!r}")
            base = float(rules[self.rule])
        else:
            base = float(self.value)  # type: ignore[arg-type]
        return base * self.times

    def holds(self, x: np.ndarray, threshold: float) -> np.ndarray:
        return OPS[self.op](x, threshold) & ~np.isnan(x)

    def describe(self, x: np.ndarray, threshold: float, negate: bool = False) -> np.ndarray:
        """Per value, ``近12个月家庭人均月收入 1,600 元/人·月 < 低保边缘标准 1,650 元/人·月``."""
        spec = BY_ID[self.feature]
        values = _fmt_many(x, spec.unit)
        if spec.unit == "是否":
            return f"{spec.label_zh}：" + values
        op = NEGATED[self.op] if negate else self.op
        if self.param is not None:
            name, unit = PARAMS[self.param]
        elif self.rule is not None:
            name, unit = RULE_LABELS.get(self.rule, (f"规则参数 {self.rule}", spec.unit))
        else:
            name, unit = "", spec.unit
        times = f"{self.times:g} × " if self.times != 1.0 and name else ""
        shown = f"{times}{name} {fmt(threshold, unit)}" if name else fmt(threshold, unit)
        return np.where(np.isnan(x), f"{spec.label_zh}：未报告",
                        f"{spec.label_zh} " + values + f" {OP_ZH[op]} {shown}")


@dataclass(frozen=True)
class Helper:
    name: str


@dataclass(frozen=True)
class Group:
    kind: str  # all | any | none
    items: tuple[Node, ...]


Node = Union[Condition, Helper, Group]  # noqa: UP007 - a runtime alias, read before the classes exist


# ---- reading and checking ----------------------------------------------------------------------
def parse_items(raw: Any, where: str, rules: Mapping[str, float] | None, allow_refs: bool = True
                ) -> tuple[Node, ...]:
    """A non-empty array of conditions, helpers and nested groups. ``rules`` None: rule names are
    not checked; ``allow_refs`` False: only numeric thresholds (no dated parameter at hand)."""
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(f"{where}: must be a non-empty array of conditions")
    return tuple(_parse_node(item, f"{where}[{i}]", rules, allow_refs) for i, item in enumerate(raw))


def _parse_node(raw: Any, where: str, rules: Mapping[str, float] | None, allow_refs: bool) -> Node:
    if not isinstance(raw, Mapping):
        raise DefinitionError(f"{where}: a condition must be a table such as "
                              "{feature = \"oop_12m\", op = \">\", value = 10000}")
    groups = [g for g in GROUPS if g in raw]
    if groups:
        if len(raw) != 1:
            raise DefinitionError(f"{where}: a nested group has exactly one key (all, any or none)")
        g = groups[0]
        return Group(g, parse_items(raw[g], f"{where}.{g}", rules, allow_refs))
    if "helper" in raw:
        _no_unknown(raw, {"helper"}, where)
        if raw["helper"] not in HELPERS:
            raise DefinitionError(f"{where}.helper: unknown helper {raw['helper']!r}; known: {sorted(HELPERS)}")
        return Helper(raw["helper"])
    _require(raw, ("feature", "op"), where)
    _no_unknown(raw, {"feature", "op", "value", "param", "rule", "times"}, where)
    if raw["feature"] not in FEATURE_IDS:
        raise DefinitionError(f"{where}.feature: unknown feature id {raw['feature']!r} (not in features.catalog)")
    if raw["op"] not in OPS:
        raise DefinitionError(f"{where}.op: unknown operator {raw['op']!r}; use one of {list(OPS)}")
    given = [k for k in ("value", "param", "rule") if k in raw]
    if len(given) != 1:
        raise DefinitionError(f"{where}: give exactly one threshold: value, param or rule (got {given or 'none'})")
    if not allow_refs and given[0] != "value":
        raise DefinitionError(f"{where}.{given[0]}: only numeric thresholds (value) are allowed here")
    if "value" in raw and not _is_number(raw["value"]):
        raise DefinitionError(f"{where}.value: must be a number, got {raw['value']!r}")
    if "param" in raw and raw["param"] not in PARAMS:
        raise DefinitionError(f"{where}.param: unknown parameter {raw['param']!r}; known: {list(PARAMS)}")
    if "rule" in raw and rules is not None and raw["rule"] not in rules:
        raise DefinitionError(f"{where}.rule: unknown rule {raw['rule']!r}; [rules] has {sorted(rules)}")
    if "times" in raw and not _is_number(raw["times"]):
        raise DefinitionError(f"{where}.times: must be a number, got {raw['times']!r}")
    return Condition(feature=raw["feature"], op=raw["op"],
                     value=float(raw["value"]) if "value" in raw else None,
                     param=raw.get("param"), rule=raw.get("rule"), times=float(raw.get("times", 1.0)))


def _where(kind: str, k: int, raw: Any) -> str:
    ident = raw.get("id") if isinstance(raw, Mapping) else None
    return f"[[{kind}]] #{k + 1}" + (f" {ident!r}" if ident else "")


def _require(raw: Mapping[str, Any], fields: Iterable[str], where: str) -> None:
    for f in fields:
        if f not in raw:
            raise DefinitionError(f"{where}: missing field '{f}'")


def _no_unknown(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise DefinitionError(f"{where}: unknown field '{extra[0]}'; allowed: {sorted(allowed)}")


def _check_id(ident: Any, where: str) -> None:
    if not isinstance(ident, str) or not _ASCII_ID.match(ident):
        raise DefinitionError(f"{where}, field 'id': must be a lower-case ASCII identifier, got {ident!r}")


def _text(raw: Mapping[str, Any], field: str, where: str) -> str:
    if not isinstance(raw[field], str) or not raw[field].strip():
        raise DefinitionError(f"{where}, field '{field}': must be non-empty text")
    return raw[field]


def _bool(x: Any, where: str) -> bool:
    if not isinstance(x, bool):
        raise DefinitionError(f"{where}, field 'active': must be true or false")
    return x


def _date(x: Any, where: str) -> dt.date:
    try:
        return parse_day(x, where)
    except ValueError as exc:
        raise DefinitionError(str(exc)) from None


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _as_date(as_of: dt.date | str | pd.Timestamp) -> dt.date:
    if type(as_of) is dt.date:
        return as_of
    if isinstance(as_of, str) and len(as_of) == 10:
        return dt.date.fromisoformat(as_of)
    return pd.Timestamp(as_of).date()


def _features_of(node: Node) -> Iterable[str]:
    """The features ``node`` reads, with the indicator of each income figure that may stand for
    nothing reported (:func:`_Frame.col` needs both)."""
    if isinstance(node, Condition):
        named: Iterable[str] = (node.feature,)
    elif isinstance(node, Helper):
        named = HELPERS[node.name][1]
    else:
        for item in node.items:
            yield from _features_of(item)
        return
    for fid in named:
        yield fid
        if fid in UNREPORTED_BY:
            yield UNREPORTED_BY[fid]


# ---- evaluation ----------------------------------------------------------------------------------
class _Frame:
    """Column arrays (read once each) of ``n`` households, with the parameters in force."""

    def __init__(self, columns: pd.DataFrame | Mapping[str, np.ndarray], n: int, v: PolicyVersion | None,
                 rules: Mapping[str, float]):
        self.columns, self.n, self.v, self.rules = columns, n, v, rules
        self.raw: dict[str, np.ndarray] = {}
        self.cols: dict[str, np.ndarray] = {}
        if isinstance(columns, pd.DataFrame) and n <= SMALL_FRAME:
            # a few rows (the API's one household): one conversion beats a column lookup per feature
            try:
                values = columns.to_numpy(dtype="float64")
            except (TypeError, ValueError):  # a non-numeric extra column: read per feature instead
                return
            self.raw = {c: values[:, j] for j, c in enumerate(columns.columns.tolist())}

    def _read(self, name: str) -> np.ndarray:
        if name not in self.raw:
            self.raw[name] = np.asarray(self.columns[name], dtype="float64")
        return self.raw[name]

    def col(self, name: str) -> np.ndarray:
        """The values as conditions read them: an income figure that stands for nothing reported
        (``features.catalog.UNREPORTED_BY``: its indicator is 1) is missing, not 0."""
        if name not in self.cols:
            x = self._read(name)
            if name in UNREPORTED_BY:
                x = np.where(self._read(UNREPORTED_BY[name]) > 0, np.nan, x)
            self.cols[name] = x
        return self.cols[name]

    def take(self, rows: np.ndarray, names: Iterable[str]) -> _Frame:
        return _Frame({c: self.col(c)[rows] for c in names}, len(rows), self.v, self.rules)


def _low_income(f: _Frame) -> np.ndarray:
    """training/rules.py's ``_low_income``: on any programme, or income below the 低边 line."""
    if f.v is None:
        raise ValueError("the low_income helper needs the policy parameters in force")
    on_any = np.logical_or.reduce([f.col(c) > 0 for c in ON_PROGRAMS])
    return on_any | (f.col("income_12m_per_capita_month") < f.v.edge_line)


def evaluate(node: Node, f: _Frame) -> np.ndarray:
    """Where ``node`` holds, one boolean per household of ``f``."""
    if isinstance(node, Condition):
        return node.holds(f.col(node.feature), node.threshold(f.v, f.rules))
    if isinstance(node, Helper):
        return _low_income(f)
    parts = [evaluate(item, f) for item in node.items]
    if node.kind == "all":
        return np.logical_and.reduce(parts)
    hit = np.logical_or.reduce(parts)
    return hit if node.kind == "any" else ~hit


def holds_for(node: Node, columns: Mapping[str, np.ndarray], v: PolicyVersion | None = None,
              rules: Mapping[str, float] | None = None) -> np.ndarray:
    """``node`` for many households at once: ``columns`` maps feature ids to arrays of one length."""
    n = len(next(iter(columns.values()), ()))
    return evaluate(node, _Frame({c: columns[c] for c in _features_of(node)}, n, v, rules or {}))


def holds_at(node: Node, row: Mapping[str, float | None], v: PolicyVersion | None,
             rules: Mapping[str, float]) -> bool:
    """``node`` for one household's feature values (a row of the features frame, or a mapping)."""
    cols = {c: np.array([math.nan if (x := row[c]) is None else float(x)]) for c in _features_of(node)}
    return bool(evaluate(node, _Frame(cols, 1, v, rules))[0])


Columns = Union[pd.DataFrame, Mapping[str, np.ndarray]]  # noqa: UP007 - a runtime alias


def fmt(x: float | None, unit: str) -> str:
    """A value as a caseworker reads it: ``1,649.99 元/人·月``, ``0.6``, ``75 岁``, ``未报告``."""
    if x is None or math.isnan(x):
        return "未报告"
    if unit == "是否":
        return "是" if x >= 0.5 else "否"
    text = (f"{x:,.4f}" if unit == "比值" else f"{x:,.2f}").rstrip("0").rstrip(".")
    return text if unit == "比值" else f"{text} {unit}"


def _fmt_many(x: np.ndarray, unit: str) -> np.ndarray:
    """:func:`fmt` per value, each distinct value formatted once (counts and flags repeat a lot)."""
    if not len(x):
        return np.array([], dtype=object)
    distinct, inverse = np.unique(x, return_inverse=True)
    return np.array([fmt(v, unit) for v in distinct.tolist()], dtype=object)[inverse.reshape(-1)]


# ---- the definition as text, without a household -------------------------------------------------
def rule_text(node: Node, v: PolicyVersion | None, rules: Mapping[str, float], depth: int = 0) -> str:
    """``node`` as a caseworker reads it, each threshold named with its value in force:
    ``近12个月家庭人均月收入 < 低保边缘标准（1,650 元/人·月）``. ``v``: the parameters in force
    (one :class:`PolicyVersion`: the caller chooses which, by date or by city); ``rules``: the
    ``[rules]`` values. A list's own groups are joined by "；", groups nested in them by "，"."""
    if isinstance(node, Condition):
        return _condition_text(node, v, rules)
    if isinstance(node, Helper):
        return _helper_text(v)
    parts = [rule_text(item, v, rules, depth + 1) for item in node.items]
    if node.kind == "all":
        return ("；" if depth == 0 else "，且").join(parts)
    if node.kind == "any":
        if len(parts) == 1:
            return parts[0]
        return "满足其一：" + "；或".join(parts) if depth <= 1 else "（" + "，或".join(parts) + "）"
    return ("不包括：" if depth <= 1 else "并非") + "，或".join(parts)


def _condition_text(c: Condition, v: PolicyVersion | None, rules: Mapping[str, float]) -> str:
    spec = BY_ID[c.feature]
    value = c.threshold(v, rules)
    if spec.unit == "是否":  # a flag: "正在享受低保" (holds for yes only), "正在享受低保：否" (for no only)
        yes, no = bool(OPS[c.op](1.0, value)), bool(OPS[c.op](0.0, value))
        if yes != no:
            return spec.label_zh if yes else f"{spec.label_zh}：否"
    if c.param is not None:
        name, unit = PARAMS[c.param]
    elif c.rule is not None:
        name, unit = RULE_LABELS.get(c.rule, (f"规则参数 {c.rule}", spec.unit))
    else:
        return f"{spec.label_zh} {OP_ZH[c.op]} {fmt(value, spec.unit)}"
    if c.times != 1.0:  # the value shown is the product: "低保边缘标准的 2 倍（3,300 元/人·月）"
        name = f"{name}的 {c.times:g} 倍"
    shown = fmt(value, unit)
    named = f"{name[:-1]}，{shown}）" if name.endswith("）") else f"{name}（{shown}）"
    return f"{spec.label_zh} {OP_ZH[c.op]} {named}"


def _helper_text(v: PolicyVersion | None) -> str:
    if v is None:
        raise ValueError("the low_income helper needs the policy parameters in force")
    programs = "、".join(ON_PROGRAMS.values())
    return (f"低收入人口（正在享受{programs}，或近12个月家庭人均月收入 < 低保边缘标准"
            f"（{fmt(v.edge_line, '元/人·月')}））")
