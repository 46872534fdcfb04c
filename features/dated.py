"""Which version of dated policy data is in force on a day: the one rule behind the policy
parameters (``[[version]]``), the calculator's limits (``[[eligibility]]``), the lists (``[[list]]``)
and the measures (``[[measure]]``). A version takes effect on its ``effective_from`` and holds until
the next one; before the first there is none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar


class Dated(Protocol):
    @property
    def effective_from(self) -> dt.date: ...


class DatedById(Dated, Protocol):
    @property
    def id(self) -> str: ...

    @property
    def active(self) -> bool: ...


T = TypeVar("T", bound=Dated)
I = TypeVar("I", bound=DatedById)  # noqa: E741 - the item type


def in_force(versions: Sequence[T], day: dt.date, what: str) -> T:
    """The version with the latest ``effective_from`` on or before ``day`` (``versions`` sorted by
    it, oldest first); ``ValueError`` naming ``what`` before the first."""
    current = None
    for v in versions:
        if v.effective_from <= day:
            current = v
        else:
            break
    if current is None:
        first = f"; the first version starts {versions[0].effective_from.isoformat()}" if versions else ""
        raise ValueError(f"no {what} in force on {day.isoformat()}{first}")
    return current


def in_force_by_id(items: Sequence[I], day: dt.date | None) -> tuple[I, ...]:
    """Per id, the version with the latest ``effective_from`` on or before ``day`` (None: the
    latest of all), unless that version is withdrawn (``active`` false); in the order ids first
    appear in ``items``."""
    current: dict[str, I] = {}
    for item in items:
        if (day is None or item.effective_from <= day) and (
                item.id not in current or item.effective_from >= current[item.id].effective_from):
            current[item.id] = item
    order = dict.fromkeys(item.id for item in items)
    return tuple(current[i] for i in order if i in current and current[i].active)


def parse_day(raw: Any, where: str) -> dt.date:
    """A policy file's date: a TOML date, or a ``YYYY-MM-DD`` string; ``ValueError`` naming ``where``
    and the value otherwise."""
    if isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(str(raw))
    except ValueError:
        raise ValueError(f"{where}: not a YYYY-MM-DD date: {raw!r}") from None


# A day a caseworker gives (a visit, a plan's step) may not be in the future, with a day's grace: the
# platform's clock (UTC+8) may be ahead of the server's. One rule for the needs and the plans.
FUTURE_GRACE = dt.timedelta(days=1)


def in_the_future(day: dt.date, today: dt.date) -> bool:
    return day > today + FUTURE_GRACE
