"""The group committer (store/writer.py): concurrent requests share transactions, every entry is
durable and chained before its waiter returns, a store that fails fails every waiter of that
transaction and stores nothing of it, and the writer recovers when the store comes back. Worker
processes writing one SQLite file take turns without breaking the chain."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import threading
import time
import uuid

import pytest

from store.audit import AuditEntry, AuditStore, AuditUnavailable
from store.writer import GroupCommitter


def entry(i: int = 0) -> AuditEntry:
    return AuditEntry(request_id=uuid.uuid4().hex, created_at=dt.datetime.now(dt.UTC), kind="score",
                      household_id=f"H{i:05d}", as_of="2026-06-30",
                      models=[{"name": "illness_poverty", "version": "1"}],
                      flagged=bool(i % 2), request=f'{{"i":{i}}}', scores="[]", response=f'{{"n":{i}}}')


@pytest.fixture
def store(tmp_path):
    s = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    s.create()
    yield s
    s.dispose()


class SlowStore:
    """The real store, each transaction held open a little (as a slow disk would), counting them."""

    def __init__(self, store: AuditStore, delay: float) -> None:
        self.store, self.delay, self.engine = store, delay, store.engine
        self.transactions: list[int] = []

    def append(self, entries, conn=None):
        time.sleep(self.delay)
        placed = self.store.append(entries, conn)
        self.transactions.append(len(entries))
        return placed


def test_concurrent_requests_share_commits_and_all_are_chained(store):
    slow = SlowStore(store, delay=0.02)
    writer = GroupCommitter(slow)  # type: ignore[arg-type]
    placed: dict[str, int] = {}
    lock = threading.Lock()

    def request(i: int) -> None:
        e = entry(i)
        (a,) = writer.write([e])
        with lock:
            placed[e.request_id] = a.seq

    threads = [threading.Thread(target=request, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert len(placed) == 60 and sorted(placed.values()) == list(range(1, 61))
    assert sum(slow.transactions) == 60 and len(slow.transactions) < 60  # commits were shared
    assert writer.commits == len(slow.transactions) and writer.entries == 60
    n, problem = store.verify()
    assert (n, problem) == (60, None)
    for request_id, seq in placed.items():
        assert store.get(request_id).seq == seq


def test_a_batch_stays_in_one_transaction_in_its_order(store):
    writer = GroupCommitter(store)
    entries = [entry(i) for i in range(25)]
    placed = writer.write(entries)
    writer.close()
    assert [a.request_id for a in placed] == [e.request_id for e in entries]
    assert [a.seq for a in placed] == list(range(1, 26))
    assert writer.commits == 1


def test_the_event_loop_awaits_the_commit(store):
    writer = GroupCommitter(store)

    async def many() -> list:
        return await asyncio.gather(*(writer.wait([entry(i)]) for i in range(20)))

    results = asyncio.run(many())
    writer.close()
    assert sorted(a.seq for (a,) in results) == list(range(1, 21))
    assert store.verify() == (20, None)


class FailingStore:
    """The real store that refuses to commit while ``down`` (as a database that went away would)."""

    def __init__(self, store: AuditStore) -> None:
        self.store, self.engine, self.down = store, store.engine, True

    def append(self, entries, conn=None):
        if self.down:
            raise AuditUnavailable("audit store did not commit: OperationalError")
        return self.store.append(entries, conn)


def test_a_failed_commit_fails_every_waiter_and_stores_nothing_then_recovers(store):
    failing = FailingStore(store)
    writer = GroupCommitter(failing)  # type: ignore[arg-type]
    futures = [writer.submit([entry(i)]) for i in range(10)]
    for f in futures:
        with pytest.raises(AuditUnavailable, match="did not commit"):
            f.result(timeout=10)
    assert store.count() == 0 and store.head()[0] == 0
    failing.down = False
    (a,) = writer.write([entry(99)])
    writer.close()
    assert a.seq == 1 and store.verify() == (1, None)


def test_each_transaction_is_told_to_on_commit_before_its_waiters_return(store):
    told: list[tuple[float, int, bool]] = []
    failing = FailingStore(store)
    failing.down = True
    writer = GroupCommitter(failing, on_commit=lambda s, n, ok: told.append((s, n, ok)))  # type: ignore[arg-type]
    with pytest.raises(AuditUnavailable):
        writer.write([entry(0), entry(1)])
    assert [(n, ok) for _, n, ok in told] == [(2, False)]  # heard before the waiter raised
    failing.down = False
    writer.write([entry(2), entry(3), entry(4)])
    assert [(n, ok) for _, n, ok in told] == [(2, False), (3, True)]
    assert all(s >= 0 for s, _, _ in told)

    def broken(seconds: float, entries: int, ok: bool) -> None:
        raise RuntimeError("a hook that fails")

    writer.on_commit = broken  # the writer goes on: every entry is still committed and answered
    (a,) = writer.write([entry(5)])
    writer.close()
    assert a.seq == 4 and store.verify() == (4, None)


def test_a_closed_writer_refuses_and_commits_what_was_queued(store):
    writer = GroupCommitter(store)
    f = writer.submit([entry(1)])
    writer.close()
    assert f.result(timeout=10)[0].seq == 1
    with pytest.raises(AuditUnavailable, match="closed"):
        writer.submit([entry(2)])


def _process_writes(url: str, n: int, start: multiprocessing.synchronize.Event) -> None:
    s = AuditStore(url)
    writer = GroupCommitter(s)
    start.wait()
    threads = [threading.Thread(target=lambda i=i: writer.write([entry(i)])) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    s.dispose()


def test_worker_processes_on_one_sqlite_file_keep_one_chain(store, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_process_writes, args=(store.url, 40, go)) for _ in range(3)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert store.verify() == (120, None)
    assert (tmp_path / "audit.db.writer-lock").exists()


def test_a_store_that_fails_says_why_in_the_database_s_own_terms(tmp_path):
    """The reason is the database's error type, not a wrapper's wrapper."""
    s = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")  # never created: no tables
    with pytest.raises(AuditUnavailable, match="did not commit: OperationalError"):
        s.append([entry(1)])
    s.dispose()
