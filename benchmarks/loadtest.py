"""A bounded load test of ``POST /v1/score`` that proves no acknowledged score lacks its audit record,
optionally restarting PostgreSQL in the middle of the run. Loopback only.

One script of some 970 lines on purpose: it is run (and loaded by ``tests/test_loadtest.py``) as one
file, and its sections are the phases of one run, bounded in time and cleaned up together.

    .venv/bin/python benchmarks/loadtest.py --mlflow-uri sqlite:////path/mlflow.db \\
        --requests 3000 --concurrency 16 --restart-db-at 0.5 --workers 1 --out results.json

What it does, in order (every phase bounded in time; the server is stopped on exit, error or Ctrl-C):

1. Model. ``--mlflow-uri`` names a tracking store holding ``models:/illness_poverty@champion``.
   Without it, a small model (``--train-rounds`` boosting rounds) is trained into a temporary
   SQLite MLflow store, from ``--data DIR`` (the contract's raw tables) or, if that is not given
   either, from a synthetic city of ``--train-households`` households generated on the spot.
2. Audit store. By default a fresh PostgreSQL database ``relief_loadtest_<run>`` is created on the
   server named by ``--audit-url`` (which must be on loopback) and dropped at the end
   (``--keep-db`` keeps it). ``--shared-db`` writes into the ``--audit-url`` database itself and
   counts only records whose ``seq`` lies above the chain head taken before the run. An
   ``sqlite:///`` URL also works (``--restart-db-at`` must then be 0).
3. Server. A real ``relief-risk serve`` subprocess on a free loopback port, with
   ``RELIEF_RISK_API_KEYS`` generated for this run (``--workers N`` is passed on to it). It waits
   for ``/readyz``.
4. Load. ``--requests N`` logical requests from ``--concurrency C`` asyncio clients (httpx, one
   keep-alive connection each). Bodies are built with ``synthcity.generate_city`` (``--households``,
   ``--seed``) and ``features.tables.bundle_from_tables`` for varied households and as-of dates;
   every logical request gets a unique ``household_id`` (``<original>.<run>.<index>``) so that
   each audit record can be traced back to the request that caused it. A 503 or a transport
   error is retried with backoff, at most ``--max-attempts`` attempts in all; retries are not new
   requests, and every attempt's status is counted (a 503 during the restart is reported, not
   hidden). When ``--restart-db-at`` x N requests have been started, PostgreSQL is restarted
   (``pg_ctlcluster --skip-systemctl-redirect VER NAME restart``, cluster found by port) in a
   background thread while the load goes on; ``--db-down-for S`` stops it, waits S seconds and
   starts it instead (a longer outage). After the restart has returned, three probe scores (own
   household ids, counted in the proof but not in the load figures) show whether the service
   serves again. ``--duration-limit`` stops sending and cancels what
   is in flight.
5. Proof, read straight from the database after the run: every ``request_id`` acknowledged with a
   200 is fetched by id (in bulk) and must exist, belong to that request's household id and hold
   exactly the response that was returned; the new records are counted; records that no 200
   acknowledged (a commit whose acknowledgement was lost, so the client saw a 503 or a transport
   error, or a request cancelled at the time limit) are reported separately with their count: they
   are not losses, but they are duplicates if the request was retried. The hash chain of a fresh
   database is verified end to end.

Reported (stdout and ``--out``): requests/s, p50/p95/p99 latency of the 200 attempts (one HTTP
round trip each, measured on the client), counts by status per attempt and per request, the
restart's timeline (first/last 503, first 200 after the restart), the proof, and problems.

Exit codes: 0 fine; 1 an acknowledged score lacks its audit record (or its record differs from
the response); 2 the harness could not run (no model, server not ready, database unreachable);
3 a service problem other than a loss (a 5xx other than 503, no recovery after the restart, a
record nobody can explain, a broken chain).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as dt
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AUDIT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
AS_OF_DATES = ("2026-09-30", "2026-06-30", "2026-03-31", "2025-12-31")
RETRY_STATUSES = {503}

EXIT_OK, EXIT_LOST, EXIT_HARNESS, EXIT_SERVICE = 0, 1, 2, 3


class HarnessError(RuntimeError):
    """The load test could not be run (this says nothing about the service)."""


@dataclass
class Config:
    requests: int = 1000
    concurrency: int = 8
    duration_limit: float = 120.0
    restart_db_at: float = 0.0
    db_down_for: float = 0.0
    workers: int = 1
    mlflow_uri: str | None = None
    data: str | None = None
    train_households: int = 20000
    train_rounds: int = 150
    audit_url: str = DEFAULT_AUDIT_URL
    shared_db: bool = False
    keep_db: bool = False
    households: int = 500
    distinct_bundles: int = 600
    seed: int = 11
    max_attempts: int = 5
    timeout: float = 30.0
    startup_timeout: float = 180.0
    pg_cluster: str | None = None
    out: str | None = None
    quiet: bool = False
    read_every: int = 4   # after every k-th request's 200, an auditor reads its audit record (0: no reads)


# --------------------------------------------------------------------------------------------- utils

def _log(cfg: Config, msg: str) -> None:
    if not cfg.quiet:
        print(f"[loadtest {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def check_loopback(url: str) -> None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return
    if u.host is not None and u.host not in LOOPBACK:
        raise HarnessError(f"--audit-url must point to a loopback host, got {u.host!r}")


def is_postgres(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() == "postgresql"


def wait_db(url: str, timeout: float) -> None:
    """Until the database accepts a connection (it may just have been restarted)."""
    from sqlalchemy import create_engine, text

    kwargs: dict[str, Any] = {} if url.startswith("sqlite") else {"connect_args": {"connect_timeout": 3}}
    engine = create_engine(url, **kwargs)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise HarnessError(f"database {url_no_password(url)} does not answer: "
                                       f"{type(exc).__name__}") from exc
                time.sleep(0.5)
    finally:
        engine.dispose()


def url_no_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ------------------------------------------------------------------------------------ PostgreSQL ops

def pg_cluster_for(url: str, explicit: str | None = None) -> tuple[str, str] | None:
    """(version, name) of the local cluster listening on the URL's port, from ``pg_lsclusters``."""
    if explicit:
        ver, _, name = explicit.partition("/")
        return ver, name or "main"
    from sqlalchemy.engine import make_url

    port = make_url(url).port or 5432
    if shutil.which("pg_lsclusters") is None:
        return None
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=20).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == str(port):
            return parts[0], parts[1]
    return None


def pg_status(cluster: tuple[str, str]) -> str:
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=20).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and (parts[0], parts[1]) == cluster:
            return parts[3]
    return "unknown"


def pg_ctl(cluster: tuple[str, str], action: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], action],
                          capture_output=True, text=True, timeout=timeout)


def ensure_pg_running(url: str, cluster: tuple[str, str] | None = None, timeout: float = 60) -> str:
    """Starts the cluster if it is down and waits until it answers; returns what was done."""
    cluster = cluster or pg_cluster_for(url)
    done = "already running"
    if cluster is not None and pg_status(cluster) != "online":
        r = pg_ctl(cluster, "start")
        done = f"started (rc {r.returncode})"
    wait_db(url, timeout)
    return done


class Restarter:
    """Restarts the cluster once, in a thread, and keeps the timeline (seconds since ``t0``)."""

    def __init__(self, cluster: tuple[str, str], t0: float, down_for: float = 0.0) -> None:
        self.cluster, self.t0, self.down_for = cluster, t0, down_for
        self.thread: threading.Thread | None = None
        self.info: dict[str, Any] = {"cluster": "/".join(cluster), "triggered": False}

    def trigger(self, at_request: int) -> None:
        if self.thread is not None:
            return
        self.info.update(triggered=True, at_request=at_request)
        self.thread = threading.Thread(target=self._run, name="pg-restart", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.info["started_s"] = round(time.perf_counter() - self.t0, 3)
        try:
            if self.down_for > 0:  # stop, stay down, start: a longer outage than a restart's
                r = pg_ctl(self.cluster, "stop")
                self.info["stopped_s"] = round(time.perf_counter() - self.t0, 3)
                time.sleep(self.down_for)
                if r.returncode == 0:
                    r = pg_ctl(self.cluster, "start")
            else:
                r = pg_ctl(self.cluster, "restart")
            self.info["returncode"] = r.returncode
            self.info["output"] = (r.stdout + r.stderr).strip()[-500:]
        except Exception as exc:  # reported, never raised in a thread
            self.info["error"] = f"{type(exc).__name__}: {exc}"
        self.info["ended_s"] = round(time.perf_counter() - self.t0, 3)

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


# ---------------------------------------------------------------------------------------- audit db

class AuditDb:
    """The database the server writes into: a fresh one (dropped at the end) or the shared one."""

    def __init__(self, cfg: Config, run: str, workdir: Path) -> None:
        self.cfg, self.run, self.workdir = cfg, run, workdir
        self.base_url = cfg.audit_url
        self.url = cfg.audit_url
        self.created: str | None = None
        self.start_seq = 0

    def __enter__(self) -> AuditDb:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        check_loopback(self.base_url)
        if self.base_url.startswith("sqlite"):
            if not self.cfg.shared_db:
                self.url = f"sqlite:///{self.workdir / 'audit.db'}"
        else:
            wait_db(self.base_url, 10)
            if not self.cfg.shared_db:
                name = f"relief_loadtest_{self.run}"
                engine = create_engine(self.base_url, isolation_level="AUTOCOMMIT",
                                       connect_args={"connect_timeout": 5})
                try:
                    with engine.connect() as conn:
                        conn.execute(text(f'CREATE DATABASE "{name}"'))
                finally:
                    engine.dispose()
                self.created = name
                self.url = make_url(self.base_url).set(database=name).render_as_string(hide_password=False)
        self.start_seq = self._head_seq()
        return self

    def _head_seq(self) -> int:
        from sqlalchemy import create_engine, inspect, text

        engine = create_engine(self.url)
        try:
            if not inspect(engine).has_table("audit_chain"):
                return 0
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_chain")).scalar_one())
        finally:
            engine.dispose()

    def __exit__(self, *exc: Any) -> None:
        if self.created and not self.cfg.keep_db:
            from sqlalchemy import create_engine, text

            try:
                wait_db(self.base_url, 60)
                engine = create_engine(self.base_url, isolation_level="AUTOCOMMIT",
                                       connect_args={"connect_timeout": 5})
                with engine.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{self.created}" WITH (FORCE)'))
                engine.dispose()
            except Exception as e:  # never mask the run's own outcome
                print(f"[loadtest] could not drop database {self.created}: {type(e).__name__}: {e}", file=sys.stderr)


# ------------------------------------------------------------------------------------------- model

def prepare_model(cfg: Config, workdir: Path) -> str:
    """The tracking URI holding ``illness_poverty@champion``; trains a small model if none given."""
    if cfg.mlflow_uri:
        return cfg.mlflow_uri
    import mlflow

    from training.pipeline import EXPERIMENT, TrainConfig, train

    data = cfg.data
    if data is None:
        from features.io import write_tables
        from synthcity import generate_city

        _log(cfg, f"no --mlflow-uri or --data: generating {cfg.train_households} households to train on")
        city = generate_city(cfg.train_households, seed=cfg.seed + 1000)
        data = str(workdir / "train_city")
        write_tables({**city.tables(), "truth": city.truth}, data)
    store = workdir / "mlflow"
    store.mkdir(exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment(EXPERIMENT, artifact_location=(store / "artifacts").as_uri())
    _log(cfg, f"training a {cfg.train_rounds}-round model from {data} into {uri}")
    try:
        train(TrainConfig(data_dir=data, capacity=0.03, num_boost_round=cfg.train_rounds, progress=False))
    except ValueError as exc:
        raise HarnessError(f"could not train a model for the test: {exc}") from exc
    return uri


# ----------------------------------------------------------------------------------------- bundles

def build_bodies(cfg: Config, run: str) -> tuple[list[bytes], list[str]]:
    """One JSON body per logical request, each with a unique household id (``<orig>.<run>.<i>``)."""
    from features.tables import bundle_from_tables, make_tables
    from synthcity import generate_city

    city = generate_city(cfg.households, seed=cfg.seed)
    frames = city.tables()
    tables = make_tables(**frames)
    hids = list(tables.households["household_id"])
    rng = random.Random(cfg.seed)
    rng.shuffle(hids)
    pool_size = min(cfg.requests, len(hids) * len(AS_OF_DATES), max(1, cfg.distinct_bundles))
    pool = []
    for k in range(pool_size):
        b = bundle_from_tables(tables, hids[k % len(hids)], AS_OF_DATES[(k // len(hids)) % len(AS_OF_DATES)])
        if b["members"]:
            pool.append(b)
    if not pool:
        raise HarnessError("no usable household bundle")
    bodies, tags = [], []
    for i in range(cfg.requests):
        b = pool[i % len(pool)]
        tag = f"{b['household']['household_id']}.{run}.{i:06d}"
        body = {**b, "household": {**b["household"], "household_id": tag},
                "members": [{**m, "household_id": tag} for m in b["members"]],
                "assistance": [{**a, "household_id": tag} for a in b["assistance"]]}
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
        tags.append(tag)
    return bodies, tags


# ------------------------------------------------------------------------------------------ server

class Server:
    def __init__(self, cfg: Config, env: dict[str, str], workdir: Path) -> None:
        self.cfg, self.env, self.workdir = cfg, env, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.command: list[str] = []

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "relief_risk.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.cfg.workers)]

    def start(self) -> None:
        self.command = self._command()
        self._log = open(self.log_path, "w")  # noqa: SIM115 - held for the server's lifetime
        self.proc = subprocess.Popen(self.command, cwd=self.workdir, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)

    def wait_ready(self) -> float:
        import httpx

        t0 = time.monotonic()
        deadline = t0 + self.cfg.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                r = httpx.get(self.url + "/readyz", timeout=3, trust_env=False)
                if r.status_code == 200:
                    return time.monotonic() - t0
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.3)
        raise HarnessError(f"server not ready after {self.cfg.startup_timeout:.0f}s ({last}): {self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stops the process group this script started (SIGTERM, then SIGKILL after 20 s)."""
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        with contextlib.suppress(Exception):
            self._log.close()
        self.proc = None


# -------------------------------------------------------------------------------------------- load

@dataclass
class Attempt:
    status: str          # "200", "503", … or "error:<ExceptionName>" or "cancelled"
    start: float         # seconds since the load started
    end: float
    request_id: str | None = None


@dataclass
class Outcome:
    index: int
    tag: str
    attempts: list[Attempt] = field(default_factory=list)
    response: dict[str, Any] | None = None   # the 200 body
    reads: list[str] = field(default_factory=list)  # statuses of the auditor's reads of its record

    @property
    def final(self) -> str:
        return self.attempts[-1].status if self.attempts else "not sent"


async def run_load(cfg: Config, url: str, headers: dict[str, str], bodies: list[bytes], tags: list[str],
                   restarter: Restarter | None, t0: float, read_headers: dict[str, str] | None = None
                   ) -> tuple[list[Outcome], bool, float]:
    import httpx

    n = len(bodies)
    outcomes = [Outcome(i, tags[i]) for i in range(n)]
    restart_index = math.ceil(cfg.restart_db_at * n) if restarter and cfg.restart_db_at > 0 else None
    next_index = 0
    rng = random.Random(cfg.seed)

    def now() -> float:
        return time.perf_counter() - t0

    async def client_task(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < n:
            i = next_index
            next_index += 1
            if restart_index is not None and i == restart_index:
                restarter.trigger(i)
            o = outcomes[i]
            for attempt in range(cfg.max_attempts):
                start = now()
                a = Attempt("cancelled", start, start)
                o.attempts.append(a)
                try:
                    r = await client.post(url + "/v1/score", content=bodies[i], headers=headers)
                    a.status, a.end = str(r.status_code), now()
                    if r.status_code == 200:
                        o.response = r.json()
                        a.request_id = o.response.get("request_id")
                        break
                    if r.status_code not in RETRY_STATUSES:
                        break
                except httpx.TransportError as exc:
                    a.status, a.end = f"error:{type(exc).__name__}", now()
                if attempt + 1 < cfg.max_attempts:
                    await asyncio.sleep(min(2.0, 0.2 * 2 ** attempt) * (0.75 + rng.random() / 2))
            if read_headers and cfg.read_every and o.response is not None and i % cfg.read_every == 0:
                await read_record(client, o)

    async def read_record(client: httpx.AsyncClient, o: Outcome) -> None:
        """An auditor reads the record just written: every 200 must leave an access event."""
        for attempt in range(cfg.max_attempts):
            try:
                r = await client.get(f"{url}/v1/audit/{o.response['request_id']}", headers=read_headers)
                o.reads.append(str(r.status_code))
                if r.status_code not in RETRY_STATUSES:
                    return
            except httpx.TransportError as exc:
                o.reads.append(f"error:{type(exc).__name__}")
            await asyncio.sleep(min(2.0, 0.2 * 2 ** attempt))

    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    loop = asyncio.get_running_loop()
    interrupted: list[int] = []
    tasks: list[asyncio.Task] = []

    def on_signal(signum: int) -> None:  # Ctrl-C or SIGTERM: stop sending, then clean up outside the loop
        interrupted.append(signum)
        print(f"[loadtest] signal {signum}: stopping the load", file=sys.stderr, flush=True)
        for t in tasks:
            t.cancel()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(cfg.timeout), trust_env=False) as client:
            start = now()
            tasks.extend(asyncio.create_task(client_task(client)) for _ in range(cfg.concurrency))
            done, pending = await asyncio.wait(tasks, timeout=cfg.duration_limit)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()
            wall = now() - start
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)  # remove_signal_handler would leave the defaults behind
    if interrupted:
        raise KeyboardInterrupt
    return outcomes, bool(pending), wall


def probe(cfg: Config, url: str, headers: dict[str, str], bodies: list[bytes], tags: list[str], run: str,
          t0: float, n: int = 3) -> list[Outcome]:
    """``n`` sequential scores with retries, each under a new household id ``<orig>.<run>.p<k>``."""
    import httpx

    out = []
    with httpx.Client(timeout=cfg.timeout, trust_env=False) as client:
        for k in range(min(n, len(bodies))):
            tag = f"{tags[k].split('.')[0]}.{run}.p{k}"
            body = bodies[k].replace(tags[k].encode(), tag.encode())
            o = Outcome(len(bodies) + k, tag)
            out.append(o)
            for attempt in range(cfg.max_attempts):
                a = Attempt("cancelled", time.perf_counter() - t0, 0.0)
                o.attempts.append(a)
                try:
                    r = client.post(url + "/v1/score", content=body, headers=headers)
                    a.status, a.end = str(r.status_code), time.perf_counter() - t0
                    if r.status_code == 200:
                        o.response = r.json()
                        a.request_id = o.response.get("request_id")
                        break
                    if r.status_code not in RETRY_STATUSES:
                        break
                except httpx.TransportError as exc:
                    a.status, a.end = f"error:{type(exc).__name__}", time.perf_counter() - t0
                time.sleep(min(2.0, 0.2 * 2 ** attempt))
    return out


# ------------------------------------------------------------------------------------------- proof

def prove(db_url: str, start_seq: int, outcomes: list[Outcome], fresh: bool) -> dict[str, Any]:
    """Reads the store: every 200 has its record (fetched by id, in bulk); what else was written."""
    from sqlalchemy import create_engine, select

    from store.access import AccessLog
    from store.audit import AuditStore, audit_records

    by_tag = {o.tag: o for o in outcomes}
    acked = {o.attempts[-1].request_id: o for o in outcomes if o.response is not None}
    engine = create_engine(db_url)
    c = audit_records.c
    found: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            ids = list(acked)
            for k in range(0, len(ids), 1000):
                for row in conn.execute(select(c.request_id, c.household_id, c.response)
                                        .where(c.request_id.in_(ids[k:k + 1000]))).mappings():
                    found[row["request_id"]] = row
            new = list(conn.execute(select(c.seq, c.request_id, c.household_id).where(c.seq > start_seq)
                                    .order_by(c.seq)).mappings())
    finally:
        engine.dispose()

    missing = [rid for rid in acked if rid not in found]
    wrong_household = [rid for rid, row in found.items() if row["household_id"] != acked[rid].tag]
    response_differs = [rid for rid, row in found.items() if json.loads(row["response"]) != acked[rid].response]
    unacked: Counter[str] = Counter()
    unacked_examples: list[dict[str, Any]] = []
    foreign = 0
    for row in new:
        if row["request_id"] in acked:
            continue
        o = by_tag.get(row["household_id"])
        if o is None:
            foreign += 1
            continue
        seen = sorted({_answer(a.status) for a in o.attempts if a.status != "200"})
        kind = "unexplained (the request had only 200 attempts)" if not seen else (
            "committed, " + " / ".join(seen) + (", later retried with a 200: a duplicate" if o.response
                                                else ", no 200 for this request"))
        unacked[kind] += 1
        if len(unacked_examples) < 10:
            unacked_examples.append({"seq": row["seq"], "request_id": row["request_id"], "request_index": o.index,
                                     "attempts": [a.status for a in o.attempts]})
    result: dict[str, Any] = {
        "acknowledged_200": len(acked),
        "records_found_by_id": len(found),
        "acknowledged_without_record": len(missing),
        "missing_request_ids": missing[:20],
        "record_household_mismatch": len(wrong_household),
        "record_response_differs": len(response_differs),
        "new_records_total": len(new),
        "new_records_for_our_requests": len(new) - foreign,
        "records_without_200": sum(unacked.values()),
        "records_without_200_by_kind": dict(unacked),
        "records_without_200_examples": unacked_examples,
        "records_from_other_writers": foreign,
        "equal": len(missing) == 0 and len(new) - foreign == len(acked),
    }
    result |= prove_reads(db_url, outcomes)
    if fresh:
        store = AuditStore(db_url)
        n, problem = store.verify()
        result["chain"] = {"records": n, "intact": problem is None,
                           "problem": None if problem is None else asdict(problem)}
        n, problem = AccessLog(store).verify()
        result["access_chain"] = {"events": n, "intact": problem is None,
                                  "problem": None if problem is None else asdict(problem)}
        store.dispose()
    return result


def prove_reads(db_url: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """Every read answered 200 has its access event (an ``audit_record`` event naming the request)."""
    from sqlalchemy import create_engine, select

    from store.schema import access_log, access_targets

    read = [o.response["request_id"] for o in outcomes if o.response is not None and "200" in o.reads]
    logged: set[str] = set()
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            for k in range(0, len(read), 1000):
                stmt = (select(access_targets.c.target).join(access_log, access_log.c.seq == access_targets.c.seq)
                        .where(access_targets.c.target.in_(read[k:k + 1000]), access_log.c.action == "audit_record"))
                logged.update(conn.execute(stmt).scalars())
    finally:
        engine.dispose()
    missing = [rid for rid in read if rid not in logged]
    return {"reads_answered_200": len(read), "reads_without_access_event": len(missing),
            "reads_missing_examples": missing[:10],
            "reads_by_status": dict(Counter(s for o in outcomes for s in o.reads))}


def _answer(status: str) -> str:
    if status == "cancelled":
        return "cancelled at the duration limit before an answer"
    if status.startswith("error:"):
        return f"no answer ({status[6:]})"
    return f"answered {status}"


# ----------------------------------------------------------------------------------------- summary

def summarise(cfg: Config, outcomes: list[Outcome], wall: float, truncated: bool,
              restart: dict[str, Any] | None) -> dict[str, Any]:
    attempts = [a for o in outcomes for a in o.attempts]
    sent = [o for o in outcomes if o.attempts]
    ok_lat = sorted((a.end - a.start) * 1000 for a in attempts if a.status == "200")
    e2e = sorted((o.attempts[-1].end - o.attempts[0].start) * 1000 for o in outcomes if o.response is not None)
    finals = Counter(o.final for o in sent)  # a request's last attempt; "cancelled" = stopped at the limit

    def lat(v: list[float]) -> dict[str, float | None]:
        return {"p50": _r(percentile(v, 50)), "p95": _r(percentile(v, 95)), "p99": _r(percentile(v, 99)),
                "max": _r(v[-1] if v else None), "n": len(v)}

    timeline: dict[str, Any] = {}
    s503 = [a for a in attempts if a.status == "503"]
    errs = [a for a in attempts if a.status.startswith("error:")]
    if s503:  # when the answers came
        timeline.update(first_503_s=_r(min(a.end for a in s503), 3), last_503_s=_r(max(a.end for a in s503), 3))
    if errs:
        timeline.update(first_error_s=_r(min(a.end for a in errs), 3), last_error_s=_r(max(a.end for a in errs), 3))
    recovered = None
    if restart and restart.get("ended_s") is not None:
        after = [a for a in attempts if a.status == "200" and a.start >= restart["ended_s"]]
        if after:
            first = min(after, key=lambda a: a.end)
            timeline["first_200_after_restart_s"] = _r(first.end, 3)
            timeline["recovered_after_restart_returned_s"] = _r(first.end - restart["ended_s"], 3)
            recovered = True
        else:
            recovered = False if any(a.start >= restart["ended_s"] for a in attempts) else None
        bad = [a for a in attempts if a.status in ("503",) or a.status.startswith("error:")]
        timeline["non_200_answered_from_restart_start_to_5s_after_its_end"] = sum(
            restart["started_s"] <= a.end <= restart["ended_s"] + 5 for a in bad)
        timeline["non_200_answered_outside_that_window"] = len(bad) - timeline[
            "non_200_answered_from_restart_start_to_5s_after_its_end"]
    per_second: dict[int, Counter[str]] = {}
    for a in attempts:
        per_second.setdefault(int(a.end), Counter())[a.status] += 1
    return {
        "wall_s": _r(wall, 3),
        "truncated_at_duration_limit": truncated,
        "requests_planned": cfg.requests,
        "requests_sent": len(sent),
        "requests_per_s": _r(len([o for o in sent if o.final != "cancelled"]) / wall if wall else None),
        "acknowledged_200_per_s": _r(sum(o.response is not None for o in outcomes) / wall if wall else None),
        "attempts": len(attempts),
        "retries": len(attempts) - len(sent),
        "attempts_by_status": dict(sorted(Counter(a.status for a in attempts).items())),
        "requests_by_final_status": dict(sorted(finals.items())),
        "latency_ms_200_attempts": lat(ok_lat),
        "latency_ms_200_requests_incl_retries": lat(e2e),
        "timeline": timeline,
        "recovered_during_load": recovered,
        "attempts_by_second_answered": [{"s": k, **dict(v)} for k, v in sorted(per_second.items())],
    }


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def git_state() -> dict[str, Any]:
    """The commit and the files changed in the working tree: what exactly was measured."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"head": git("rev-parse", "--short", "HEAD"),
            "changed": [ln[3:] for ln in git("status", "--porcelain").splitlines()][:50]}


def server_log_facts(text: str) -> dict[str, int]:
    return {"tracebacks": text.count("Traceback (most recent call last)"),
            "audit_unavailable_at_start": text.count("audit store unavailable at start"),
            "audit_write_failed": text.count("audit write failed"),
            # the server's lines are JSON by default (RELIEF_RISK_LOG_FORMAT), text when asked
            "error_lines": sum('"level":"ERROR"' in ln or " ERROR " in ln or ln.startswith("ERROR")
                               for ln in text.splitlines())}


# -------------------------------------------------------------------------------------------- main

def run(cfg: Config) -> tuple[dict[str, Any], int]:
    """The whole test; returns (results, exit code). Cleans up the server and the fresh database."""
    import httpx

    if cfg.requests < 1 or cfg.concurrency < 1 or cfg.workers not in (1, 2) or not 0 <= cfg.restart_db_at < 1:
        raise HarnessError("need --requests ≥ 1, --concurrency ≥ 1, --workers 1|2 and 0 ≤ --restart-db-at < 1")
    check_loopback(cfg.audit_url)
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="relief-loadtest-"))
    results: dict[str, Any] = {"run": run_id, "config": asdict(cfg), "problems": [],
                               "host": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
                               "code": git_state()}
    cluster = None
    if cfg.restart_db_at > 0:
        if not is_postgres(cfg.audit_url):
            raise HarnessError("--restart-db-at needs a PostgreSQL --audit-url")
        cluster = pg_cluster_for(cfg.audit_url, cfg.pg_cluster)
        if cluster is None:
            raise HarnessError("no local PostgreSQL cluster found for --audit-url (pg_lsclusters); pass --pg-cluster")
    server: Server | None = None
    restarter: Restarter | None = None
    code = EXIT_OK
    log_text = ""
    try:
        mlflow_uri = prepare_model(cfg, workdir)
        _log(cfg, f"building {cfg.requests} request bodies from a {cfg.households}-household synthetic city")
        bodies, tags = build_bodies(cfg, run_id[-6:])
        keys = {r: f"lt-{r}-{secrets.token_urlsafe(18)}" for r in ("platform", "auditor", "admin")}
        with AuditDb(cfg, run_id, workdir) as db:
            results["audit_db"] = {"url": url_no_password(db.url), "fresh": not cfg.shared_db,
                                   "start_seq": db.start_seq}
            env = {**os.environ, "RELIEF_RISK_API_KEYS": ",".join(f"{r}:{k}" for r, k in keys.items()),
                   "RELIEF_RISK_AUDIT_URL": db.url, "MLFLOW_TRACKING_URI": mlflow_uri,
                   "RELIEF_RISK_MLFLOW_TRACKING_URI": mlflow_uri}
            server = Server(cfg, env, workdir)
            server.start()
            _log(cfg, f"server starting on {server.url}: {' '.join(server.command[1:])}")
            ready_s = server.wait_ready()
            results["server"] = {"command": server.command[1:], "ready_after_s": _r(ready_s), "workers": cfg.workers}
            _log(cfg, f"ready after {ready_s:.1f}s; sending {cfg.requests} requests from {cfg.concurrency} clients"
                      + (f", PostgreSQL restart at {cfg.restart_db_at:.0%}" if cluster else ""))
            headers = {"Authorization": f"Bearer {keys['platform']}", "Content-Type": "application/json"}
            t0 = time.perf_counter()
            restarter = Restarter(cluster, t0, cfg.db_down_for) if cluster else None
            read_headers = {"Authorization": f"Bearer {keys['auditor']}"}
            outcomes, truncated, wall = asyncio.run(run_load(cfg, server.url, headers, bodies, tags, restarter, t0,
                                                             read_headers))
            if restarter:
                restarter.join(120)
                results["restart"] = restarter.info
                if restarter.info.get("returncode", 0) != 0 or "error" in restarter.info:
                    results["problems"].append(f"the PostgreSQL restart failed: {restarter.info}")
            if cluster:
                results["postgres_after_load"] = ensure_pg_running(cfg.audit_url, cluster)
            results["load"] = summarise(cfg, outcomes, wall, truncated, restarter.info if restarter else None)
            probes: list[Outcome] = []
            if restarter and restarter.info.get("triggered"):
                # after the restart has returned: a few more scores (own household ids, counted in the
                # proof, not in the load figures) show whether the service serves again
                probes = probe(cfg, server.url, headers, bodies, tags, run_id[-6:], t0)
                ok = all(o.response is not None for o in probes)
                results["post_restart_probe"] = {"attempts": [[a.status for a in o.attempts] for o in probes],
                                                 "all_200": ok}
                during = results["load"]["recovered_during_load"]
                results["load"]["recovered_after_restart"] = ok and during is not False
            try:
                r = httpx.get(server.url + "/readyz", timeout=10, trust_env=False)
                results["readyz_after_load"] = r.status_code
            except httpx.TransportError as exc:
                results["readyz_after_load"] = f"error:{type(exc).__name__}"
            results["host"]["loadavg_after_load"] = os.getloadavg()
            server.stop()
            log_text = server.log_path.read_text(errors="replace")
            results["server_log"] = server_log_facts(log_text)
            wait_db(db.url, 60)
            _log(cfg, "reading the audit store")
            results["proof"] = prove(db.url, db.start_seq, outcomes + probes, fresh=not cfg.shared_db)
        code = judge(results)
        if code != EXIT_OK and log_text:
            results["server_log_tail"] = log_text[-4000:]
    finally:
        if server is not None:
            server.stop()
        if restarter is not None:
            restarter.join(120)
        if cluster is not None:
            with contextlib.suppress(Exception):
                ensure_pg_running(cfg.audit_url, cluster)
        if cfg.out and server is not None and server.log_path.exists():
            with contextlib.suppress(OSError):
                shutil.copy(server.log_path, Path(cfg.out).with_suffix(".server.log"))
        shutil.rmtree(workdir, ignore_errors=True)
    results["exit_code"] = code
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return results, code


def judge(results: dict[str, Any]) -> int:
    p, load, problems = results["proof"], results["load"], results["problems"]
    code = EXIT_OK
    other_5xx = {s: n for s, n in [*load["attempts_by_status"].items(), *p.get("reads_by_status", {}).items()]
                 if s.startswith("5") and s != "503"}
    if other_5xx:
        problems.append(f"5xx other than 503: {other_5xx}")
    if load.get("recovered_after_restart") is False or load.get("recovered_during_load") is False:
        problems.append("no 200 after the PostgreSQL restart returned: the service did not recover")
    if results.get("readyz_after_load") != 200:
        problems.append(f"/readyz after the load answered {results.get('readyz_after_load')}")
    unexplained = {k: v for k, v in p["records_without_200_by_kind"].items() if k.startswith("unexplained")}
    if unexplained:
        problems.append(f"records nobody can explain: {unexplained}")
    if p.get("chain", {}).get("intact") is False:
        problems.append(f"hash chain broken: {p['chain']['problem']}")
    if p.get("access_chain", {}).get("intact") is False:
        problems.append(f"access log chain broken: {p['access_chain']['problem']}")
    if p.get("reads_without_access_event"):
        problems.append(f"UNLOGGED: {p['reads_without_access_event']} audit records were read (200) without an "
                        "access event")
    if problems:
        code = EXIT_SERVICE
    if p["acknowledged_without_record"] or p["record_household_mismatch"] or p["record_response_differs"]:
        problems.insert(0, f"LOST: {p['acknowledged_without_record']} acknowledged scores without a record, "
                           f"{p['record_household_mismatch']} with another household's record, "
                           f"{p['record_response_differs']} whose record differs from the response")
        code = EXIT_LOST
    return code


def report(results: dict[str, Any]) -> str:
    load, p = results.get("load", {}), results.get("proof", {})
    lat = load.get("latency_ms_200_attempts", {})
    lines = [
        f"run {results['run']}: {load.get('requests_sent')}/{load.get('requests_planned')} requests in "
        f"{load.get('wall_s')} s, {load.get('requests_per_s')} req/s ({load.get('acknowledged_200_per_s')} 200/s)"
        + (" TRUNCATED at the duration limit" if load.get("truncated_at_duration_limit") else ""),
        f"latency of 200s (ms): p50 {lat.get('p50')} p95 {lat.get('p95')} p99 {lat.get('p99')} max {lat.get('max')}",
        f"attempts by status: {load.get('attempts_by_status')} (retries {load.get('retries')})",
        f"requests by final status: {load.get('requests_by_final_status')}",
    ]
    if "restart" in results:
        lines.append(f"restart: {results['restart']}; timeline {load.get('timeline')}; "
                     f"recovered {load.get('recovered_after_restart')} (probe after the restart: "
                     f"{results.get('post_restart_probe')})")
    if p:
        lines.append(f"proof: {p['acknowledged_200']} 200s, {p['records_found_by_id']} found by id, "
                     f"{p['acknowledged_without_record']} missing; new records {p['new_records_for_our_requests']}"
                     f" (+{p['records_from_other_writers']} from other writers); records without a 200: "
                     f"{p['records_without_200']} {p['records_without_200_by_kind']}; "
                     f"chain {p.get('chain', {}).get('intact', 'not checked')}; reads {p.get('reads_by_status')}, "
                     f"{p.get('reads_without_access_event')} without an access event; access chain "
                     f"{p.get('access_chain', {}).get('intact', 'not checked')}")
    lines.append(f"server log: {results.get('server_log')}; readyz after: {results.get('readyz_after_load')}")
    lines.append("problems: " + ("; ".join(results["problems"]) if results["problems"] else "none"))
    lines.append(f"exit code {results['exit_code']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mlflow-uri", default=None, help="tracking URI with models:/illness_poverty@champion")
    p.add_argument("--data", default=None, help="without --mlflow-uri: train a small model from this raw-table folder")
    p.add_argument("--train-households", type=int, default=20000, help="without --mlflow-uri and --data")
    p.add_argument("--train-rounds", type=int, default=150)
    p.add_argument("--audit-url", default=DEFAULT_AUDIT_URL, help="loopback PostgreSQL (or sqlite:///) URL")
    p.add_argument("--shared-db", action="store_true", help="write into --audit-url itself, not a fresh database")
    p.add_argument("--keep-db", action="store_true", help="do not drop the fresh database at the end")
    p.add_argument("--requests", type=int, default=1000, help="logical requests (retries are not counted)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--read-every", type=int, default=4, help="after every k-th request's 200 an auditor reads its "
                   "audit record, which must leave an access event; 0: no reads")
    p.add_argument("--duration-limit", type=float, default=120.0, help="hard stop of the load phase, seconds")
    p.add_argument("--restart-db-at", type=float, default=0.0, help="restart PostgreSQL at this share; 0 = never")
    p.add_argument("--db-down-for", type=float, default=0.0,
                   help="instead of a restart: stop PostgreSQL, keep it down this many seconds, start it")
    p.add_argument("--pg-cluster", default=None, help="VERSION/NAME for pg_ctlcluster (default: by the URL's port)")
    p.add_argument("--workers", type=int, choices=(1, 2), default=1)
    p.add_argument("--households", type=int, default=500, help="size of the synthetic city the bodies come from")
    p.add_argument("--distinct-bundles", type=int, default=600,
                   help="distinct (household, as-of) bodies, reused cyclically under unique household ids "
                        "(bundle_from_tables costs ~15 ms each)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--max-attempts", type=int, default=5, help="per request, for 503s and transport errors")
    p.add_argument("--timeout", type=float, default=30.0, help="per attempt, seconds")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--out", default=None, help="results JSON (the server log is copied beside it)")
    p.add_argument("-q", "--quiet", action="store_true")
    return Config(**{k.replace("-", "_"): v for k, v in vars(p.parse_args(argv)).items()})


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGTERM takes the same clean-up path as Ctrl-C; Ctrl-C works even if started with it ignored."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    install_signal_handlers()
    try:
        results, code = run(cfg)
    except HarnessError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    except KeyboardInterrupt:
        print("loadtest: interrupted; server stopped, PostgreSQL left running", file=sys.stderr)
        return 130
    print(report(results))
    return code


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
