"""The API stage's load generator and its server-side meter (used by ``bench.py``; run as a script
sibling, not a package).

Why not httpx: on two cores the client competes with the server it measures. httpx builds a request
object, headers and a response object per call; here every request is encoded once, up front, and
each of N keep-alive connections writes those bytes and reads back only the status line, the headers
and a ``Content-Length``- or chunk-delimited body (asyncio streams, uvloop when installed). Its own
CPU per request is reported beside the figures, so a reader can see how little of the machine it took.

The server's CPU is read from ``/proc``: ``utime + stime`` (and the times of reaped children) of the
server process and every process below it (``/proc/<pid>/task/*/children``), before and after a run;
its peak memory is the sum of their ``VmHWM``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


# ---- the server's side: CPU and peak memory of a process tree ---------------------------------------------
def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system, own and reaped children's) per process of the tree under ``pid``."""
    out = {}
    for p in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
            out[p] = sum(int(v) for v in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
    return out


def tree_peak_mb(pid: int) -> float:
    """The peak resident memory (``VmHWM``) of a process and all its descendants, summed, in MB."""
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def cpu_between(before: dict[int, float], after: dict[int, float]) -> tuple[float, list[float]]:
    """Total CPU seconds spent between two readings, and per process (largest first); a process born
    in between counts from zero."""
    per = sorted((round(after[p] - before.get(p, 0.0), 2) for p in after), reverse=True)
    return sum(per), per


# ---- the client's side ------------------------------------------------------------------------------------
def encode_posts(host: str, port: int, path: str, bodies: Sequence[bytes], headers: dict[str, str]) -> list[bytes]:
    """Each body as the complete HTTP/1.1 request that will be written, byte for byte."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return [(head + f"Content-Length: {len(b)}\r\n\r\n").encode("latin-1") + b for b in bodies]


class ProtocolError(Exception):
    pass


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection stays open) of one HTTP/1.1 response."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ", 2)[1])
    except (IndexError, ValueError) as e:
        raise ProtocolError(f"bad status line {head[0]!r}") from e
    headers = {}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    keep = headers.get("connection") != "close"
    if "chunked" in headers.get("transfer-encoding", ""):
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304) or status < 200:
        body = b""
    else:  # delimited by the server closing the connection
        body, keep = await reader.read(), False
    return status, body, keep


@dataclass
class Run:
    """What one run measured: per-request latencies (s), wall time, the answers' status codes, the
    client's own CPU seconds, and the bodies when asked for."""

    latencies: list[float]
    wall_s: float
    statuses: Counter
    client_cpu_s: float
    bodies: list[bytes] = field(default_factory=list)

    @property
    def non_200(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)

    def figures(self, prefix: str) -> dict[str, Any]:
        lat = sorted(self.latencies)
        p99 = statistics.quantiles(lat, n=100)[98] if len(lat) > 1 else lat[0]
        return {f"rps_{prefix}": round(len(lat) / self.wall_s, 1),
                f"p50_ms_{prefix}": round(statistics.median(lat) * 1000, 2), f"p99_ms_{prefix}": round(p99 * 1000, 2)}


async def _run(host: str, port: int, requests: Sequence[bytes], n: int, concurrency: int, keep_bodies: bool,
               timeout: float) -> Run:
    latencies: list[float] = []
    statuses: Counter = Counter()
    bodies: list[bytes] = []
    todo = iter(range(n))

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def client() -> None:
        reader, writer = await connect()
        try:
            for i in todo:
                t0 = time.perf_counter()
                writer.write(requests[i % len(requests)])
                async with asyncio.timeout(timeout):
                    await writer.drain()
                    status, body, keep = await read_response(reader)
                latencies.append(time.perf_counter() - t0)
                statuses[status] += 1
                if keep_bodies:
                    bodies.append(body)
                if not keep:
                    writer.close()
                    reader, writer = await connect()
        finally:
            writer.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Run(latencies, time.perf_counter() - t0, statuses, time.process_time() - cpu0, bodies)


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name() -> str:
    return "uvloop" if _loop_factory() else "asyncio"


def run_load(host: str, port: int, requests: Sequence[bytes], n: int, concurrency: int, *,
             keep_bodies: bool = False, timeout: float = 120.0) -> Run:
    """``n`` requests over ``concurrency`` keep-alive connections, cycling through ``requests``
    (pre-encoded by :func:`encode_posts`); each connection sends its next request when the last
    answer is read (closed loop)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_run(host, port, requests, n, concurrency, keep_bodies, timeout))
