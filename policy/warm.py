"""The warm list (暖心清单): support measures that fit a household, each citing the rule that proposed it.

The measures are data (``[[measure]]`` in ``features/policy_parameters.toml``). A measure is proposed
when any of its triggers fires: the household is on a list (:mod:`policy.lists`), the policy
calculator finds it likely eligible for a programme (:func:`policy.calculator.check_programs`), a
model flagged a risk, a feature is among the top reasons raising a flagged risk, or (only when a
household's plan is drafted from a needs assessment) the household's assessed need level in a domain
reaches the trigger's level. Its ``unless`` conditions (numbers only, over the household's features)
leave out what the household already receives. A measure proposes what to check or tell the
household; it never decides or denies.

Each measure also names the department that owns it in a household's plan (一户一策; ``owner``, one
of the file's ``[[department]]`` ids, a closed list with Chinese names) and ``due_days``, the days
from drafting the plan to the measure's due date.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import BY_ID, FEATURE_IDS
from features.dated import in_force_by_id
from features.io import policy_file_text
from features.risks import RISK_LABELS
from policy.calculator import PROGRAM_LABELS
from policy.conditions import (
    DefinitionError,
    Node,
    _as_date,
    _bool,
    _check_id,
    _date,
    _no_unknown,
    _require,
    _text,
    _where,
    holds_at,
    holds_for,
    parse_items,
)

TRIGGER_KINDS = ("list", "program", "reason", "risk", "need")
MEASURE_FIELDS = {"id", "label_zh", "description_zh", "version", "effective_from", "active", "triggers", "unless",
                  "owner", "due_days"}
# the domains of a needs assessment (困难群众需求评估) a ``need`` trigger may name, with their Chinese names
NEED_DOMAINS = {"basic_living": "基本生活", "medical": "医疗", "care": "照护", "education": "教育",
                "employment": "就业", "housing": "住房", "child_protection": "未成年人保护",
                "social_support": "社会支持"}
MAX_DUE_DAYS = 366


@dataclass(frozen=True)
class Department:
    """A department that owns measures of households' plans (民政, 医保, …)."""

    id: str
    label_zh: str


@dataclass(frozen=True)
class Trigger:
    kind: str  # list | program | reason | risk | need
    id: str
    level: int | None = None  # need: the least assessed level that fires it


@dataclass(frozen=True)
class Measure:
    id: str
    label_zh: str
    description_zh: str
    version: str
    effective_from: dt.date
    triggers: tuple[Trigger, ...]
    unless: tuple[Node, ...] = ()
    active: bool = True
    owner: str = "minzheng"  # a [[department]] id
    due_days: int = 30


@dataclass(frozen=True)
class MeasureBook:
    """Every version of every measure, in file order."""

    measures: tuple[Measure, ...]
    departments: tuple[Department, ...] = ()
    _in_force: dict[dt.date | None, tuple[Measure, ...]] = field(default_factory=dict, compare=False, repr=False)

    def at(self, as_of: dt.date | str | pd.Timestamp | None = None) -> tuple[Measure, ...]:
        """The measures in force on ``as_of`` (None: the latest version of each), in the order ids
        first appear; a withdrawn version (``active = false``) leaves its measure out."""
        day = None if as_of is None else _as_date(as_of)
        if day not in self._in_force:
            self._in_force[day] = in_force_by_id(self.measures, day)
        return self._in_force[day]

    def department_label(self, department: str) -> str:
        """The department's Chinese name (its code when the file no longer knows it)."""
        return next((d.label_zh for d in self.departments if d.id == department), department)

    def latest(self, measure: str) -> Measure | None:
        """The latest version of a measure (withdrawn or not), None when the file never had it."""
        return next((m for m in reversed(self.measures) if m.id == measure), None)


def load_measures(path: str | Path | None = None) -> MeasureBook:
    """The ``[[measure]]`` definitions of the policy file (the packaged one when ``path`` is None);
    list triggers are checked against the same file's ``[[list]]`` ids."""
    return parse_measures(tomllib.loads(policy_file_text(path)))


def parse_measures(doc: Mapping[str, Any]) -> MeasureBook:
    raw_measures = doc.get("measure", [])
    if not raw_measures:
        raise DefinitionError("the policy file has no [[measure]]")
    known: dict[str, set[Any]] = {
        "list": {raw.get("id") for raw in doc.get("list", []) if isinstance(raw, Mapping)},
        "program": set(PROGRAM_LABELS), "reason": set(FEATURE_IDS), "risk": set(RISK_LABELS),
    }
    departments = parse_departments(doc)
    owners = {d.id for d in departments}
    seen: set[tuple[str, dt.date]] = set()
    out = []
    for k, raw in enumerate(raw_measures):
        where = _where("measure", k, raw)
        _require(raw, ("id", "label_zh", "description_zh", "version", "effective_from", "triggers", "owner",
                       "due_days"), where)
        _no_unknown(raw, MEASURE_FIELDS, where)
        _check_id(raw["id"], where)
        if raw["owner"] not in owners:
            raise DefinitionError(f"{where}, field 'owner': unknown department {raw['owner']!r}; known: "
                                  f"{sorted(owners)}")
        due = raw["due_days"]
        if isinstance(due, bool) or not isinstance(due, int) or not 1 <= due <= MAX_DUE_DAYS:
            raise DefinitionError(f"{where}, field 'due_days': must be a whole number of days from 1 to "
                                  f"{MAX_DUE_DAYS}, got {due!r}")
        m = Measure(id=raw["id"], label_zh=_text(raw, "label_zh", where),
                    description_zh=_text(raw, "description_zh", where), version=str(raw["version"]),
                    effective_from=_date(raw["effective_from"], f"{where}, field 'effective_from'"),
                    triggers=_triggers(raw["triggers"], f"{where}, field 'triggers'", known),
                    unless=(parse_items(raw["unless"], f"{where}, field 'unless'", None, allow_refs=False)
                            if "unless" in raw else ()),
                    active=_bool(raw.get("active", True), where), owner=raw["owner"], due_days=due)
        if (m.id, m.effective_from) in seen:
            raise DefinitionError(f"{where}: a second version effective from {m.effective_from.isoformat()}")
        seen.add((m.id, m.effective_from))
        out.append(m)
    return MeasureBook(tuple(out), departments)


def parse_departments(doc: Mapping[str, Any]) -> tuple[Department, ...]:
    """The ``[[department]]`` entries: unique ids, each with a Chinese name."""
    raw_departments = doc.get("department", [])
    if not raw_departments:
        raise DefinitionError("the policy file has no [[department]] (the owners of plan measures)")
    out: list[Department] = []
    for k, raw in enumerate(raw_departments):
        where = _where("department", k, raw)
        _require(raw, ("id", "label_zh"), where)
        _no_unknown(raw, {"id", "label_zh"}, where)
        _check_id(raw["id"], where)
        if any(d.id == raw["id"] for d in out):
            raise DefinitionError(f"{where}, field 'id': a second department {raw['id']!r}")
        out.append(Department(raw["id"], _text(raw, "label_zh", where)))
    return tuple(out)


def _triggers(raw: Any, where: str, known: Mapping[str, set[Any]]) -> tuple[Trigger, ...]:
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(f"{where}: must be a non-empty array such as [{{list = \"serious_illness\"}}]")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if isinstance(item, Mapping) and "need" in item:
            out.append(_need_trigger(item, at))
            continue
        if not isinstance(item, Mapping) or len(item) != 1 or next(iter(item)) not in TRIGGER_KINDS:
            raise DefinitionError(f"{at}: a trigger has exactly one key, one of {list(TRIGGER_KINDS)} "
                                  "(a need trigger also has a level)")
        kind, ident = next(iter(item.items()))
        if ident not in known[kind]:
            raise DefinitionError(f"{at}.{kind}: unknown {kind} {ident!r}")
        out.append(Trigger(kind, ident))
    return tuple(out)


def _need_trigger(item: Mapping[str, Any], at: str) -> Trigger:
    """``{need = "<domain>", level = N}``: the assessed level in that domain is at least N (≥ 1)."""
    if set(item) != {"need", "level"}:
        raise DefinitionError(f"{at}: a need trigger has exactly the keys need and level, "
                              "such as {need = \"housing\", level = 1}")
    if item["need"] not in NEED_DOMAINS:
        raise DefinitionError(f"{at}.need: unknown need domain {item['need']!r}; known: {list(NEED_DOMAINS)}")
    level = item["level"]
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise DefinitionError(f"{at}.level: must be a whole number ≥ 1, got {level!r}")
    return Trigger("need", item["need"], level)


def excluded_measures(book: MeasureBook, as_of: dt.date | str | pd.Timestamp | None,
                      columns: Mapping[str, np.ndarray]) -> list[frozenset[str]]:
    """Per household (position in ``columns``' arrays, feature id → values), the ids of the
    measures in force whose ``unless`` conditions hold: what :func:`warm_list` leaves out, for many
    households at once (the same evaluation as ``features=``, vectorised)."""
    n = len(next(iter(columns.values()), ()))
    out: list[set[str]] = [set() for _ in range(n)]
    for m in book.at(as_of):
        if not m.unless:
            continue
        hit = np.zeros(n, dtype=bool)
        for node in m.unless:
            hit |= holds_for(node, columns)
        for i in np.flatnonzero(hit).tolist():
            out[i].add(m.id)
    return [frozenset(x) for x in out]


def warm_list(lists: Sequence[Mapping[str, Any]], programs: Sequence[Mapping[str, Any]],
              scores: Sequence[Mapping[str, Any]] | None, book: MeasureBook, *,
              as_of: dt.date | str | pd.Timestamp | None = None,
              features: Mapping[str, float] | None = None,
              excluded: Collection[str] | None = None,
              needs: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """The measures proposed for one household, in the book's order, each once:
    ``{"measure", "label", "detail", "version", "proposed_by": [{"kind", "id", "label"}]}``.

    ``lists``: the household's items of :func:`policy.lists.household_lists`; ``programs``: the
    ``programs`` of :func:`policy.calculator.check_programs`; ``scores``: the API's scores
    (``{"risk", "flagged", "reasons": [{"feature", "contribution", …}]}``) or None. Only flagged
    risks count, and only reasons that raise them (positive contribution). ``as_of`` picks the
    measures' versions (None: the latest). ``features`` (the household's feature row) lets the
    ``unless`` conditions leave out what the household already receives; without it they are not
    applied, and the wording ("建议核实是否已享受") still holds. ``excluded``: instead of
    ``features``, the ids :func:`excluded_measures` found for the household. ``needs``: the
    household's assessed need level per domain (domain → level), given only when a plan is drafted;
    without it ``need`` triggers never fire (a score's warm list has none).
    """
    fired: dict[tuple[str, str], str] = {}
    for item in lists:
        fired[("list", item["list"])] = item.get("label") or item["list"]
    for p in programs:
        if p.get("eligible"):
            fired[("program", p["program"])] = p.get("label") or PROGRAM_LABELS.get(p["program"], p["program"])
    for s in scores or ():
        if not s.get("flagged"):
            continue
        fired[("risk", s["risk"])] = RISK_LABELS.get(s["risk"], s["risk"])
        for r in s.get("reasons") or ():
            if _raises(r):
                spec = BY_ID.get(r["feature"])
                fired.setdefault(("reason", r["feature"]), r.get("label") or (spec.label_zh if spec else r["feature"]))
    for domain, level in (needs or {}).items():
        if domain in NEED_DOMAINS and level >= 1:
            fired[("need", domain)] = f"{NEED_DOMAINS[domain]}需求"
    out = []
    for m in book.at(as_of):
        by = [_cited(t, fired[(t.kind, t.id)]) for t in dict.fromkeys(m.triggers)
              if (t.kind, t.id) in fired and (t.level is None or (needs or {}).get(t.id, 0) >= t.level)]
        if not by:
            continue
        if excluded is not None:
            if m.id in excluded:
                continue
        elif features is not None and any(holds_at(node, features, None, {}) for node in m.unless):
            continue
        out.append({"measure": m.id, "label": m.label_zh, "detail": m.description_zh, "version": m.version,
                    "proposed_by": by})
    return out


def _cited(t: Trigger, label: str) -> dict[str, Any]:
    """A fired trigger as the warm list cites it; a need trigger adds its level (``label``: 教育需求（等级≥1）)."""
    if t.level is None:
        return {"kind": t.kind, "id": t.id, "label": label}
    return {"kind": t.kind, "id": t.id, "label": f"{label}（等级≥{t.level}）", "level": t.level}


def _raises(reason: Mapping[str, Any]) -> bool:
    """A reason raises its risk: positive contribution, or ``direction`` "raises" when no number."""
    c = reason.get("contribution")
    if c is not None:
        return float(c) > 0
    return reason.get("direction", "raises") == "raises"
