"""The one error hierarchy at the API's edge (no Chromium): every domain error has a status code and the
contract's body."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from browserfleet import errors
from browserfleet.api.errors import error_middleware

T = TypeVar("T")

# What a client sees for each domain error: written out, so that a new error class (or a changed code)
# fails here until someone decides its status.
EXPECTED = {
    errors.InvalidRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.TooLarge: 413,
    errors.Inapplicable: 422,
    errors.ConcurrencyLimited: 429,
    errors.Unavailable: 503,
    errors.BrowserError: 503,
    errors.LaunchFailed: 503,
    errors.CdpError: 503,
    errors.BrowserUnreachable: 502,
    errors.HandshakeError: 502,
}


def subclasses(cls: type[errors.BrowserfleetError]) -> Iterator[type[errors.BrowserfleetError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def in_thread(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    with ThreadPoolExecutor(1) as thread:  # the sync Playwright fixture may hold this thread's loop
        return thread.submit(asyncio.run, main()).result()


def make(cls: type[errors.BrowserfleetError]) -> errors.BrowserfleetError:
    if cls is errors.ConcurrencyLimited:
        return errors.ConcurrencyLimited(3, 120)
    return cls(f"{cls.__name__}: what the client may read", "what only the operator may read")


async def answers(raising: Callable[[], errors.BrowserfleetError]) -> tuple[int, CIMultiDict[str], Any]:
    """(status, headers, JSON body) of a route that raises what `raising` makes."""

    async def handler(request: web.Request) -> web.Response:
        raise raising()

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/")
        assert response.content_type == "application/json"
        return response.status, CIMultiDict(response.headers), await response.json()


def test_every_domain_error_has_a_status() -> None:
    assert set(subclasses(errors.BrowserfleetError)) == set(EXPECTED)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda cls: cls.__name__)
def test_a_domain_error_is_answered_in_the_contracts_shape(cls: type[errors.BrowserfleetError]) -> None:
    error = make(cls)
    status, headers, body = in_thread(answers(lambda: make(cls)))
    assert status == EXPECTED[cls]
    # The message and nothing else: `detail` (paths, a browser's own output) never reaches a client.
    assert body == {"statusCode": status, "error": HTTPStatus(status).phrase, "message": error.message}
    # The SDKs retry 409 and 5xx: none of these is transient.
    assert headers.get("x-should-retry") == ("false" if status >= 500 or status == 409 else None)


def test_concurrency_limited_says_when_to_retry() -> None:
    _status, headers, _body = in_thread(answers(lambda: errors.ConcurrencyLimited(3, 120)))
    assert headers["x-ratelimit-limit"] == "3"
    assert headers["x-ratelimit-remaining"] == "0"
    assert headers["x-ratelimit-reset"] == "120"
    assert headers["retry-after"] == "60"  # never more than a minute: the Python SDKs ignore longer waits
    _status, headers, _body = in_thread(answers(lambda: errors.ConcurrencyLimited(3, 0)))
    assert headers["retry-after"] == "1"


def test_the_bare_base_class_is_a_defect() -> None:
    status, _headers, body = in_thread(answers(lambda: errors.BrowserfleetError("no kind of error")))
    assert (status, body["message"]) == (500, "Internal server error")
