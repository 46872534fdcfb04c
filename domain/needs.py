"""A household's needs (困难群众需求评估): the data levels of its latest score combined with the
caseworkers' visits since, and the overall grade of graded case management (分级分类).

The data levels come from the household file's latest part (:func:`domain.household_file.household_file`:
the latest API request or nightly batch run, its features, lists, calculator answer and scores) and
the instrument in force on that score's ``as_of`` (:mod:`policy.needs`). The visits counted are the
assessments made on or after that ``as_of`` (a visit before it looked at an older situation than the
data, so newer data wins over it); per domain the latest visit (by ``assessed_on``, then by when it
was recorded) sets the level over the data level: the visit confirms, corrects and adds what no
table holds. The data's evidence stays beside the visit's.

Both the service (``GET /v1/households/{id}/needs``, the household file, the case page) and a plan
drafter (:func:`levels`) read the answer from here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from domain.advice import Advisor
from domain.household_file import household_file
from features.dated import in_the_future
from features.policy import PolicyBook, PolicyVersion
from policy.needs import Instrument, InstrumentBook, data_levels, load_instruments
from store.assessments import Assessment, AssessmentStore, DomainFinding
from store.audit import AuditRecord, AuditStore
from store.feedback import FeedbackStore

Problem = dict[str, Any]
EVIDENCE_MAX = 1000   # characters of a visit's evidence for one domain
NOTE_MAX = 2000       # characters of a visit's note


def parameters_on(policy: PolicyBook, day: dt.date, town: str | None = None
                  ) -> tuple[PolicyVersion, Mapping[str, float]]:
    """The parameters in force on ``day`` in the city of ``town`` (None, or a town no city knows: the
    home city's) and the ``[rules]`` thresholds: the one place the needs assessment asks for them."""
    return policy.at(day, policy.city_of_town(town) if town else None), policy.rules


class AssessmentRefused(ValueError):
    """An assessment that cannot be stored; ``problems`` name each field and why (422)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems))
        self.problems = problems


def _p(loc: Sequence[str | int], msg: str, kind: str) -> Problem:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


@dataclass(frozen=True)
class NeedsService:
    """The instrument book, the policy parameters and the assessment store, built once at start."""

    instruments: InstrumentBook
    policy: PolicyBook
    store: AssessmentStore

    @classmethod
    def load(cls, store: AssessmentStore, policy: PolicyBook, policy_path: str | None = None) -> NeedsService:
        return cls(instruments=load_instruments(policy_path), policy=policy, store=store)

    # ---- recording a visit -------------------------------------------------------------------------
    def assess(self, prompt: AuditRecord, assessed_on: dt.date, assessor: str,
               domains: Sequence[Mapping[str, Any]], note: str | None, caller: dict[str, str],
               today: dt.date | None = None) -> Assessment:
        """Checks and stores one visit's assessment, tied to the score request ``prompt``; raises
        :class:`AssessmentRefused` naming each bad field (nothing stored). ``domains``: items
        ``{"domain", "level", "evidence"}`` whose types the caller has checked (level an integer
        0–3, evidence non-empty text of at most :data:`EVIDENCE_MAX` characters)."""
        today = today or dt.date.today()
        problems: list[Problem] = []
        if assessed_on.isoformat() < prompt.as_of:
            problems.append(_p(["assessed_on"], f"is before the scored request's as_of ({prompt.as_of})",
                               "value_error.before_as_of"))
        if in_the_future(assessed_on, today):
            problems.append(_p(["assessed_on"], "is in the future", "value_error.future"))
        instrument: Instrument | None = None
        try:
            instrument = self.instruments.at(assessed_on)
        except ValueError as exc:
            problems.append(_p(["assessed_on"], str(exc), "value_error.instrument"))
        seen: set[str] = set()
        for i, d in enumerate(domains):
            name = d["domain"]
            if instrument is not None and name not in instrument.by_domain:
                problems.append(_p(["domains", i, "domain"], f"unknown domain {name!r}; the instrument "
                                   f"{instrument.version} has {', '.join(instrument.by_domain)}",
                                   "value_error.domain"))
            elif name in seen:
                problems.append(_p(["domains", i, "domain"], f"domain {name!r} is given twice",
                                   "value_error.duplicate"))
            seen.add(name)
        if problems:
            raise AssessmentRefused(problems)
        assert instrument is not None
        return self.store.add(request_id=prompt.request_id, household_id=prompt.household_id, town=prompt.town,
                              assessed_on=assessed_on, assessor=assessor, instrument_version=instrument.version,
                              domains=[DomainFinding(d["domain"], int(d["level"]), d["evidence"]) for d in domains],
                              note=note, caller=caller)

    # ---- the household's needs ---------------------------------------------------------------------
    def of_file(self, file: Mapping[str, Any], visits: Sequence[Assessment] | None = None) -> dict[str, Any]:
        """The needs of the household whose file (:func:`household_file`) is ``file``. ``visits``: its
        assessments (read from the store when None)."""
        household_id = file["household_id"]
        latest = file.get("latest")
        as_of: str | None = latest["as_of"] if latest else None
        day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
        instrument = self.instruments.at(day)
        v, rules = parameters_on(self.policy, day, latest.get("town") if latest else None)
        values = {f["feature"]: f["value"] for f in file.get("features") or ()}
        columns = {k: np.array([math.nan if x is None else float(x)]) for k, x in values.items()} or None
        eligibility = file.get("eligibility")
        data = data_levels(instrument, columns, v, rules, [file.get("lists") or []],
                           [eligibility["programs"] if eligibility else None], [file.get("scores") or None])[0]
        if visits is None:
            visits = self.store.for_household(household_id)
        used = sorted((a for a in visits if as_of is None or a.assessed_on >= as_of),
                      key=lambda a: (a.assessed_on, a.recorded_at))
        visit_level: dict[str, int] = {}
        visit_evidence: dict[str, list[dict[str, Any]]] = {d.id: [] for d in instrument.domains}
        for a in used:  # oldest first: a later visit overrides an earlier one
            for f in a.domains:
                if f.domain not in instrument.by_domain:  # a domain of another instrument version
                    continue
                visit_level[f.domain] = f.level
                visit_evidence[f.domain].insert(0, {"source": "visit", "text": f.evidence, "level": f.level,
                                                    "assessor": a.assessor, "assessed_on": a.assessed_on,
                                                    "assessment_id": a.assessment_id})
        domains = []
        for d in instrument.domains:
            level = visit_level.get(d.id, data[d.id].level)
            domains.append({"domain": d.id, "label": d.label_zh, "level": level,
                            "level_label": instrument.level_label(level), "data_level": data[d.id].level,
                            "set_by": "visit" if d.id in visit_level else "data",
                            "evidence": [*visit_evidence[d.id], *data[d.id].evidence]})
        grade = instrument.grade({d["domain"]: d["level"] for d in domains})
        return {"household_id": household_id, "as_of": as_of, "instrument_version": instrument.version,
                "overall_level": grade.level, "overall_label": grade.label_zh,
                "overall_description": grade.description_zh, "domains": domains,
                "assessments": [{"assessment_id": a.assessment_id, "request_id": a.request_id,
                                 "assessed_on": a.assessed_on, "assessor": a.assessor,
                                 "instrument_version": a.instrument_version,
                                 "domains": [f.domain for f in a.domains], "note": a.note}
                                for a in reversed(used)]}

    def for_household(self, audit: AuditStore, feedback: FeedbackStore, advisor: Advisor,
                      household_id: str) -> dict[str, Any] | None:
        """The household's needs from its latest score and any later assessments; None when the
        service has never scored it."""
        file = household_file(audit, feedback, advisor, household_id, needs=self)
        return None if file is None else file["needs"]


def levels(needs: Mapping[str, Any]) -> dict[str, int]:
    """Domain id → level (0–3) of a needs answer (:meth:`NeedsService.of_file`), or of a household
    file that carries one under ``needs``: what a plan drafter reads."""
    answer = needs.get("needs", needs) if "domains" not in needs else needs
    return {d["domain"]: int(d["level"]) for d in answer["domains"]}
