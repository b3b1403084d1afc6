"""The warm pool: fresh browsers ahead of demand, each used once, replaced when they die."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conftest import Server, browser_pids, browsers_under, profiles, session_browser, wait_for


def test_every_session_gets_a_fresh_profile(server: Server, site: str, playwright: Any) -> None:
    bb = server.sdk()
    first = bb.sessions.create()
    browser = playwright.chromium.connect_over_cdp(first.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/index.html")
    page.context.add_cookies([{"name": "visitor", "value": "first", "url": site}])
    page.evaluate("localStorage.setItem('seen', 'yes')")
    assert page.context.cookies(site)
    browser.close()

    second = bb.sessions.create()
    assert session_browser(server, second.id) != session_browser(server, first.id)
    browser = playwright.chromium.connect_over_cdp(second.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/index.html")
    assert page.context.cookies(site) == []
    assert page.evaluate("localStorage.getItem('seen')") is None
    browser.close()


def test_a_browser_is_never_handed_to_two_sessions(server: Server) -> None:
    _, key = server.new_project("pool-burst", concurrency=6)
    bb = server.sdk(key)
    with ThreadPoolExecutor(max_workers=6) as pool:
        sessions = list(pool.map(lambda _: bb.sessions.create(), range(6)))  # more than the pool holds
    browsers = [session_browser(server, s.id) for s in sessions]
    assert len({pid for pid, _ in browsers}) == 6
    assert len({profile for _, profile in browsers}) == 6
    for s in sessions:
        bb.sessions.update(s.id, status="REQUEST_RELEASE")
    # Released browsers are gone for good, never back in the pool.
    later = bb.sessions.create()
    assert session_browser(server, later.id)[1] not in {profile for _, profile in browsers}
    wait_for(lambda: not [profile for _, profile in browsers if profile.exists()])
    bb.sessions.update(later.id, status="REQUEST_RELEASE")


def test_idle_browser_that_dies_is_replaced_and_shutdown_leaves_nothing(
    make_server: Any, playwright: Any
) -> None:
    srv: Server = make_server("pool-crash", BROWSERFLEET_POOL_SIZE="2").start()
    idle = wait_for(lambda: browser_pids(srv) if len(browser_pids(srv)) == 2 else None)
    victim = sorted(idle)[0]  # type: ignore[call-overload]
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(lambda: browser_pids(srv) if len(browser_pids(srv) - {victim}) == 2 else None)
    assert victim not in replaced  # type: ignore[operator]
    wait_for(lambda: len(profiles(srv)) == 2)  # the dead one's profile is removed
    session = srv.sdk().sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    assert browser.contexts[0].pages[0].evaluate("1 + 1") == 2
    browser.close()
    srv.stop()
    assert not browsers_under(srv.data_dir)
    assert not profiles(srv)


def test_short_of_memory_the_pool_holds_nothing_and_sessions_still_start(make_server: Any) -> None:
    srv: Server = make_server(
        "pool-memory", BROWSERFLEET_POOL_SIZE="3", BROWSERFLEET_POOL_MIN_FREE_MB="100000000"
    )
    srv.start()
    time.sleep(1.5)
    assert browser_pids(srv) == set()
    session = srv.sdk().sessions.create()
    assert session.status == "RUNNING"
    assert len(browser_pids(srv)) == 1
    srv.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
