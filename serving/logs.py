"""The service's log lines: one JSON object a line (``RELIEF_RISK_LOG_FORMAT=json``, the default of
``relief-risk serve``) or plain text for a developer's terminal (``text``), both carrying the id of
the HTTP request they were written in.

A JSON line holds ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message`` and,
inside a request, ``request_id``: a fresh id per HTTP request (:data:`REQUEST_ID`, set by
:class:`serving.middleware.AccessLog` and returned as ``X-Request-ID``), which on ``POST /v1/score``
is the audit record's request id too. Fields a call passes as ``extra`` (the request log's
``method``, ``route``, ``status``, ``ms``) are keys of their own; an exception's traceback is
``exception``. What the lines say is up to the calls: route templates, never paths with ids, and
never a household id or a key.

The id lives in a context variable, so it follows the request into the worker threads that score
(anyio copies the context into them) and into every logger, the store's and the domain's included,
without any of them knowing about HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
from contextvars import ContextVar
from typing import Any, Literal

import orjson

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("relief_risk_request_id", default=None)

# what every LogRecord carries, which a JSON line does not repeat as extra fields
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                 "request_id", "rid", "taskName"}
_DROPPED = frozenset({"color_message"})  # uvicorn's message again, with terminal colours


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on each record (``None`` outside a request); a handler's filter,
    so it sees every record the handler writes, whichever logger it came from."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time, level, logger, message, request_id, the call's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:  # orjson: a twentieth of json's time, on every request's line
            return orjson.dumps(line, default=str).decode()
        except TypeError:  # what orjson refuses (an integer past 64 bits), json writes
            return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id]: message``, as the command line's other stages write."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        record.rid = f" [{request_id}]" if request_id else ""
        return super().format(record)


def logging_config(fmt: LogFormat = "json", level: str = "info") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` that writes every record (the service's, the store's,
    uvicorn's, the libraries') to standard error in ``fmt``; uvicorn's loggers hand theirs to it."""
    if fmt not in ("json", "text"):
        raise ValueError(f"log format {fmt!r}: expected json or text")
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"line": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "line", "filters": ["request_id"]}},
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error")},
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


def configure(fmt: LogFormat = "json", level: str = "info") -> None:
    """Sets the process's logging to :func:`logging_config`; Python's warnings become log lines too."""
    logging.config.dictConfig(logging_config(fmt, level))
    logging.captureWarnings(True)
