"""Rate limits that answer 429 with ``Retry-After``: failed sign-ins per client address (on by
default), and requests per API key (off by default; the platform's bulk jobs are its heaviest
legitimate caller).

Counts live in each worker process (a sliding window of times per address or key), so with N
workers a client can get up to N times the limit before every worker has seen it; that still turns
thousands of guesses a minute into a handful. At most ``MAX_TRACKED`` addresses or keys are kept,
the least recently seen dropped first, so a flood of addresses cannot exhaust memory.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict, deque

MAX_TRACKED = 10_000
_RATE = re.compile(r"^\s*([0-9]{1,9})\s*/\s*(second|minute|hour)\s*$")
_PER = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


def parse_rate(text: str) -> tuple[int, float]:
    """``"600/minute"`` → (600, 60.0); ``second``, ``minute`` and ``hour`` are the units."""
    m = _RATE.match(text)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(f"expected a rate such as 600/minute (per second, minute or hour), got {text[:40]!r}")
    return int(m.group(1)), _PER[m.group(2)]


class Window:
    """At most ``limit`` events per ``seconds`` per key, over a sliding window."""

    def __init__(self, limit: int, seconds: float, clock=time.monotonic) -> None:
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
            if len(self._events) > MAX_TRACKED:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        while events and events[0] <= now - self.seconds:
            events.popleft()
        return events

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may act again, or None when it is under the limit."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) < self.limit:
                return None
            return max(1, math.ceil(events[0] + self.seconds - now))

    def add(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(key, now).append(now)

    def take(self, key: str) -> int | None:
        """Counts one event unless over the limit; the seconds to wait when over it."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return max(1, math.ceil(events[0] + self.seconds - now))
            events.append(now)
            return None
