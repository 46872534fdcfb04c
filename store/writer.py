"""Group commit for the audit trail: concurrent requests share one transaction and one fsync.

Every score is still durable before it is answered: a request hands its entries to the writer and
waits until the transaction holding them has committed (or failed: then nothing of that transaction
is stored, and every request in it gets :class:`~store.audit.AuditUnavailable`, so the API answers
503). What changes is how many requests one commit carries: while one commit is on its way to disk,
the requests that arrive queue up, and the next commit takes all of them, as databases do with
their own logs. One request alone still gets its own commit at once; there is no waiting for company.

One writer thread per process. Several worker processes each have their own; their transactions
take the chain head's lock in turn (``AuditStore.append``), so the chain stays linear.

``on_commit`` hears of every transaction (seconds, entries, whether it committed), from the writer
thread, just before its waiters have their answer (so what a waiter reads next counts its own
transaction): the service's metrics hook in there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from store.audit import Appended, AuditEntry, AuditStore, AuditUnavailable

log = logging.getLogger(__name__)

MAX_GROUP = 2000  # entries per transaction: a batch request of 1,000 and a few single scores


@dataclass
class _Job:
    entries: list[AuditEntry]
    done: Future


class GroupCommitter:
    """Appends entries to ``store`` from one background thread, many requests per transaction."""

    def __init__(self, store: AuditStore, max_group: int = MAX_GROUP,
                 on_commit: Callable[[float, int, bool], None] | None = None) -> None:
        self.store, self.max_group, self.on_commit = store, max_group, on_commit
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self.commits = 0    # transactions committed (for tests and the bench: requests per commit)
        self.entries = 0    # entries committed
        self._conn: Connection | None = None  # the writer thread's own
        self._thread = threading.Thread(target=self._run, name="audit-group-commit", daemon=True)
        self._thread.start()

    def submit(self, entries: list[AuditEntry]) -> Future:
        """Queues ``entries`` (kept together, in order, in one transaction); the future's result is
        their :class:`~store.audit.Appended` places once committed."""
        done: Future = Future()
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit writer is closed")
            self._jobs.put(_Job(entries, done))
        return done

    def write(self, entries: list[AuditEntry], timeout: float | None = 60.0) -> list[Appended]:
        """Appends ``entries`` and waits until they are committed; raises
        :class:`~store.audit.AuditUnavailable` if their transaction did not commit."""
        try:
            return self.submit(entries).result(timeout=timeout)
        except TimeoutError:
            raise AuditUnavailable("the audit store did not commit in time") from None

    async def wait(self, entries: list[AuditEntry], timeout: float = 60.0) -> list[Appended]:
        """:meth:`write` for the event loop: awaits the commit without holding a thread."""
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.wrap_future(self.submit(entries))
        except TimeoutError:
            raise AuditUnavailable("the audit store did not commit in time") from None

    def close(self) -> None:
        """Commits what is queued, then stops the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        self._thread.join()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._drop_connection()

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._jobs.get()
            if first is None:
                return
            jobs, size = [first], len(first.entries)
            while size < self.max_group:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                size += len(job.entries)
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        entries = [e for job in jobs for e in job.entries]
        t0 = time.perf_counter()
        try:
            if self._conn is None:  # one connection, kept: no pool checkout and liveness ping per commit
                self._conn = self.store.engine.connect()
            placed = self.store.append(entries, self._conn)
        except Exception as exc:  # AuditUnavailable, or anything else: nothing of it is stored
            self._drop_connection()  # the next group starts on a fresh connection (a restarted database)
            error = exc if isinstance(exc, AuditUnavailable) else AuditUnavailable(
                f"audit store did not commit: {type(exc).__name__}")
            log.error("audit group of %d entries not committed: %s", len(entries), error)
            self._tell(time.perf_counter() - t0, len(entries), False)
            for job in jobs:  # an exception of its own each: waiters raise it from their own threads
                job.done.set_exception(AuditUnavailable(str(error)))
            return
        self._tell(time.perf_counter() - t0, len(entries), True)
        self.commits += 1
        self.entries += len(entries)
        start = 0
        for job in jobs:
            job.done.set_result(placed[start:start + len(job.entries)])
            start += len(job.entries)

    def _tell(self, seconds: float, entries: int, ok: bool) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit(seconds, entries, ok)
            except Exception:  # a hook that fails never stops the writer
                log.exception("on_commit hook failed")
