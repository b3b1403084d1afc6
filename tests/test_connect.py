"""Connecting real clients through the gateway: every URL form, and what is refused."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from conftest import Server, wait_for
from playwright.sync_api import Error as PlaywrightError


def status(server: Server, session_id: str) -> str:
    return str(server.sdk().sessions.retrieve(session_id).status)


def test_the_quickstart_against_a_local_site(server: Server, site: str, playwright: Any) -> None:
    """The Browserbase quickstart, base URL changed: create, connect, click "Tickets", disconnect."""
    bb = server.sdk()
    session = bb.sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    context = browser.contexts[0]
    page = context.pages[0]
    assert page.url == "about:blank"
    page.goto(f"{site}/index.html")
    page.get_by_role("link", name="Tickets").click()
    page.wait_for_url("**/tickets.html")
    assert page.title() == "Tickets | Museum of Local Art"
    browser.close()
    # Without keepAlive, the session ends when its last client leaves.
    wait_for(lambda: status(server, session.id) == "COMPLETED")


def test_connect_with_api_key_creates_a_session(server: Server, site: str, playwright: Any) -> None:
    before = {s.id for s in server.sdk().sessions.list()}
    browser = playwright.chromium.connect_over_cdp(f"{server.ws_url}/?apiKey={server.api_key}")
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/index.html")
    assert page.locator("h1").inner_text() == "Museum of Local Art"
    created = [s for s in server.sdk().sessions.list(status="RUNNING") if s.id not in before]
    assert len(created) == 1
    browser.close()
    wait_for(lambda: status(server, created[0].id) == "COMPLETED")


def test_connect_with_api_key_and_session_id(server: Server, playwright: Any) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    try:
        url = f"{server.ws_url}/?apiKey={server.api_key}&sessionId={session.id}"
        browser = playwright.chromium.connect_over_cdp(url)
        assert browser.contexts[0].pages[0].evaluate("6 * 7") == 42
        browser.close()
    finally:
        server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


@pytest.mark.parametrize("form", ["signing-key", "api-key"])
def test_http_endpoint_for_connect_over_cdp(server: Server, playwright: Any, form: str) -> None:
    """connect_over_cdp('http://…') reads /json/version/ first, as with a local Chromium."""
    session = server.sdk().sessions.create()
    if form == "signing-key":
        endpoint = f"{server.url}/?signingKey={session.signing_key}"
    else:
        endpoint = f"{server.url}/?apiKey={server.api_key}&sessionId={session.id}"
    for path in ("/json/version", "/json/version/"):
        info = httpx.get(f"{server.url}{path}", params={"signingKey": session.signing_key}).json()
        assert info["webSocketDebuggerUrl"].startswith(server.ws_url + "/?signingKey=")
        assert info["Browser"].startswith("Chrome/")
    browser = playwright.chromium.connect_over_cdp(endpoint)
    assert len(browser.contexts[0].pages) == 1
    browser.close()
    wait_for(lambda: status(server, session.id) == "COMPLETED")


def test_two_clients_share_a_session_until_the_last_leaves(server: Server, playwright: Any) -> None:
    session = server.sdk().sessions.create()
    first = playwright.chromium.connect_over_cdp(session.connect_url)
    second = playwright.chromium.connect_over_cdp(session.connect_url)
    first.close()
    assert second.contexts[0].pages[0].evaluate("1 + 1") == 2
    assert status(server, session.id) == "RUNNING"
    second.close()
    wait_for(lambda: status(server, session.id) == "COMPLETED")


def test_large_messages_pass_uncompressed(server: Server, playwright: Any) -> None:
    """A screenshot bigger than any default WebSocket limit (1 MiB) comes through whole."""
    session = server.sdk().sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.set_viewport_size({"width": 1600, "height": 1200})
    # Noise does not compress: the PNG is several MB.
    page.set_content(
        "<canvas id=c width=1600 height=1200></canvas><script>"
        "const c=document.getElementById('c').getContext('2d');const d=c.createImageData(1600,1200);"
        "for(let i=0;i<d.data.length;i++)d.data[i]=Math.random()*256|0;c.putImageData(d,0,0);</script>"
    )
    png = page.screenshot(full_page=True)
    assert len(png) > 4 * 1024 * 1024 and png[:8] == b"\x89PNG\r\n\x1a\n"
    cdp = page.context.new_cdp_session(page)
    shot = cdp.send("Page.captureScreenshot", {"format": "png"})
    assert len(base64.b64decode(shot["data"])) > 4 * 1024 * 1024
    browser.close()


def handshake_status(url: str) -> int:
    """The HTTP status a WebSocket upgrade to `url` gets."""
    http_url = "http" + url[2:]
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
    }
    return httpx.get(http_url, headers=headers).status_code


def test_bad_credentials_are_refused_at_the_upgrade(server: Server, playwright: Any) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    _, other_key = server.new_project("connect-isolation", concurrency=1)
    forged = session.signing_key[:-4] + ("AAAA" if not session.signing_key.endswith("AAAA") else "BBBB")
    sessions = {s.id for s in server.sdk().sessions.list()}
    try:
        assert handshake_status(f"{server.ws_url}/") == 401
        assert handshake_status(f"{server.ws_url}/?apiKey=nope") == 401
        assert handshake_status(f"{server.ws_url}/?signingKey={forged}") == 401
        assert handshake_status(f"{server.ws_url}/?signingKey=garbage") == 401
        # Another project's key cannot reach this session, and learns nothing about it.
        assert handshake_status(f"{server.ws_url}/?apiKey={other_key}&sessionId={session.id}") == 404
        assert handshake_status(f"{server.ws_url}/?apiKey={server.api_key}&sessionId=no-such-id") == 404
        with pytest.raises(PlaywrightError):
            playwright.chromium.connect_over_cdp(f"{server.ws_url}/?signingKey={forged}", timeout=10_000)
        # Nothing refused made a session, and the session is untouched.
        assert {s.id for s in server.sdk().sessions.list()} == sessions
        assert status(server, session.id) == "RUNNING"
        # A plain GET on the socket path is a clear 400, not a hang.
        plain = httpx.get(f"{server.url}/?apiKey={server.api_key}")
        assert plain.status_code == 400 and "WebSocket" in plain.json()["message"]
    finally:
        server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


def test_connect_to_an_ended_session_is_refused(server: Server, playwright: Any) -> None:
    session = server.sdk().sessions.create()
    server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
    assert handshake_status(session.connect_url) == 410
    assert handshake_status(f"{server.ws_url}/?apiKey={server.api_key}&sessionId={session.id}") == 410
    with pytest.raises(PlaywrightError):
        playwright.chromium.connect_over_cdp(session.connect_url, timeout=10_000)
