"""Today's high-risk lists (主动发现的重点人群清单): which lists each household is on, and why.

The definitions are data (``[[list]]`` in ``features/policy_parameters.toml``) in the condition
language of :mod:`policy.conditions` (features, operators and thresholds; ``all`` / ``any`` / ``none``
groups; the ``low_income`` helper). Definitions are checked when loaded, so a typo fails there,
naming the list and the field, not while listing.

A missing value satisfies no condition, nor does an income nobody reported (``policy.conditions``),
so it never puts a household on a list by itself; in a ``none`` group it therefore does not keep one off.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.dated import in_force_by_id
from features.io import policy_file_text
from features.policy import PolicyBook, PolicyVersion
from policy.conditions import (
    GROUPS,
    ON_PROGRAMS,
    Columns,
    Condition,
    DefinitionError,
    Group,
    Helper,
    Node,
    _as_date,
    _bool,
    _check_id,
    _date,
    _features_of,
    _fmt_many,
    _Frame,
    _no_unknown,
    _require,
    _text,
    _where,
    evaluate,
    fmt,
    parse_items,
    rule_text,
)

LIST_FIELDS = {"id", "label_zh", "description_zh", "version", "effective_from", "active", *GROUPS}


@dataclass(frozen=True)
class ListDefinition:
    id: str
    label_zh: str
    description_zh: str
    version: str
    effective_from: dt.date
    condition: Group
    active: bool = True

    @cached_property
    def features(self) -> frozenset[str]:
        return frozenset(_features_of(self.condition))


@dataclass(frozen=True)
class ListBook:
    """Every version of every list, in file order."""

    definitions: tuple[ListDefinition, ...]
    rules: Mapping[str, float]
    _in_force: dict[dt.date, tuple[ListDefinition, ...]] = field(default_factory=dict, compare=False, repr=False)

    def at(self, as_of: dt.date | str | pd.Timestamp) -> tuple[ListDefinition, ...]:
        """The lists in force on ``as_of``: per id, the version with the latest ``effective_from``
        on or before it (none if that version is withdrawn), in the order ids first appear."""
        day = _as_date(as_of)
        if day not in self._in_force:
            self._in_force[day] = in_force_by_id(self.definitions, day)
        return self._in_force[day]


# ---- loading and checking ------------------------------------------------------------------------
def load_lists(path: str | Path | None = None) -> ListBook:
    """The ``[[list]]`` definitions of the policy file (the packaged one when ``path`` is None)."""
    return parse_lists(tomllib.loads(policy_file_text(path)))


def parse_lists(doc: Mapping[str, Any]) -> ListBook:
    raw_lists = doc.get("list", [])
    if not raw_lists:
        raise DefinitionError("the policy file has no [[list]]")
    rules = {k: float(x) for k, x in doc.get("rules", {}).items()}
    seen: set[tuple[str, dt.date]] = set()
    out = []
    for k, raw in enumerate(raw_lists):
        where = _where("list", k, raw)
        _require(raw, ("id", "label_zh", "description_zh", "version", "effective_from"), where)
        _no_unknown(raw, LIST_FIELDS, where)
        _check_id(raw["id"], where)
        groups = [Group(g, parse_items(raw[g], f"{where}, field '{g}'", rules)) for g in GROUPS if g in raw]
        if not groups:
            raise DefinitionError(f"{where}: no conditions: give at least one of 'all', 'any', 'none'")
        d = ListDefinition(id=raw["id"], label_zh=_text(raw, "label_zh", where),
                           description_zh=_text(raw, "description_zh", where), version=str(raw["version"]),
                           effective_from=_date(raw["effective_from"], f"{where}, field 'effective_from'"),
                           condition=Group("all", tuple(groups)), active=_bool(raw.get("active", True), where))
        if (d.id, d.effective_from) in seen:
            raise DefinitionError(f"{where}: a second version effective from {d.effective_from.isoformat()}")
        seen.add((d.id, d.effective_from))
        out.append(d)
    return ListBook(tuple(out), rules)


# ---- listing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Evaluated:
    """The lists in force, and per city group (:meth:`PolicyBook.groups`) its rows (None: all) and
    its features' columns with that city's parameters in force; the matrix of every household."""

    lists: tuple[ListDefinition, ...]
    groups: list[tuple[np.ndarray | None, _Frame]]
    matrix: np.ndarray


def _evaluate_lists(features: Columns, as_of: dt.date | str | pd.Timestamp, policy: PolicyBook,
                    book: ListBook, cities: np.ndarray | None = None) -> _Evaluated:
    """The lists in force and where each holds. ``features``: the features frame, or its columns as
    arrays of one length (feature id → array); ``cities``: each row's city (None: the home city's).
    A threshold naming a parameter takes the household's own city's: the rows of each city are
    evaluated together with its version in force (most calls have one city, one group)."""
    day = _as_date(as_of)
    lists = book.at(day)
    have = set(features.columns.tolist() if isinstance(features, pd.DataFrame) else features)
    for d in lists:
        missing = sorted(d.features - have)
        if missing:
            raise KeyError(f"the features frame lacks {missing}, needed by list {d.id!r}")
    n = len(features) if isinstance(features, pd.DataFrame) else len(next(iter(features.values()), ()))
    if cities is not None and len(cities) != n:
        raise ValueError(f"{len(cities)} cities for {n} households")
    rules = {**book.rules, **policy.rules}
    matrix = np.empty((n, len(lists)), dtype=bool)
    groups: list[tuple[np.ndarray | None, _Frame]] = []
    for city, rows in policy.groups(cities):
        if rows is None:
            f = _Frame(features, n, policy.at(day, city), rules)
        else:
            needed = set().union(*(d.features for d in lists))
            f = _Frame({c: np.asarray(features[c], dtype="float64")[rows] for c in needed}, len(rows),
                       policy.at(day, city), rules)
        for j, d in enumerate(lists):
            if rows is None:
                matrix[:, j] = evaluate(d.condition, f)
            else:
                matrix[rows, j] = evaluate(d.condition, f)
        groups.append((rows, f))
    return _Evaluated(lists, groups, matrix)


def list_matrix(features: pd.DataFrame, as_of: dt.date | str | pd.Timestamp, policy: PolicyBook,
                book: ListBook, cities: np.ndarray | None = None) -> pd.DataFrame:
    """One boolean column per list in force on ``as_of`` (book order), one row per household
    (``features``' index). ``features`` is :func:`features.build.build_features` at the same
    ``as_of``; thresholds that name a parameter use the ``[[version]]`` in force on ``as_of`` in
    each household's city (``cities``, one per row, as :func:`features.build.household_cities`
    gives them; None: the home city)."""
    e = _evaluate_lists(features, as_of, policy, book, cities)
    return pd.DataFrame(e.matrix, index=features.index, columns=pd.Index([d.id for d in e.lists], dtype=object))


def household_lists(features: Columns, as_of: dt.date | str | pd.Timestamp, policy: PolicyBook,
                    book: ListBook, cities: np.ndarray | None = None) -> list[list[dict[str, Any]]]:
    """Per household (row of ``features``, or position in its column arrays), the lists it is on, in
    book order: ``{"list", "label", "version", "why"}``, ``why`` a Chinese sentence with the
    household's own values against the thresholds (its own city's lines; ``cities`` as for
    :func:`list_matrix`)."""
    e = _evaluate_lists(features, as_of, policy, book, cities)
    n = e.matrix.shape[0]
    out: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for rows, f in e.groups:  # a household is in one group: its items come in book order
        local = e.matrix if rows is None else e.matrix[rows]
        for j, d in enumerate(e.lists):
            on = np.flatnonzero(local[:, j])
            if len(on):
                whys = f"{d.label_zh}：" + _why(d.condition, f.take(on, d.features)) + "。"
                for row, why in zip((on if rows is None else rows[on]).tolist(), whys, strict=True):
                    out[row].append({"list": d.id, "label": d.label_zh, "version": d.version, "why": why})
    return out


def _why(node: Node, f: _Frame, negate: bool = False, depth: int = 0) -> np.ndarray:
    """Per household of ``f``, why it satisfies ``node`` (``negate``: why it does not), as text.
    Only the parts that decided are cited: the branches of an ``any`` that hold, the members of a
    failed ``all``. The list's own groups are joined by "；", groups nested in them by "，"."""
    if isinstance(node, Condition):
        return node.describe(f.col(node.feature), node.threshold(f.v, f.rules), negate)
    if isinstance(node, Helper):
        return _why_low_income(f, negate)
    if node.kind == "none":
        return _why(Group("any", node.items), f, not negate, depth)
    sep = "；" if depth <= 1 else "，"
    if (node.kind == "all") != negate:  # every item holds (all), or every item fails (a negated any)
        texts = [_why(item, f, negate, depth + 1) for item in node.items]
        out = texts[0]
        for t in texts[1:]:
            out = out + sep + t
        return out
    out = np.full(f.n, "", dtype=object)  # an any that holds, or a negated all: the items that decided
    for item in node.items:
        decided = evaluate(item, f) != negate
        text = _why(item, f, negate, depth + 1)
        out = np.where(decided, np.where(out == "", text, out + sep + "或" + text), out)
    return out


def _why_low_income(f: _Frame, negate: bool) -> np.ndarray:
    assert f.v is not None
    income = "近12个月家庭人均月收入 " + _fmt_many(f.col("income_12m_per_capita_month"), "元/人·月")
    if negate:
        return "非低收入人口：未享受救助，" + income + " ≥ 低保边缘标准 " + fmt(f.v.edge_line, "元/人·月")
    names = np.full(f.n, "", dtype=object)
    for c, name in ON_PROGRAMS.items():
        on = f.col(c) > 0
        names = np.where(on, np.where(names == "", name, names + "、" + name), names)
    below = "低收入人口：" + income + " < 低保边缘标准 " + fmt(f.v.edge_line, "元/人·月")
    return np.where(names != "", "低收入人口：正在享受" + names, below)


# ---- the definitions, without a household -------------------------------------------------------
def definition_text(d: ListDefinition, v: PolicyVersion, rules: Mapping[str, float]) -> str:
    """``d``'s condition in Chinese with every threshold's value under the parameters ``v``
    (one :class:`PolicyVersion`, however the caller chose it): ``近12个月家庭人均月收入 ≥ 低保标准
    （1,100 元/人·月），且近12个月家庭人均月收入 < 低保边缘标准（1,650 元/人·月）；不包括：…``."""
    return rule_text(d.condition, v, rules)


def describe_lists(lists: tuple[ListDefinition, ...], v: PolicyVersion, rules: Mapping[str, float]
                   ) -> list[dict[str, Any]]:
    """Each of ``lists`` as people read it: ``{"list", "label", "description", "version",
    "effective_from", "definition"}``, ``definition`` by :func:`definition_text` under ``v``."""
    return [{"list": d.id, "label": d.label_zh, "description": d.description_zh, "version": d.version,
             "effective_from": d.effective_from.isoformat(), "definition": definition_text(d, v, rules)}
            for d in lists]


def lists_in_force(on: dt.date | str | pd.Timestamp, policy: PolicyBook, book: ListBook,
                   city: str | None = None) -> list[dict[str, Any]]:
    """The lists in force on ``on`` (:meth:`ListBook.at`), their thresholds under ``city``'s
    ``[[version]]`` in force that day (None: the home city); ``ValueError`` when no parameters are in
    force yet (before the city's first version), ``KeyError`` for a city the policy file does not know."""
    day = _as_date(on)
    return describe_lists(book.at(day), policy.at(day, city), {**book.rules, **policy.rules})


__all__ = ["Condition", "DefinitionError", "Group", "Helper", "LIST_FIELDS", "ListBook", "ListDefinition",
           "definition_text", "describe_lists", "household_lists", "list_matrix", "lists_in_force", "load_lists",
           "parse_lists"]
