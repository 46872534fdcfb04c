"""ASGI middleware, written against the raw ASGI interface (Starlette's ``BaseHTTPMiddleware``
costs a task and a stream per request): the access log (which also keeps personal data out of
caches, gives each request its id and counts it in the metrics), and the request-size limit in
limits.py."""

from __future__ import annotations

import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.logs import REQUEST_ID
from serving.metrics import UNMATCHED, Metrics

log = logging.getLogger("relief_risk.serving")


NO_STORE = (b"cache-control", b"no-store")
REQUEST_ID_HEADER = b"x-request-id"


def holds_personal_data(path: str) -> bool:
    """Whether an answer on ``path`` may carry personal data: the API's (``/v1/…``) and the auditor's
    pages and CSV (``/ui…``), not the stylesheet, the docs, the OpenAPI document or the probes."""
    return path.startswith("/v1/") or (path.startswith("/ui") and not path.startswith("/ui/static/"))


class AccessLog:
    """One line per request: method, the route's template (``/v1/audit/{request_id}``, never the
    path that was asked: no identifiers in logs), status and milliseconds, also as the fields
    ``method``, ``route``, ``status`` and ``ms`` of a JSON line. Each request gets a fresh id
    (:data:`serving.logs.REQUEST_ID`, so every log line written while it is answered carries it),
    returned as ``X-Request-ID``; ``metrics`` counts the request and its time by method, route
    template and status. Also marks every answer that may carry personal data
    ``Cache-Control: no-store`` (:func:`holds_personal_data`), unless the route set a Cache-Control
    of its own: whatever the route, error or middleware that answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        no_store = holds_personal_data(scope["path"])
        request_id = os.urandom(16).hex()  # 32 hex digits, as the audit records' ids (a uuid4: 4x the time)
        token = REQUEST_ID.set(request_id)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                if no_store and not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            # counted and logged as what was answered (500 by the server when nothing was); the id
            # stays set, so the server's own line about the error carries it too
            self._answered(scope, status, t0)
            raise
        self._answered(scope, status, t0)
        REQUEST_ID.reset(token)

    def _answered(self, scope: Scope, status: int, t0: float) -> None:
        seconds = time.perf_counter() - t0
        route = getattr(scope.get("route"), "path", None)
        if self.metrics is not None:
            self.metrics.request(scope["method"], route, status, seconds)
        if log.isEnabledFor(logging.INFO):
            route = route or UNMATCHED
            ms = round(seconds * 1000, 1)
            log.info("%s %s %d %.1fms", scope["method"], route, status, ms,
                     extra={"method": scope["method"], "route": route, "status": status, "ms": ms})
