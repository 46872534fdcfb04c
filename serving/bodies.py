"""JSON request bodies read once, fast, and documented as FastAPI would document them.

The scoring routes read their body themselves (:func:`json_body`: ``orjson`` instead of FastAPI's
``json.loads`` plus a second model pass) and validate it with the bundle's pydantic model; the raw
JSON values are what the domain scores and the audit keeps. So that ``/openapi.json`` still
describes those bodies, :func:`documented_body` declares the request body of such a route, and
:func:`add_schemas` puts the models' JSON schemas into the document's components.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError

from domain.bundle import pydantic_problems
from serving.errors import BadRequest


def _is_json(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


async def json_body(request: Request) -> Any:
    """The body as JSON values; a body that is not JSON (or is sent as another type) is a 422
    naming ``body``, never a 500. The size limit was enforced while it streamed in (limits.py)."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise BadRequest([{"loc": ["body"], "msg": f"expected a JSON body (Content-Type: application/json), "
                                                   f"got {content_type[:60]!r}", "type": "content_type"}])
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest([{"loc": ["body"], "msg": f"not valid JSON: {exc}", "type": "json_invalid"}]) from None


def documented_body(model: type[BaseModel], examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model``."""
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if examples:
        content["examples"] = examples
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def add_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Adds ``models``' JSON schemas (and their nested models') to the OpenAPI components."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = build()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, sub)
                schemas[model.__name__] = schema
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], raw: Any) -> M:
    """``raw`` (a body read by :func:`json_body`) as ``model``, or 422 naming each bad field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(pydantic_problems(exc)) from None
