"""The contract's limits on a real server: session creations per rolling minute per project (a 429 with
a `retry-after` that is true, implicit sessions counted), the connect window, and `x-should-retry` on
refusals a retry cannot fix."""

from __future__ import annotations

import time
from typing import Any

import browserbase
import pytest
from conftest import Server, each_database, wait_for
from playwright.sync_api import Error as PlaywrightError

from browserfleet.sessions.lifecycle import NEVER_CONNECTED


def release(server: Server, key: str, session_id: str) -> None:
    server.sdk(key).sessions.update(session_id, status="REQUEST_RELEASE")


@each_database()
def test_creations_per_minute_429_with_a_true_retry_after(server: Server, playwright: Any) -> None:
    project_id, key = server.new_project("rated", concurrency=5)
    assert "no creation limit" in server.cli("projects", "update", project_id, "--creations-per-minute", "0")
    out = server.cli("projects", "update", project_id, "--creations-per-minute", "2")
    assert "2 creations/min" in out
    assert "creations/min" in server.cli("projects", "list")
    with server.http(key) as http:
        started = time.monotonic()
        first = http.post("/v1/sessions", json={})
        assert first.status_code == 201
        # The tighter limit is the one reported: one creation left this minute, four concurrent slots.
        assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("2", "1")
        assert 55 <= int(first.headers["x-ratelimit-reset"]) <= 60
        release(server, key, first.json()["id"])  # ending a session gives no creation back
        # An implicit session (a connect with ?apiKey= alone) is a creation too.
        browser = playwright.chromium.connect_over_cdp(f"{server.ws_url}/?apiKey={key}")
        browser.close()
        refused = http.post("/v1/sessions", json={})
        elapsed = time.monotonic() - started
    assert refused.status_code == 429
    body = refused.json()
    assert body["statusCode"] == 429 and body["error"] == "Too Many Requests"
    assert "creations per minute" in body["message"] and "(2)" in body["message"]
    headers = refused.headers
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("2", "0")
    # True: the first creation leaves the window 60 s after it was made (rounded up to whole seconds).
    reset = int(headers["x-ratelimit-reset"])
    assert headers["retry-after"] == str(reset)
    assert 60 - elapsed - 1 <= reset <= 60 - elapsed + 2, (reset, elapsed)
    assert "x-should-retry" not in headers  # a retry after the wait succeeds: the SDKs may retry
    with pytest.raises(browserbase.RateLimitError):
        server.sdk(key, max_retries=0).sessions.create()
    with pytest.raises(PlaywrightError, match="429"):
        playwright.chromium.connect_over_cdp(f"{server.ws_url}/?apiKey={key}", timeout=10_000)
    # Off again: creates go through at once.
    server.cli("projects", "update", project_id, "--creations-per-minute", "0")
    session = server.sdk(key).sessions.create()
    assert session.status == "RUNNING"
    release(server, key, session.id)


def test_refusals_a_retry_cannot_fix_say_so(server: Server) -> None:
    _, key = server.new_project("refusals", concurrency=1)
    with server.http(key) as http:
        answers = {
            "unknown route": http.get("/v1/nothing-here"),
            "bad body": http.post("/v1/sessions", json={"timeout": 5}),
            "unknown session": http.get("/v1/sessions/00000000-0000-4000-8000-000000000000"),
        }
        session = http.post("/v1/sessions", json={}).json()
        answers["concurrency"] = http.post("/v1/sessions", json={})
        release(server, key, session["id"])
    with server.http("bf_not_a_key") as http:
        answers["bad key"] = http.get("/v1/sessions")
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "unknown route": 404,
        "bad body": 400,
        "unknown session": 404,
        "concurrency": 429,
        "bad key": 401,
    }
    retry = {name: response.headers.get("x-should-retry") for name, response in answers.items()}
    assert retry == {
        "unknown route": "false",
        "bad body": "false",
        "unknown session": "false",
        "concurrency": None,
        "bad key": "false",
    }


def test_a_session_nobody_connects_to_ends_at_the_connect_window(make_server: Any, playwright: Any) -> None:
    srv: Server = make_server(
        "connect-window",
        BROWSERFLEET_CONNECT_WINDOW="3",
        BROWSERFLEET_CREATIONS_PER_MINUTE="3",  # the bootstrap project's, from the environment
        BROWSERFLEET_POOL_SIZE="1",
    ).start()
    bb = srv.sdk()
    started = time.monotonic()
    idle = bb.sessions.create(keep_alive=True)  # keepAlive does not exempt it: nobody ever connected
    used = bb.sessions.create()
    browser = playwright.chromium.connect_over_cdp(used.connect_url)
    wait_for(lambda: bb.sessions.retrieve(idle.id).status == "TIMED_OUT", timeout=15, interval=0.2)
    assert time.monotonic() - started >= 3
    ended = bb.sessions.retrieve(idle.id)
    assert ended.ended_at is not None
    assert 2.9 <= (ended.ended_at - ended.started_at).total_seconds() <= 6
    row = srv.read_store(lambda store: store.session(idle.id))
    assert row is not None and row.end_reason == NEVER_CONNECTED
    # The one that was connected to runs on, past the window, and ends as ever when its client leaves.
    time.sleep(max(0.0, started + 4 - time.monotonic()))
    assert bb.sessions.retrieve(used.id).status == "RUNNING"
    browser.contexts[0].pages[0].evaluate("1")
    browser.close()
    wait_for(lambda: bb.sessions.retrieve(used.id).status == "COMPLETED")
    # BROWSERFLEET_CREATIONS_PER_MINUTE applies to the bootstrap project: a third creation is allowed,
    # a fourth within the minute is not.
    third = bb.sessions.create()
    release(srv, srv.api_key, third.id)
    with pytest.raises(browserbase.RateLimitError):
        srv.sdk(max_retries=0).sessions.create()
    projects = srv.read_store(lambda store: store.projects())
    assert [p.creations_per_minute for p in projects] == [3]
