"""``relief-risk serve``: one uvicorn server, or several worker processes sharing the port.

Several workers each bind their own listening socket with ``SO_REUSEPORT``, so the kernel spreads
new connections over them. With uvicorn's own ``--workers`` they share one socket, and whichever
worker wakes first accepts every connection waiting (asyncio accepts up to the backlog at once): a
platform opening its 8 keep-alive connections together got all 8 served by one worker while the
other idled, and two workers were slower than one. Each worker loads the models once
(:func:`serving.app.create_app_from_env`); a worker that dies is started again.

Metrics: the workers keep their values in files of a private folder the supervisor makes for this
run (``PROMETHEUS_MULTIPROC_DIR``, set before any worker starts and removed when the service
stops), so ``/metrics`` from any worker reports them all; a worker that exits is marked dead there
(its live gauges dropped, its counts kept). Logs: every process writes its lines to standard error
as JSON (or text: ``RELIEF_RISK_LOG_FORMAT``), uvicorn's own among them (:mod:`serving.logs`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.process import BaseProcess

log = logging.getLogger("relief_risk.serve")

RESTART_DELAY_S = 1.0


def _listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is first imported


def _worker(host: str, port: int, log_level: str, log_format: str) -> None:  # pragma: no cover - a child process
    import uvicorn

    from serving.logs import configure

    configure(log_format, log_level)  # type: ignore[arg-type]
    sock = _listening_socket(host, port, reuse_port=True)
    # log_config=None: uvicorn's loggers hand their lines to the handler configured above
    config = uvicorn.Config("serving.app:create_app_from_env", factory=True, host=host, port=port,
                            log_level=log_level, access_log=False, log_config=None)
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int = 1, log_level: str = "info", log_format: str = "json") -> int:
    """Serves until SIGINT or SIGTERM. Settings come from the environment (``RELIEF_RISK_*``); the
    caller checks them before, so a bad setting fails once, here, not in every worker."""
    from serving.logs import configure

    configure(log_format, log_level)  # type: ignore[arg-type]
    # MLflow draws a progress bar on standard error for each artifact the model pages download: not a
    # log line (the log is one JSON object a line), and nobody watches a service's terminal
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if workers <= 1:
        import uvicorn

        os.environ.pop(MULTIPROC_ENV, None)  # one process: its metrics in memory, none left by another run
        from serving.app import create_app_from_env

        uvicorn.run(create_app_from_env(), host=host, port=port, log_level=log_level, access_log=False,
                    log_config=None)
        return 0
    if not hasattr(socket, "SO_REUSEPORT"):
        raise SystemExit("--workers > 1 needs SO_REUSEPORT (Linux, macOS, BSD)")
    # The port must be free: a socket bound without SO_REUSEPORT fails where anything listens, even a
    # server that would otherwise have let our workers join its group.
    try:
        _listening_socket(host, port, reuse_port=False).close()
    except OSError as exc:
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    metrics_dir = tempfile.mkdtemp(prefix="relief-risk-metrics-")  # fresh, empty, mode 700
    os.environ[MULTIPROC_ENV] = metrics_dir  # before any worker starts: each inherits it
    try:
        return _supervise(host, port, workers, log_level, log_format, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)


def _supervise(host: str, port: int, workers: int, log_level: str, log_format: str, metrics_dir: str) -> int:
    from prometheus_client.multiprocess import mark_process_dead

    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def start() -> BaseProcess:
        p = context.Process(target=_worker, args=(host, port, log_level, log_format), daemon=False)
        p.start()
        return p

    children = [start() for _ in range(workers)]
    log.info("serving on http://%s:%d with %d worker processes (pids %s)", host, port, workers,
             ", ".join(str(p.pid) for p in children))
    try:
        while not stopping:
            time.sleep(0.2)
            for i, p in enumerate(children):
                if not p.is_alive() and not stopping:
                    log.error("worker %s exited with %s; starting another", p.pid, p.exitcode)
                    mark_process_dead(p.pid, metrics_dir)
                    time.sleep(RESTART_DELAY_S)
                    children[i] = start()
    finally:
        for p in children:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then stops
        for p in children:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
