"""Error bodies in the contract's (Fastify) shape: {statusCode, error, message}, and the one reader of
JSON request bodies.

This is the one place the domain's errors (`browserfleet.errors`) become status codes (`STATUS`), for the
REST API, the gateway and the inspector alike: every app route runs behind `error_middleware`. Every
refusal carries `x-should-retry: false` but a 408, a 429 and a server that is stopping (a retry may
succeed there): the SDKs retry 409 and 5xx on their own, and would repeat a create three times.

Bad input is the client's fault and is answered 4xx: a body is refused before any handler sees it if it
is not JSON, nests deeper than `MAX_DEPTH`, holds NaN/Infinity (which would make every later listing
invalid JSON), or has a string that cannot be stored as UTF-8 text (a lone surrogate) or holds NUL.
Only what no check foresaw reaches the 500 branch, which logs it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import ValidationError

from browserfleet.errors import (
    BrowserError,
    BrowserfleetError,
    BrowserUnreachable,
    ConcurrencyLimited,
    Conflict,
    Forbidden,
    Gone,
    Inapplicable,
    InvalidRequest,
    NotFound,
    NotOffered,
    PageLoadFailed,
    PageLoadTimedOut,
    RateLimited,
    ShuttingDown,
    TooLarge,
    Unauthenticated,
    Unavailable,
    WebDriverError,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SURROGATES = re.compile(r"[\ud800-\udfff]")

# A domain error's status is that of the nearest of its classes here (so a new subclass inherits its
# parent's). A BrowserfleetError with none (the base itself) is a bug: answered 500 like any other.
STATUS: dict[type[BrowserfleetError], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    Inapplicable: 422,
    ConcurrencyLimited: 429,
    RateLimited: 429,
    NotOffered: 501,
    PageLoadFailed: 502,  # the contract's fetch errors: 502 for a site that failed or was too large
    PageLoadTimedOut: 504,
    Unavailable: 503,
    BrowserUnreachable: 502,  # the browser is there but did not answer: the gateway's "bad gateway"
    BrowserError: 503,
    WebDriverError: 400,  # only raised on the WebDriver endpoint, which answers by its code (W3C_STATUS)
}


def status_of(exc: BrowserfleetError) -> int | None:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return None


RETRYABLE = frozenset({408, 429})  # statuses a retry may fix: the SDKs' own rules decide


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    retry: bool | None = False,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    """The contract's error body (plus `extra` fields, e.g. a fetch's `id`). `retry`: False sends
    `x-should-retry: false` (the default for every refusal but 408 and 429), None leaves the SDKs to their
    own rules (they retry 408, 409, 429 and 5xx)."""
    if not message.isascii():
        # Messages quote the request, which may hold lone surrogates (a header that was not UTF-8): JSON
        # parsers stricter than Python's refuse those even escaped.
        message = _SURROGATES.sub("\N{REPLACEMENT CHARACTER}", message)
    body = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message, **(extra or {})}
    response = web.json_response(body, status=status, headers=headers)
    if retry is False and status not in RETRYABLE:
        # The SDKs retry 409 and 5xx, and would send a create up to three times: a refusal that another
        # identical request cannot change says so.
        response.headers["x-should-retry"] = "false"
    return response


def should_retry(exc: BrowserfleetError) -> bool | None:
    """None where another try may succeed (the server was stopping); False for every other refusal."""
    return None if isinstance(exc, ShuttingDown) else False


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


def error_headers(exc: BrowserfleetError) -> dict[str, str] | None:
    """The headers a domain error's answer carries besides its body."""
    if isinstance(exc, (ConcurrencyLimited, RateLimited)):
        headers = rate_limit_headers(exc.limit, 0, exc.reset_seconds)
        # Python SDKs ignore retry-after over 60 s and Node ones wait for it: never ask for more.
        headers["retry-after"] = str(max(1, min(exc.reset_seconds, 60)))
        return headers
    return None


def from_exception(
    request: web.Request, exc: BaseException, extra: dict[str, Any] | None = None
) -> web.Response:
    """The answer to `exc`, in the contract's shape (with `extra` fields in the body, e.g. a fetch's `id`)."""
    if isinstance(exc, BrowserfleetError) and (status := status_of(exc)) is not None:
        if status >= 500 and exc.detail:
            log.warning("%s %s: %s (%s)", request.method, request.path, exc.message, exc.detail)
        return error_response(status, exc.message, error_headers(exc), should_retry(exc), extra)
    if isinstance(exc, ValidationError):
        return error_response(400, describe(exc), extra=extra)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, "Request body is too large", extra=extra)
    if isinstance(exc, (web.HTTPNotFound, web.HTTPMethodNotAllowed)):
        return error_response(404, f"Route {request.method}:{request.path} not found", extra=extra)
    if isinstance(exc, web.HTTPException):
        return error_response(exc.status, exc.reason, extra=extra)
    if isinstance(exc, (HttpProcessingError, RequestPayloadError)):
        # The body was malformed on the wire: shorter than its Content-Length, bad chunking, or not the
        # gzip/deflate its Content-Encoding says.
        response = error_response(400, f"Malformed request body: {_first_line(exc)}", extra=extra)
        response.force_close()  # what is left of the body cannot be read past: not this connection again
        return response
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "Internal server error", extra=extra)


# The W3C WebDriver error codes the endpoint answers with, and their statuses (WebDriver §6.6).
W3C_STATUS = {
    "invalid argument": 400,
    "invalid session id": 404,
    "unknown command": 404,
    "unknown method": 405,
    "session not created": 500,
    "unknown error": 500,
}
# A domain error on the WebDriver endpoint: its status as in the REST API, and the W3C code for it.
_W3C_CODE = {
    400: "invalid argument",
    404: "invalid session id",
    410: "invalid session id",
    413: "invalid argument",
}
WEBDRIVER_PREFIX = "/webdriver"


def webdriver_response(status: int, code: str, message: str, retry: bool | None = False) -> web.Response:
    """An error in the W3C shape: `{"value": {"error", "message", "stacktrace"}}`."""
    message = _SURROGATES.sub("\N{REPLACEMENT CHARACTER}", message)
    body = {"value": {"error": code, "message": message, "stacktrace": ""}}
    response = web.json_response(body, status=status)
    if retry is False and status not in RETRYABLE:
        response.headers["x-should-retry"] = "false"
    return response


def webdriver_error(request: web.Request, exc: BaseException) -> web.Response:
    """`exc` answered as a WebDriver remote end would (the same statuses as the REST API's answer)."""
    if isinstance(exc, WebDriverError):
        return webdriver_response(W3C_STATUS.get(exc.code, 500), exc.code, exc.message)
    if isinstance(exc, (web.HTTPNotFound, web.HTTPMethodNotAllowed)):
        return webdriver_response(404, "unknown command", f"Unknown command {request.method} {request.path}")
    answer = from_exception(request, exc)
    assert isinstance(answer.body, bytes)
    message = json.loads(answer.body).get("message", "")
    code = _W3C_CODE.get(answer.status, "unknown error")
    status = W3C_STATUS[code] if code == "invalid session id" else answer.status  # an ended one's: 404
    response = webdriver_response(status, code, message, retry=None)
    for name, value in answer.headers.items():  # x-should-retry, retry-after, rate limits
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_host(request)
        return await handler(request)
    except web.HTTPSuccessful:
        raise
    except Exception as exc:
        if request.path == WEBDRIVER_PREFIX or request.path.startswith(WEBDRIVER_PREFIX + "/"):
            return webdriver_error(request, exc)
        return from_exception(request, exc)


BROKE_OFF = "The request body broke off: the connection closed before its end"


def check_host(request: web.Request) -> None:
    """The Host header is echoed into URLs the server answers with (connect and replay URLs): one that
    is not UTF-8 (surrogates, once aiohttp has decoded it) could not be written out."""
    host = request.headers.get("Host", "")
    if not host.isascii():
        try:
            host.encode()
        except UnicodeEncodeError as exc:
            raise InvalidRequest("The Host header is not valid UTF-8") from exc


MAX_DEPTH = 32  # of objects and arrays in a body: no field of the contract nests more than a few levels


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"{text} is out of range")
    return value


def _bad_text(text: str) -> str | None:
    """Why a string cannot be stored (PostgreSQL text takes neither lone surrogates nor NUL), or None."""
    if "\x00" in text:
        return "holds a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone UTF-16 surrogate (not valid Unicode text)"
    return None


def check_json(value: object) -> None:
    """InvalidRequest if a parsed body nests deeper than MAX_DEPTH or holds a string that cannot be stored.

    Iterative, so that no depth can exhaust the stack."""
    stack: list[tuple[object, str, int]] = [(value, "body", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if (why := _bad_text(item)) is not None:
                raise InvalidRequest(f"{where}: the string {why}")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            raise InvalidRequest(f"{where}: nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(item, dict):
            for key, child in item.items():
                if (why := _bad_text(key)) is not None:
                    raise InvalidRequest(f"{where}: a key {why}")
                stack.append((child, f"{where}.{key}" if where != "body" else key, depth + 1))
        else:
            stack.extend((child, f"{where}.{i}", depth + 1) for i, child in enumerate(item))


async def json_body(request: web.Request) -> dict[str, object]:
    """The request's JSON object; an empty body counts as {} (the SDKs send JSON content-type without one)."""
    try:
        raw = await request.read()
    except ConnectionResetError as exc:  # aiohttp's word for "the client closed mid-body"
        raise InvalidRequest(BROKE_OFF) from exc
    return parse_json(raw)


def parse_json(raw: bytes) -> dict[str, object]:
    """A JSON object body, by the rules of the module docstring (empty: {}); else InvalidRequest."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError as exc:
        # The C parser gives up at the interpreter's recursion limit, before our own depth check.
        raise InvalidRequest(f"Body is nested too deeply (at most {MAX_DEPTH} levels)") from exc
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidRequest(f"Body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("Body must be a JSON object")
    check_json(body)
    return body


def _first_line(exc: BaseException) -> str:
    """What aiohttp says went wrong: its errors print as `400, message:` and the reason on the next line."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    text = re.sub(r"^\d{3}, message:\s*", "", (text or "").strip())
    return text.splitlines()[0].strip() if text else type(exc).__name__


class MalformedRequests(logging.Filter):
    """For aiohttp's `aiohttp.server` logger: a request it cannot parse (bytes that are not allowed in the
    request line, a header over its size limit) is answered 400 by aiohttp itself, but logged with a
    traceback as if the server had failed. Such a record becomes one line, at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # RequestPayloadError: a body that is not what its Content-Encoding says, met again when aiohttp
        # reads what the handler left of it (the handler has answered 400 already).
        if isinstance(exc, (HttpProcessingError, RequestPayloadError)):
            record.msg, record.args = "malformed request: %s", (_first_line(exc),)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
