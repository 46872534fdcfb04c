"""ASGI middleware, written against the raw ASGI interface (Starlette's ``BaseHTTPMiddleware``
costs a task and a stream per request): the access log (which also keeps personal data out of
caches), and the request-size limit in limits.py."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("relief_risk.serving")


NO_STORE = (b"cache-control", b"no-store")


def holds_personal_data(path: str) -> bool:
    """Whether an answer on ``path`` may carry personal data: the API's (``/v1/…``) and the auditor's
    pages and CSV (``/ui…``), not the stylesheet, the docs, the OpenAPI document or the probes."""
    return path.startswith("/v1/") or (path.startswith("/ui") and not path.startswith("/ui/static/"))


class AccessLog:
    """One line per request: method, the route's template (``/v1/audit/{request_id}``, never the
    path that was asked: no identifiers in logs), status and milliseconds. Also marks every answer
    that may carry personal data ``Cache-Control: no-store`` (:func:`holds_personal_data`), unless
    the route set a Cache-Control of its own: whatever the route, error or middleware that answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        no_store = holds_personal_data(scope["path"])

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if no_store:
                    headers = message.get("headers") or []
                    if not any(name.lower() == b"cache-control" for name, _ in headers):
                        message["headers"] = [*headers, NO_STORE]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if log.isEnabledFor(logging.INFO):
                route = scope.get("route")
                log.info("%s %s %d %.1fms", scope["method"], getattr(route, "path", "(no route)"), status,
                         (time.perf_counter() - t0) * 1000)
