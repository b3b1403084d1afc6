"""Error bodies in the contract's (Fastify) shape: {statusCode, error, message}."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web
from pydantic import ValidationError

from browserfleet.sessions.errors import ConcurrencyLimited, SessionError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message}
    response = web.json_response(body, status=status, headers=headers)
    if status >= 500 or status == 409:
        # The SDKs retry 409 and 5xx; these are not transient, so say so.
        response.headers["x-should-retry"] = "false"
    return response


def rate_limit_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(reset),
    }


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def from_exception(request: web.Request, exc: BaseException) -> web.Response:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message, exc.headers)
    if isinstance(exc, ConcurrencyLimited):
        headers = rate_limit_headers(exc.limit, 0, exc.reset_seconds)
        # Python SDKs ignore retry-after over 60 s and Node ones wait for it: never ask for more.
        headers["retry-after"] = str(max(1, min(exc.reset_seconds, 60)))
        return error_response(429, exc.message, headers)
    if isinstance(exc, SessionError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, ValidationError):
        return error_response(400, describe(exc))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, "Request body is too large")
    if isinstance(exc, (web.HTTPNotFound, web.HTTPMethodNotAllowed)):
        return error_response(404, f"Route {request.method}:{request.path} not found")
    if isinstance(exc, web.HTTPException):
        return error_response(exc.status, exc.reason)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "Internal server error")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPSuccessful:
        raise
    except Exception as exc:
        return from_exception(request, exc)


async def json_body(request: web.Request) -> dict[str, object]:
    """The request's JSON object; an empty body counts as {} (the SDKs send JSON content-type without one)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "Body must be a JSON object")
    return body
