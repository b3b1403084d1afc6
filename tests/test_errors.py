"""The one error hierarchy at the API's edge (no Chromium): every domain error has a status code and the
contract's body, and a runner that fails during a create is a 503, never a 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from browserfleet import errors
from browserfleet.api import sessions as session_routes
from browserfleet.api.auth import add_key
from browserfleet.api.errors import error_middleware
from browserfleet.artifacts import zips
from browserfleet.artifacts.layout import ArtifactRoot
from browserfleet.artifacts.recordings import Recordings
from browserfleet.artifacts.service import Artifacts
from browserfleet.artifacts.storage import LocalBlobs
from browserfleet.bootstrap import create_project
from browserfleet.browsers.launcher import Browser, Launcher, Walls
from browserfleet.browsers.sandbox import Mode
from browserfleet.browsers.spec import BrowserSpec
from browserfleet.cluster.local import LocalRunner
from browserfleet.cluster.runner import Runner
from browserfleet.config import Settings
from browserfleet.gateway.capabilities import SessionNotCreated
from browserfleet.gateway.drivers import Drivers
from browserfleet.gateway.frames import Limits
from browserfleet.services import SERVICES, Services
from browserfleet.sessions.manager import SessionManager
from browserfleet.sessions.tokens import SigningKeys, ViewTokens
from browserfleet.store.repo import Store
from harness.server import run_async

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
    errors.RateLimited: 429,
    errors.NotOffered: 501,
    errors.PageLoadFailed: 502,
    errors.PageLoadTimedOut: 504,
    errors.Unavailable: 503,
    errors.ShuttingDown: 503,
    zips.UnsafeZip: 400,
    errors.BrowserError: 503,
    errors.LaunchFailed: 503,
    errors.CdpError: 503,
    errors.BrowserUnreachable: 502,
    errors.HandshakeError: 502,
    errors.WebDriverError: 400,
    SessionNotCreated: 400,
}


def subclasses(cls: type[errors.BrowserfleetError]) -> Iterator[type[errors.BrowserfleetError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def make(cls: type[errors.BrowserfleetError]) -> errors.BrowserfleetError:
    if cls in (errors.ConcurrencyLimited, errors.RateLimited):
        return cls(3, 120)
    if cls is errors.WebDriverError:
        return errors.WebDriverError("invalid argument", "what the client may read")
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
    status, headers, body = run_async(lambda: answers(lambda: make(cls)))
    assert status == EXPECTED[cls]
    # The message and nothing else: `detail` (paths, a browser's own output) never reaches a client.
    assert body == {"statusCode": status, "error": HTTPStatus(status).phrase, "message": error.message}
    # The SDKs retry 409, 429 and 5xx: a refusal a retry cannot change says so. A 429 is left to their
    # rules (they honour its retry-after), and so is a server that is stopping (another try may find it
    # restarted).
    transient = cls in (errors.ConcurrencyLimited, errors.RateLimited, errors.ShuttingDown)
    assert headers.get("x-should-retry") == (None if transient else "false")


def test_concurrency_limited_says_when_to_retry() -> None:
    _status, headers, _body = run_async(lambda: answers(lambda: errors.ConcurrencyLimited(3, 120)))
    assert headers["x-ratelimit-limit"] == "3"
    assert headers["x-ratelimit-remaining"] == "0"
    assert headers["x-ratelimit-reset"] == "120"
    assert headers["retry-after"] == "60"  # never more than a minute: the Python SDKs ignore longer waits
    _status, headers, _body = run_async(lambda: answers(lambda: errors.ConcurrencyLimited(3, 0)))
    assert headers["retry-after"] == "1"


def test_rate_limited_says_when_one_more_creation_is_allowed() -> None:
    status, headers, body = run_async(lambda: answers(lambda: errors.RateLimited(5, 17)))
    assert status == 429 and body["error"] == "Too Many Requests"
    assert "per minute" in body["message"] and "(5)" in body["message"]
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("5", "0")
    assert headers["x-ratelimit-reset"] == headers["retry-after"] == "17"
    assert "x-should-retry" not in headers


def test_the_bare_base_class_is_a_defect() -> None:
    status, _headers, body = run_async(lambda: answers(lambda: errors.BrowserfleetError("no kind of error")))
    assert (status, body["message"]) == (500, "Internal server error")


# -- a runner failing during a create ---------------------------------------------------------------


class BrokenRunner:
    """A runner with a bug: its failure is none of the BrowserErrors the protocol promises."""

    async def acquire(self, spec: BrowserSpec) -> Browser:
        raise KeyError("a runner's bug")

    async def release(self, browser: Browser) -> None:
        raise AssertionError("no browser was ever handed out")

    async def reap_orphans(self) -> int:
        return 0


def no_uid_left(tmp: Path) -> LocalRunner:
    """The real runner, jailed with no uid to give a browser: it fails before Chromium would start."""
    launcher = Launcher(
        "/nonexistent/chromium", [], tmp / "profiles", 5.0, False, walls=Walls(Mode.JAILED, uid_count=0)
    )
    return LocalRunner(launcher, 0, 1, 0)


async def create_with(runner: Runner, tmp: Path) -> list[tuple[int, CIMultiDict[str], Any]]:
    """Two `POST /v1/sessions` through the real route, with `runner` behind the manager."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}")
    try:
        project = await create_project(store, "t", concurrency=1)
        await add_key(store, project.id, "bf_test_key")
        manager = SessionManager(store, runner)
        root = ArtifactRoot(tmp / "sessions")
        secret = "s" * 64
        svc = Services(
            Settings(data_dir=tmp),
            store,
            manager,
            SigningKeys(secret),
            ViewTokens(secret),
            Artifacts(root, store, Recordings(root, store), 5.0),
            ViewTokens(secret, purpose="media"),
            Limits(),
            LocalBlobs(tmp / "blobs"),
            Drivers(None, isolate=False),
        )
        app = web.Application(middlewares=[error_middleware])
        app[SERVICES] = svc
        app.add_routes(session_routes.routes)
        out = []
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for _ in range(2):  # the second: the failed create gave its concurrency slot back (not a 429)
                response = await client.post("/v1/sessions", json={}, headers={"X-BB-API-Key": "bf_test_key"})
                out.append((response.status, CIMultiDict(response.headers), await response.json()))
        assert manager.usage(project)[0] == 1
        return out
    finally:
        if isinstance(runner, LocalRunner):
            await runner.close()
        await store.close()


@pytest.mark.parametrize("which", ["broken runner", "no uid left"])
def test_a_runner_failing_during_a_create_is_a_503(which: str, tmp_path: Path) -> None:
    runner: Runner = BrokenRunner() if which == "broken runner" else no_uid_left(tmp_path)
    for status, headers, body in run_async(lambda: create_with(runner, tmp_path)):
        assert status == 503
        why = "" if which == "broken runner" else ": every sandbox uid is in use by a browser"
        assert body == {
            "statusCode": 503,
            "error": "Service Unavailable",
            "message": f"The browser could not be started{why}",
        }
        assert headers["x-should-retry"] == "false"
