"""Request body size limits, enforced while the body streams in (413 past the limit).

A declared ``Content-Length`` over the limit is refused before anything is read; one that is not a
number in ASCII digits is a 400. A body without one (chunked) is counted as it arrives: past the
limit, reading it raises inside the app. The app may catch that (FastAPI turns any exception while
it reads a declared body parameter into a 400, "There was an error parsing the body"), so the
answer is decided here, not there: once a body went past the limit, whatever the app answers is
replaced by the 413, and reading on raises again.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("relief_risk.serving")

MAX_LENGTH_DIGITS = 18  # 10**18 bytes: any longer Content-Length is past every limit (and int() of
# thousands of digits is refused: Python's limit on integer strings)


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int] | None = None) -> None:
        self.app, self.default_limit, self.limits = app, default_limit, limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():  # bytes.isdigit: ASCII digits only
                await self._answer(send, 400, "Content-Length is not a number of bytes in ASCII digits")
                return
            if len(declared) > MAX_LENGTH_DIGITS or int(declared) > limit:
                await self._answer(send, 413, f"request body larger than {limit} bytes")
                return
        seen = 0
        over = started = replaced = False

        async def limited_receive() -> Message:
            nonlocal seen, over
            if over:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                if over and not started:  # the app answers a body it could not read: the answer is the 413
                    replaced = True
                    log.info("a body past the limit answered %s by the app: 413 instead", message.get("status"))
                    await self._answer(send, 413, f"request body larger than {limit} bytes")
                started = True
            if not replaced:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
            if not started:  # _TooLarge itself, or what the app made of it (an exception group …)
                await self._answer(send, 413, f"request body larger than {limit} bytes")

    @staticmethod
    async def _answer(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
