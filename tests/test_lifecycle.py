"""How sessions end: timeout, keep-alive, release, browser crash; and what each end cleans up."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import browserbase
import psutil
import pytest
from conftest import Server, browser_pids, each_database, profiles, session_browser, wait_for
from playwright.sync_api import Error as PlaywrightError


def status(server: Server, session_id: str, key: str | None = None) -> str:
    return str(server.sdk(key).sessions.retrieve(session_id).status)


def closed(browser: Any) -> bool:
    """True once the client's connection is gone (the sync API only notices when it is used)."""
    try:
        browser.contexts[0].pages[0].evaluate("1") if browser.contexts else None
    except PlaywrightError:
        return True
    return not browser.is_connected()


def browser_cgroup(pid: int) -> Path:
    """The browser's group in the v1 pids hierarchy (every process of the browser is listed there)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return Path("/sys/fs/cgroup/pids") / path.lstrip("/")
    raise AssertionError("the browser has no pids cgroup")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@each_database()
def test_release_kills_the_whole_tree_and_removes_the_profile(server: Server) -> None:
    session = server.sdk().sessions.create()
    pid, profile = session_browser(server, session.id)
    tree = {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    assert len(tree) > 2  # Chromium's zygotes, GPU/utility and renderer processes
    # Crash handlers double-fork out of their parent, but not out of the browser's jail (its PID
    # namespace) nor its cgroup, which lists every process of the browser and is what the release kills.
    group = browser_cgroup(pid)
    members = {int(line) for line in (group / "cgroup.procs").read_text().split()}
    assert set(tree) <= members | {pid}
    assert any("crashpad" in " ".join(psutil.Process(p).cmdline()) for p in members)
    server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
    wait_for(lambda: all(gone(p) for p in tree | members))
    wait_for(lambda: not group.exists())
    wait_for(lambda: not profile.exists())  # release answers first; the teardown follows at once
    # Whatever the server adopted (it is a subreaper) has been reaped: no zombies left behind.
    assert server.proc is not None
    wait_for(
        lambda: (
            not [c for c in psutil.Process(server.proc.pid).children() if c.status() == psutil.STATUS_ZOMBIE]
        )
    )


def test_keep_alive_survives_disconnects_until_released(server: Server, site: str, playwright: Any) -> None:
    bb = server.sdk()
    session = bb.sessions.create(keep_alive=True)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    browser.contexts[0].pages[0].goto(f"{site}/tickets.html")
    browser.close()
    time.sleep(0.5)
    assert status(server, session.id) == "RUNNING"
    again = playwright.chromium.connect_over_cdp(
        f"{server.ws_url}/?apiKey={server.api_key}&sessionId={session.id}"
    )
    assert again.contexts[0].pages[0].url == f"{site}/tickets.html"
    # Releasing while a client is connected ends the session and closes the client.
    bb.sessions.update(session.id, status="REQUEST_RELEASE")
    wait_for(lambda: closed(again))
    assert status(server, session.id) == "COMPLETED"


@each_database()
def test_a_crashed_browser_ends_the_session_as_error(server: Server, playwright: Any) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    pid, _ = session_browser(server, session.id)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(server, session.id) == "ERROR")
    ended = server.sdk().sessions.retrieve(session.id)
    assert ended.ended_at is not None
    # The connected client is closed, not left hanging.
    wait_for(lambda: closed(browser), timeout=10)
    wait_for(lambda: pid not in browser_pids(server))


def test_browser_close_from_the_client_completes_the_session(server: Server, playwright: Any) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    cdp = browser.new_browser_cdp_session()
    try:
        cdp.send("Browser.close")
    except PlaywrightError:
        pass  # the socket may close before the answer arrives
    wait_for(lambda: status(server, session.id) == "COMPLETED")


@each_database()
def test_concurrency_limit_429_and_slots_free_at_once(server: Server, playwright: Any) -> None:
    project_id, key = server.new_project("limited", concurrency=2)
    bb = server.sdk(key, max_retries=0)
    first, second = bb.sessions.create(), bb.sessions.create()
    with server.http(key) as http:
        refused = http.post("/v1/sessions", json={})
    assert refused.status_code == 429
    body = refused.json()
    assert body["statusCode"] == 429 and body["error"] == "Too Many Requests"
    headers = refused.headers
    assert headers["x-ratelimit-limit"] == "2" and headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(headers["x-ratelimit-reset"]) <= 300
    assert 1 <= int(headers["retry-after"]) <= 60
    with pytest.raises(browserbase.RateLimitError):
        bb.sessions.create()
    # Implicit creation at connect is admitted the same way, refused before the upgrade.
    with pytest.raises(PlaywrightError, match="429"):
        playwright.chromium.connect_over_cdp(f"{server.ws_url}/?apiKey={key}", timeout=10_000)
    # Release is never refused for concurrency, and frees the slot at once.
    bb.sessions.update(first.id, status="REQUEST_RELEASE")
    third = bb.sessions.create()
    assert third.status == "RUNNING"
    for s in (second, third):
        bb.sessions.update(s.id, status="REQUEST_RELEASE")
    assert server.sdk(key).projects.retrieve(project_id).concurrency == 2


def test_a_burst_never_exceeds_the_limit(server: Server) -> None:
    _, key = server.new_project("burst", concurrency=1)

    def create() -> int:
        with server.http(key) as http:
            return http.post("/v1/sessions", json={}).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(lambda _: create(), range(6)))
    assert codes == [201, 429, 429, 429, 429, 429]
    running = server.sdk(key).sessions.list(status="RUNNING")
    assert len(running) == 1
    server.sdk(key).sessions.update(running[0].id, status="REQUEST_RELEASE")


def test_sessions_time_out_connected_or_never_connected(server: Server, playwright: Any) -> None:
    """The shortest timeout the contract allows is 60 s, so this test takes a minute."""
    bb = server.sdk()
    idle = bb.sessions.create(api_timeout=60)
    used = bb.sessions.create(api_timeout=60, keep_alive=True)
    pids = {session_browser(server, s.id)[0] for s in (idle, used)}
    assert len(pids) == 2
    browser = playwright.chromium.connect_over_cdp(used.connect_url)
    browser.contexts[0].pages[0].evaluate("1")
    wait_for(lambda: status(server, idle.id) == "TIMED_OUT", timeout=75, interval=0.5)
    wait_for(lambda: status(server, used.id) == "TIMED_OUT", timeout=10)
    wait_for(lambda: closed(browser), timeout=10)
    for session in (idle, used):
        ended = bb.sessions.retrieve(session.id)
        assert ended.ended_at is not None and ended.ended_at >= ended.expires_at
    wait_for(lambda: not (pids & browser_pids(server)))


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants; none if it has exited meanwhile (the released session's browser
    may still be closing when the browsers are counted)."""
    try:
        root = psutil.Process(pid)
        return [root.pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


@each_database("make_server")
def test_restart_keeps_records_and_reaps_orphans(make_server: Any, playwright: Any) -> None:
    srv: Server = make_server("restart").start()
    bb = srv.sdk()
    done = bb.sessions.create()
    bb.sessions.update(done.id, status="REQUEST_RELEASE")
    alive = bb.sessions.create(keep_alive=True, user_metadata={"kept": "yes"})
    pid, _ = session_browser(srv, alive.id)
    # Every browser of this server: the session's and the warm pool's idle ones, with their trees.
    wait_for(lambda: len(browser_pids(srv)) == 3)  # the session's and a refilled pool of 2
    old_profiles = profiles(srv)
    tree = [pid for b in browser_pids(srv) for pid in process_tree(b)]
    groups = [browser_cgroup(b) for b in browser_pids(srv)]
    # The server dies without any chance to clean up: its jailed browsers die with it (bubblewrap's
    # parent-death signal), leaving only their profiles and cgroups, which the next start removes.
    srv.stop(signal.SIGKILL)
    wait_for(lambda: all(gone(p) for p in tree))
    assert all(p.exists() for p in old_profiles)
    srv.start()
    assert not [p for p in old_profiles if p.exists()]
    assert not [g for g in groups if g.exists()]
    bb = srv.sdk()
    after = {s.id: s for s in bb.sessions.list()}
    assert after[done.id].status == "COMPLETED"
    assert after[alive.id].status == "ERROR" and after[alive.id].ended_at is not None
    assert after[alive.id].user_metadata == {"kept": "yes"}
    with pytest.raises(PlaywrightError):
        playwright.chromium.connect_over_cdp(alive.connect_url, timeout=10_000)
    # A graceful stop ends running sessions and kills their browsers too.
    running = bb.sessions.create(keep_alive=True)
    pid, _ = session_browser(srv, running.id)
    srv.stop()
    assert gone(pid) and not profiles(srv)
    srv.start()
    assert srv.sdk().sessions.retrieve(running.id).status == "ERROR"


def test_a_browser_that_cannot_start_is_a_clean_503(make_server: Any) -> None:
    srv: Server = make_server("no-chromium", BROWSERFLEET_CHROMIUM_PATH="/nonexistent/chromium").start()
    with srv.http(srv.api_key) as http:
        response = http.post("/v1/sessions", json={})
        assert response.status_code == 503
        assert response.headers["x-should-retry"] == "false"
        assert "could not be started" in response.json()["message"]
        assert http.get("/v1/sessions").json() == []
    assert not profiles(srv)


def test_a_graceful_stop_leaves_no_task_behind(make_server: Any, site: str, playwright: Any) -> None:
    from websockets.sync.client import connect

    srv: Server = make_server("clean-stop").start()
    bb = srv.sdk()
    # A recorded session that has ended: its video is being encoded.
    ended = bb.sessions.create()
    browser = playwright.chromium.connect_over_cdp(ended.connect_url)
    browser.contexts[0].pages[0].goto(f"{site}/animated.html")
    time.sleep(1)
    browser.close()
    wait_for(lambda: status(srv, ended.id) == "COMPLETED")
    # A running one at the stop: a client on a page reached through its egress proxy, a live viewer,
    # capture, its CDP log and sampling, and the warm pool refilling behind it.
    running = bb.sessions.create(keep_alive=True)
    client = playwright.chromium.connect_over_cdp(running.connect_url)
    client.contexts[0].pages[0].goto(f"{site}/animated.html")
    viewer_url = bb.sessions.debug(running.id).debugger_fullscreen_url
    with connect(viewer_url.replace("http://", "ws://").replace("/live/view", "/live/ws")) as viewer:
        assert json.loads(viewer.recv(timeout=10))["type"] == "hello"
        assert isinstance(viewer.recv(timeout=10), bytes)  # a frame: the screencast runs
        srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0
    assert srv.left_behind() == [], srv.log.read_text(errors="replace")[-3000:]
