"""The OpenAPI document of the REST API, served at `GET /openapi.json` without authentication.

It is generated, not written: each `/v1` route declares its operation with `@operation(...)`, naming the
pydantic models it validates its body and query with and builds its responses from, and `document()`
walks the app's router and asks those models for their JSON schemas. A route added without a
declaration is listed all the same (with only the error response), and tests require every `/v1` route
to declare one. Gateway, DevTools and live view routes are WebSockets and pages, not REST: not listed.

Every operation documents `default` as the error body, so a fuzzer that checks responses against the
document also checks that every error is in the contract's shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from browserfleet.api.context import API_KEY_HEADER
from browserfleet.api.schemas import ErrorBody
from browserfleet.services import SERVICES

routes = web.RouteTableDef()

F = TypeVar("F", bound=Callable[..., Any])
REF = "#/components/schemas/{model}"
UUID_PARAM: dict[str, Any] = {"type": "string", "format": "uuid"}
SECURITY = "BrowserbaseAuth"  # the scheme's name in Browserbase's own document


@dataclass(frozen=True)
class Media:
    """A response that is not JSON: its content type (and, when it is text, its schema)."""

    content_type: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string", "format": "binary"})


# What one status answers: a type (a model, or e.g. list[Model]), a Media, a list of those (one per
# content type), or None for no body.
Answer = type[Any] | Media | list[type[Any] | Media] | None


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: Mapping[int, Answer]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # schemas of path parameters
    multipart: dict[str, Any] | None = None  # schema of a multipart/form-data body
    description: str = ""


_OPERATIONS: dict[Callable[..., Any], Operation] = {}


def operation(
    summary: str,
    responses: Mapping[int, Answer],
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    path: Mapping[str, dict[str, Any]] | None = None,
    multipart: dict[str, Any] | None = None,
    description: str = "",
) -> Callable[[F], F]:
    """Declare what a route takes and answers, for the document. `{id}` defaults to a UUID."""
    declared = Operation(
        summary, responses, body, query, {"id": UUID_PARAM, **(path or {})}, multipart, description
    )

    def register(handler: F) -> F:
        _OPERATIONS[handler] = declared
        return handler

    return register


def declared(handler: Callable[..., Any]) -> Operation | None:
    return _OPERATIONS.get(handler)


class _Schemas:
    """Collects component schemas as models are referred to."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        self.of(ErrorBody)

    def _inline(self, tp: Any, mode: Any) -> dict[str, Any]:
        schema = TypeAdapter(tp).json_schema(ref_template=REF, mode=mode)
        self.components.update(schema.pop("$defs", {}))
        return schema

    def of(self, tp: Any, mode: Any = "serialization") -> dict[str, Any]:
        """A schema for `tp`; a model becomes a component and is referred to."""
        schema = self._inline(tp, mode)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            name = tp.__name__
            self.components[name] = schema
            return {"$ref": REF.format(model=name)}
        return schema


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's `| None` (a query string has no null)."""
    alternatives = schema.get("anyOf")
    if not alternatives:
        return schema
    kept = [alt for alt in alternatives if alt != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _query_parameters(schemas: _Schemas, model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = schemas.of(model, "validation")
    schema = schemas.components.pop(model.__name__) if "$ref" in schema else schema
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(dict(prop))
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _content(schemas: _Schemas, answer: Answer) -> dict[str, Any] | None:
    if answer is None:
        return None
    content: dict[str, Any] = {}
    for item in answer if isinstance(answer, list) else [answer]:
        if isinstance(item, Media):
            content[item.content_type] = {"schema": item.schema}
        else:
            content["application/json"] = {"schema": schemas.of(item)}
    return content


def _operation(schemas: _Schemas, method: str, path: str, declared: Operation | None) -> dict[str, Any]:
    op = declared or Operation(f"{method.upper()} {path}", {})
    entry: dict[str, Any] = {"operationId": _operation_id(method, path), "summary": op.summary}
    if op.description:
        entry["description"] = op.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": op.path.get(name, {"type": "string"})}
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    if op.query is not None:
        parameters += _query_parameters(schemas, op.query)
    if parameters:
        entry["parameters"] = parameters
    if op.body is not None:
        entry["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": schemas.of(op.body, "validation")}},
        }
    elif op.multipart is not None:
        entry["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": op.multipart}},
        }
    responses: dict[str, Any] = {}
    for status, answer in sorted(op.responses.items()):
        response: dict[str, Any] = {"description": _phrase(status)}
        if (content := _content(schemas, answer)) is not None:
            response["content"] = content
        responses[str(status)] = response
    responses["default"] = {
        "description": "An error, in the contract's shape",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }
    entry["responses"] = responses
    return entry


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}") for w in path.split("/") if w and w != "v1"]
    return method.lower() + "".join(
        w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", "_".join(words)) if w
    )


def _phrase(status: int) -> str:
    return HTTPStatus(status).phrase


_built: dict[int, dict[str, Any]] = {}  # by id(app.router): routes are fixed once the app runs


def document(app: web.Application, server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the app's `/v1` routes."""
    if id(app.router) not in _built or not app.router.frozen:
        _built[id(app.router)] = _document(app)
    return {**_built[id(app.router)], "servers": [{"url": server_url}]}


def _document(app: web.Application) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/v1/") or route.method in ("HEAD", "*"):
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(
            schemas, route.method, path, declared(route.handler)
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "browserfleet API",
            "version": "v1",
            "description": "A self-hosted, Browserbase-compatible browser session API.",
        },
        "security": [{SECURITY: []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {SECURITY: {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}},
            "schemas": dict(sorted(schemas.components.items())),
        },
    }


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    """Public, like Browserbase's own published document: it holds no project, key or session."""
    return web.json_response(document(request.app, request.app[SERVICES].public_base(request)))
