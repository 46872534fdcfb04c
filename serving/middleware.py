"""ASGI middleware, written against the raw ASGI interface (Starlette's ``BaseHTTPMiddleware``
costs a task and a stream per request): the access log, and the request-size limit in limits.py."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("relief_risk.serving")


class AccessLog:
    """One line per request: method, the route's template (``/v1/audit/{request_id}``, never the
    path that was asked: no identifiers in logs), status and milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if log.isEnabledFor(logging.INFO):
                route = scope.get("route")
                log.info("%s %s %d %.1fms", scope["method"], getattr(route, "path", "(no route)"), status,
                         (time.perf_counter() - t0) * 1000)
