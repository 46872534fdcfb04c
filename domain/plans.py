"""One household, one plan (一户一策): drafting a household's plan from its warm list and its assessed
needs, and moving each measure through its lifecycle.

A plan is a set of measures, each owned by a department with a due date. A measure's status moves
``proposed → agreed → in_progress → delivered``, or from any of the first three to ``declined`` (the
household says no) or ``cancelled`` (it no longer fits), each with a reason; the last three are
final. Every move is an event appended with its actor and date (:mod:`store.plans`); help counts
when it is delivered, not when it is proposed.

The lifecycle is data (:data:`MOVES`); the API, the case page, the worklist and the funnel all read
it from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from features.dated import in_the_future
from policy.warm import MeasureBook, warm_list
from store.plans import PlanMeasure, PlanStore, StaleStatus

STATUS_LABELS = {"proposed": "已提出", "agreed": "户方同意", "in_progress": "办理中", "delivered": "已落实",
                 "declined": "户方拒绝", "cancelled": "已取消"}
STATUSES = tuple(STATUS_LABELS)
MOVES: dict[str, tuple[str, ...]] = {
    "proposed": ("agreed", "declined", "cancelled"),
    "agreed": ("in_progress", "declined", "cancelled"),
    "in_progress": ("delivered", "declined", "cancelled"),
    "delivered": (), "declined": (), "cancelled": (),
}
FINAL = frozenset(s for s, nxt in MOVES.items() if not nxt)
NEEDS_REASON = frozenset({"declined", "cancelled"})  # a move to these carries its reason in ``note``

Problem = dict[str, Any]


class MoveNotAllowed(ValueError):
    """The lifecycle has no move from the measure's status to the one asked for (a conflict: 409)."""

    def __init__(self, measure_id: str, current: str | None, to: str) -> None:
        allowed = MOVES.get(current or "", ())
        super().__init__(f"measure {measure_id} is {current}: the move {current} → {to} is not allowed"
                         + (f" (allowed: {', '.join(allowed)})" if allowed else f" ({current} is final)"))
        self.current, self.to = current, to


class BadEvent(ValueError):
    """An event the lifecycle could take but whose fields do not fit (422, each problem naming its field)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _problem(field: str, msg: str, kind: str) -> Problem:
    return {"loc": ["body", field], "msg": msg, "type": f"value_error.{kind}"}


def date_problems(on: dt.date, today: dt.date, field: str = "on") -> list[Problem]:
    """A date a caseworker gives may not be in the future (a day's grace for time zones)."""
    return [_problem(field, "is in the future", "future")] if in_the_future(on, today) else []


def proposals(file: Mapping[str, Any], book: MeasureBook, needs: Mapping[str, int],
              on: dt.date) -> list[dict[str, Any]]:
    """What a draft on ``on`` proposes, each measure once in the book's order: the household file's warm
    list (``file["warm_list"]``) and the measures the assessed ``needs`` (domain → level) trigger,
    ``{"measure", "owner", "due", "proposed_because"}``; owner and due (``on`` + the measure's
    ``due_days``) come from the measure's version in force on ``on`` (else its latest)."""
    cited: dict[str, list[dict[str, Any]]] = {}
    for item in file.get("warm_list") or ():
        cited.setdefault(item["measure"], []).extend(item["proposed_by"])
    if needs:
        for item in warm_list([], [], None, book, as_of=on, needs=needs):
            cited.setdefault(item["measure"], []).extend(item["proposed_by"])
    in_force = {m.id: m for m in book.at(on)}
    out = []
    for mid, because in cited.items():
        m = in_force.get(mid) or book.latest(mid)
        if m is None:  # a measure the policy file no longer knows: nothing to own or date it by
            continue
        unique = list({(c["kind"], c["id"]): c for c in because}.values())
        out.append({"measure": mid, "owner": m.owner, "due": (on + dt.timedelta(days=m.due_days)).isoformat(),
                    "proposed_because": unique})
    return out


def draft_plan(store: PlanStore, file: Mapping[str, Any], book: MeasureBook, needs: Mapping[str, int], *,
               on: dt.date, actor: str, caller: Mapping[str, str] | None = None) -> list[PlanMeasure]:
    """Adds to the household's plan each proposed measure it does not hold yet (in any status: a
    declined or cancelled measure is not proposed again), each with a ``proposed`` event by
    ``actor`` on ``on``; returns the measures added (none on a second draft of the same proposals)."""
    latest = file.get("latest") or {}
    return store.add_measures(file["household_id"], latest.get("town"), proposals(file, book, needs, on),
                              actor=actor, on=on, caller=caller)


def move(store: PlanStore, measure: PlanMeasure, status: str, *, actor: str, on: dt.date, note: str | None,
         today: dt.date, caller: Mapping[str, str] | None = None) -> PlanMeasure:
    """Appends the move of ``measure`` to ``status``. :class:`MoveNotAllowed` when the lifecycle has no
    such move (also when another move got there first); :class:`BadEvent` when a declined or
    cancelled move has no reason, ``on`` is in the future or before the measure's previous event.
    Nothing is written on either."""
    problems: list[Problem] = []
    if status in NEEDS_REASON and not (note or "").strip():
        problems.append(_problem("note", f"a move to {status} needs its reason in note", "reason_missing"))
    problems += date_problems(on, today)
    if problems:
        raise BadEvent(problems)
    current = measure.status
    if status not in MOVES.get(current or "", ()):
        raise MoveNotAllowed(measure.measure_id, current, status)
    previous = measure.events[-1].happened_on if measure.events else None
    if previous is not None and on.isoformat() < previous:
        raise BadEvent([_problem("on", f"is before the measure's previous event ({previous})", "before_previous")])
    try:
        return store.add_event(measure.measure_id, current or "", status, actor=actor, on=on, note=note,
                               caller=caller)
    except StaleStatus as exc:  # another move got there first: judge this one against the new status
        raise MoveNotAllowed(measure.measure_id, exc.found, status) from None


def is_overdue(m: PlanMeasure, today: dt.date) -> bool:
    """Not final and due before ``today``."""
    return m.status not in FINAL and m.due < today.isoformat()


def measure_view(m: PlanMeasure, book: MeasureBook, today: dt.date) -> dict[str, Any]:
    """A measure as the API and the case page show it: labels in Chinese, events oldest first."""
    spec = book.latest(m.measure)
    return {"measure_id": m.measure_id, "measure": m.measure, "label": spec.label_zh if spec else m.measure,
            "owner": m.owner, "owner_label": book.department_label(m.owner), "due": m.due, "status": m.status,
            "status_label": STATUS_LABELS.get(m.status or "", m.status), "overdue": is_overdue(m, today),
            "proposed_because": m.proposed_because, "created_at": m.created_at.isoformat(),
            "events": [{"status": e.status, "status_label": STATUS_LABELS.get(e.status, e.status), "actor": e.actor,
                        "on": e.happened_on, "note": e.note, "recorded_at": e.recorded_at.isoformat(),
                        "caller": e.caller} for e in m.events]}


def plan_view(household_id: str, measures: Sequence[PlanMeasure], book: MeasureBook,
              today: dt.date) -> dict[str, Any]:
    return {"household_id": household_id, "measures": [measure_view(m, book, today) for m in measures]}
