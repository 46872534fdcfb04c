"""The needs assessment instrument (困难群众需求评估): its domains, the data rules that pre-fill each
domain's level, and the overall grade of graded case management (分级分类).

The instrument is data (``[[instrument]]`` in ``features/policy_parameters.toml``, dated and versioned
as a whole, so an assessment's ``instrument_version`` says what its levels meant). A data rule fires
on conditions over the features (the condition language of :mod:`policy.conditions`, its evidence
naming the household's own values), on a list (:mod:`policy.lists`), on a programme the calculator
finds likely eligible, or on a model's flag or band. A domain's data level is the highest level
among its rules that hold. Entries are checked when loaded, naming the entry and the field.

Levels run 0 (no need) to 3 (urgent). Nothing here reads a store or knows of visits: combining the
data levels with caseworkers' assessments is :mod:`domain.needs`'.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.dated import in_force
from features.io import policy_file_text
from features.labels import BANDS
from features.policy import PolicyVersion
from features.risks import RISK_LABELS
from policy.calculator import PROGRAM_LABELS
from policy.conditions import (
    GROUPS,
    Columns,
    DefinitionError,
    Group,
    _as_date,
    _check_id,
    _date,
    _features_of,
    _Frame,
    _no_unknown,
    _require,
    _text,
    evaluate,
    parse_items,
)
from policy.lists import _why

LEVELS = (0, 1, 2, 3)
SOURCES = ("features", "list", "calculator", "model")
INSTRUMENT_FIELDS = {"version", "effective_from", "levels", "domains", "need", "grade"}
DOMAIN_FIELDS = {"id", "label_zh", "visit_only"}
NEED_FIELDS = {"id", "domain", "level", "text_zh", "list", "program", "risk", "band", *GROUPS}
GRADE_FIELDS = {"level", "label_zh", "description_zh", "when"}


@dataclass(frozen=True)
class Domain:
    id: str
    label_zh: str
    visit_only: bool = False  # filled only by visits: no data rule names it


@dataclass(frozen=True)
class NeedRule:
    """One data rule: ``source`` says what fires it (features, list, calculator, model)."""

    id: str
    domain: str
    level: int
    text_zh: str
    source: str
    condition: Group | None = None  # source "features"
    ref: str | None = None          # the list id, calculator programme or risk
    band: str | None = None         # source "model": this band instead of the flag

    @cached_property
    def features(self) -> frozenset[str]:
        return frozenset(_features_of(self.condition)) if self.condition is not None else frozenset()


@dataclass(frozen=True)
class Grade:
    level: int
    label_zh: str
    description_zh: str
    when: tuple[tuple[int, int], ...]  # (min_level, count): holds when any item does

    def holds(self, levels: Mapping[str, int]) -> bool:
        return any(sum(1 for v in levels.values() if v >= lo) >= n for lo, n in self.when)


@dataclass(frozen=True)
class Instrument:
    version: str
    effective_from: dt.date
    level_labels: tuple[str, ...]
    domains: tuple[Domain, ...]
    rules: tuple[NeedRule, ...]
    grades: tuple[Grade, ...]  # highest level first; the last is level 0

    @cached_property
    def by_domain(self) -> dict[str, Domain]:
        return {d.id: d for d in self.domains}

    def level_label(self, level: int) -> str:
        return self.level_labels[level]

    def grade(self, levels: Mapping[str, int]) -> Grade:
        """The overall grade of domain levels ``levels`` (domain id → 0–3): the highest that holds."""
        return next((g for g in self.grades if g.level == 0 or g.holds(levels)), self.grades[-1])


@dataclass(frozen=True)
class InstrumentBook:
    """Every version of the instrument, oldest first."""

    instruments: tuple[Instrument, ...]

    def at(self, as_of: dt.date | str | pd.Timestamp) -> Instrument:
        """The instrument in force on ``as_of`` (ValueError before the first)."""
        return in_force(self.instruments, _as_date(as_of), "needs assessment instrument")

    def version(self, version: str) -> Instrument | None:
        return next((i for i in self.instruments if i.version == version), None)


# ---- loading and checking ------------------------------------------------------------------------
def load_instruments(path: str | Path | None = None) -> InstrumentBook:
    """The ``[[instrument]]`` versions of the policy file (the packaged one when ``path`` is None);
    list triggers are checked against the same file's ``[[list]]`` ids."""
    return parse_instruments(tomllib.loads(policy_file_text(path)))


def parse_instruments(doc: Mapping[str, Any]) -> InstrumentBook:
    raw_all = doc.get("instrument", [])
    if not isinstance(raw_all, list) or not raw_all:
        raise DefinitionError("the policy file has no [[instrument]]")
    rules = {k: float(x) for k, x in doc.get("rules", {}).items()}
    lists = {raw.get("id") for raw in doc.get("list", []) if isinstance(raw, Mapping)}
    out: list[Instrument] = []
    for k, raw in enumerate(raw_all):
        where = f"[[instrument]] #{k + 1}" + (f" {str(raw.get('version'))!r}" if isinstance(raw, Mapping) else "")
        if not isinstance(raw, Mapping):
            raise DefinitionError(f"{where}: must be a table")
        _require(raw, ("version", "effective_from", "levels", "domains", "need", "grade"), where)
        _no_unknown(raw, INSTRUMENT_FIELDS, where)
        domains = _domains(raw["domains"], f"{where}, field 'domains'")
        out.append(Instrument(
            version=str(raw["version"]),
            effective_from=_date(raw["effective_from"], f"{where}, field 'effective_from'"),
            level_labels=_level_labels(raw["levels"], f"{where}, field 'levels'"), domains=domains,
            rules=_rules(raw["need"], where, {d.id: d for d in domains}, rules, lists),
            grades=_grades(raw["grade"], where)))
    versions = [i.version for i in out]
    for i in out:
        if versions.count(i.version) > 1:
            raise DefinitionError(f"[[instrument]] {i.version!r}: a second instrument with this version")
    dates = [i.effective_from for i in out]
    if len(set(dates)) != len(dates):
        raise DefinitionError("[[instrument]]: two versions effective from the same day")
    return InstrumentBook(tuple(sorted(out, key=lambda i: i.effective_from)))


def _level_labels(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) != len(LEVELS) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise DefinitionError(f"{where}: must name the {len(LEVELS)} levels 0 (no need) to 3 (urgent) in Chinese")
    return tuple(raw)


def _domains(raw: Any, where: str) -> tuple[Domain, ...]:
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(f"{where}: must be a non-empty array of {{id, label_zh}}")
    out: list[Domain] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise DefinitionError(f"{at}: must be a table {{id, label_zh}}")
        _require(item, ("id", "label_zh"), at)
        _no_unknown(item, DOMAIN_FIELDS, at)
        _check_id(item["id"], at)
        visit_only = item.get("visit_only", False)
        if not isinstance(visit_only, bool):
            raise DefinitionError(f"{at}, field 'visit_only': must be true or false")
        if any(d.id == item["id"] for d in out):
            raise DefinitionError(f"{at}, field 'id': domain {item['id']!r} appears twice")
        out.append(Domain(item["id"], _text(item, "label_zh", at), visit_only))
    return tuple(out)


def _level(raw: Any, where: str, allowed: Sequence[int]) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw not in allowed:
        raise DefinitionError(f"{where}, field 'level': must be an integer among {list(allowed)}, got {raw!r}")
    return raw


def _rules(raw: Any, where: str, domains: Mapping[str, Domain], rules: Mapping[str, float],
           lists: set[Any]) -> tuple[NeedRule, ...]:
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(f"{where}: no [[instrument.need]] rules")
    seen: set[str] = set()
    out: list[NeedRule] = []
    for k, item in enumerate(raw):
        at = f"{where} [[instrument.need]] #{k + 1}" + (
            f" {item.get('id')!r}" if isinstance(item, Mapping) and item.get("id") else "")
        if not isinstance(item, Mapping):
            raise DefinitionError(f"{at}: must be a table")
        _require(item, ("id", "domain", "level", "text_zh"), at)
        _no_unknown(item, NEED_FIELDS, at)
        _check_id(item["id"], at)
        if item["id"] in seen:
            raise DefinitionError(f"{at}, field 'id': a second rule with this id")
        seen.add(item["id"])
        domain = item["domain"]
        if domain not in domains:
            raise DefinitionError(f"{at}, field 'domain': unknown domain {domain!r}; known: {list(domains)}")
        if domains[domain].visit_only:
            raise DefinitionError(f"{at}, field 'domain': {domain!r} is filled only by visits (visit_only)")
        level = _level(item["level"], at, LEVELS[1:])
        text = _text(item, "text_zh", at)
        triggers = [t for t in ("list", "program", "risk") if t in item] + (["conditions"] if any(
            g in item for g in GROUPS) else [])
        if len(triggers) != 1:
            raise DefinitionError(f"{at}: give exactly one trigger: conditions (all/any/none), list, program or "
                                  f"risk (got {triggers or 'none'})")
        if "band" in item and "risk" not in item:
            raise DefinitionError(f"{at}, field 'band': only with a risk trigger")
        base = {"id": item["id"], "domain": domain, "level": level, "text_zh": text}
        kind = triggers[0]
        if kind == "conditions":
            groups = tuple(Group(g, parse_items(item[g], f"{at}, field '{g}'", rules)) for g in GROUPS if g in item)
            out.append(NeedRule(**base, source="features", condition=Group("all", groups)))
        elif kind == "list":
            if item["list"] not in lists:
                raise DefinitionError(f"{at}, field 'list': unknown list {item['list']!r} (no such [[list]] id)")
            out.append(NeedRule(**base, source="list", ref=item["list"]))
        elif kind == "program":
            if item["program"] not in PROGRAM_LABELS:
                raise DefinitionError(f"{at}, field 'program': unknown programme {item['program']!r}; "
                                      f"known: {list(PROGRAM_LABELS)}")
            out.append(NeedRule(**base, source="calculator", ref=item["program"]))
        else:
            if item["risk"] not in RISK_LABELS:
                raise DefinitionError(f"{at}, field 'risk': unknown risk {item['risk']!r}; known: {list(RISK_LABELS)}")
            band = item.get("band")
            if band is not None and band not in BANDS:
                raise DefinitionError(f"{at}, field 'band': unknown band {band!r}; known: {list(BANDS)}")
            out.append(NeedRule(**base, source="model", ref=item["risk"], band=band))
    return tuple(out)


def _grades(raw: Any, where: str) -> tuple[Grade, ...]:
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(f"{where}: no [[instrument.grade]]")
    out: dict[int, Grade] = {}
    for k, item in enumerate(raw):
        at = f"{where} [[instrument.grade]] #{k + 1}"
        if not isinstance(item, Mapping):
            raise DefinitionError(f"{at}: must be a table")
        _require(item, ("level", "label_zh", "description_zh"), at)
        _no_unknown(item, GRADE_FIELDS, at)
        level = _level(item["level"], at, LEVELS)
        if level in out:
            raise DefinitionError(f"{at}, field 'level': grade {level} appears twice")
        when = item.get("when")
        if level == 0:
            if when is not None:
                raise DefinitionError(f"{at}, field 'when': grade 0 applies when no other does; it takes no 'when'")
            out[0] = Grade(0, _text(item, "label_zh", at), _text(item, "description_zh", at), ())
            continue
        if not isinstance(when, list) or not when:
            raise DefinitionError(f"{at}, field 'when': must be a non-empty array of {{min_level, count}}")
        items = []
        for i, w in enumerate(when):
            wat = f"{at}, field 'when'[{i}]"
            if not isinstance(w, Mapping):
                raise DefinitionError(f"{wat}: must be a table {{min_level, count}}")
            _require(w, ("min_level", "count"), wat)
            _no_unknown(w, {"min_level", "count"}, wat)
            lo, n = w["min_level"], w["count"]
            if isinstance(lo, bool) or not isinstance(lo, int) or lo not in LEVELS[1:]:
                raise DefinitionError(f"{wat}.min_level: must be an integer 1 to 3, got {lo!r}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise DefinitionError(f"{wat}.count: must be a whole number ≥ 1, got {n!r}")
            items.append((lo, n))
        out[level] = Grade(level, _text(item, "label_zh", at), _text(item, "description_zh", at), tuple(items))
    missing = [lv for lv in LEVELS if lv not in out]
    if missing:
        raise DefinitionError(f"{where}: [[instrument.grade]] lacks level(s) {missing}: give one grade per level 0-3")
    return tuple(out[lv] for lv in sorted(out, reverse=True))


# ---- evaluation ----------------------------------------------------------------------------------
@dataclass
class DomainLevel:
    """A domain's data level and the evidence of each rule that holds (highest level first)."""

    level: int = 0
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rule: NeedRule, text: str) -> None:
        self.level = max(self.level, rule.level)
        self.evidence.append({"source": rule.source, "text": text, "level": rule.level, "rule": rule.id})


def data_levels(instrument: Instrument, columns: Columns | None, v: PolicyVersion | None,
                rules: Mapping[str, float], lists: Sequence[Sequence[Mapping[str, Any]]],
                programs: Sequence[Sequence[Mapping[str, Any]] | None],
                scores: Sequence[Sequence[Mapping[str, Any]] | None]) -> list[dict[str, DomainLevel]]:
    """Per household, each domain of ``instrument`` with its data level and evidence.

    ``columns``: the features frame or feature id → array, one value per household (None, or lacking
    a rule's features: that rule is not evaluated; a missing value satisfies no condition);
    ``v`` and ``rules``: the parameters and ``[rules]`` in force on the households' as-of date;
    ``lists``: each household's items of :func:`policy.lists.household_lists` (with ``why``);
    ``programs``: each one's calculator programmes (``{"program", "eligible", "label"}``) or None;
    ``scores``: each one's public score entries (``{"risk", "probability", "band", "flagged"}``) or None.
    """
    n = len(lists)
    out = [{d.id: DomainLevel() for d in instrument.domains} for _ in range(n)]
    have: set[str] = set()
    if columns is not None:
        have = set(columns.columns.tolist() if isinstance(columns, pd.DataFrame) else columns)
    frame = _Frame(columns, n, v, rules) if columns is not None else None
    for rule in instrument.rules:
        if rule.source == "features":
            if frame is None or not rule.features <= have:
                continue
            assert rule.condition is not None
            rows = np.flatnonzero(evaluate(rule.condition, frame))
            if len(rows):
                whys = _why(rule.condition, frame.take(rows, rule.features))
                for row, why in zip(rows.tolist(), whys, strict=True):
                    out[row][rule.domain].add(rule, f"{rule.text_zh}：{why}。")
            continue
        for i in range(n):
            text = _fired(rule, lists[i], programs[i], scores[i])
            if text is not None:
                out[i][rule.domain].add(rule, text)
    for household in out:
        for d in household.values():
            d.evidence.sort(key=lambda e: -e["level"])
    return out


def _fired(rule: NeedRule, lists: Sequence[Mapping[str, Any]], programs: Sequence[Mapping[str, Any]] | None,
           scores: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The evidence text of a list, calculator or model rule that holds for one household; else None."""
    if rule.source == "list":
        item = next((x for x in lists if x.get("list") == rule.ref), None)
        return None if item is None else f"{rule.text_zh}：{item.get('why') or item.get('label') or rule.ref}"
    if rule.source == "calculator":
        p = next((x for x in programs or () if x.get("program") == rule.ref and x.get("eligible")), None)
        if p is None:
            return None
        label = p.get("label") or PROGRAM_LABELS[str(rule.ref)]
        return f"{rule.text_zh}：政策计算器测算可能符合{label}（测算不是认定结论）。"
    s = next((x for x in scores or () if x.get("risk") == rule.ref), None)
    if s is None or not (s.get("band") == rule.band if rule.band else s.get("flagged")):
        return None
    why = f"风险等级{BANDS.get(s.get('band', ''), s.get('band'))}" if rule.band else "建议走访"
    return (f"{rule.text_zh}：模型评估{RISK_LABELS[str(rule.ref)]}概率 {float(s['probability']):.0%}，{why}"
            "（模型提示，不是认定结论）。")


__all__ = ["Domain", "DomainLevel", "Grade", "Instrument", "InstrumentBook", "LEVELS", "NeedRule", "SOURCES",
           "data_levels", "load_instruments", "parse_instruments"]
