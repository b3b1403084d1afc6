"""The gateway's CDP policy: a session's client cannot reach the host's files through its browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Server, session_browser, wait_for
from playwright.sync_api import Error as PlaywrightError

from browserfleet.gateway.policy import web_url


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("", True),
        ("about:blank", True),
        ("https://example.com/a", True),
        ("HTTP://127.0.0.1:1/", True),
        ("data:text/html,hi", True),
        ("file:///etc/passwd", False),
        ("FILE:///etc/passwd", False),
        ("  \tfile:///etc/passwd", False),
        ("fi\nle:///etc/passwd", False),
        ("view-source:file:///etc/passwd", False),
        ("view-source:https://example.com", True),
        ("filesystem:file:///x", False),
        ("/etc/passwd", False),
        ("chrome://settings", False),
    ],
)
def test_only_web_urls_pass(url: str, allowed: bool) -> None:
    assert web_url(url) is allowed


@pytest.fixture
def session_page(server: Server, playwright: Any) -> Any:
    session = server.sdk().sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    _, profile = session_browser(server, session.id)
    page = browser.contexts[0].pages[0]
    yield page, browser, profile, server.data_dir / "sessions" / session.id
    browser.close()


def test_host_files_cannot_be_opened(session_page: Any) -> None:
    page, browser, _, _ = session_page
    with pytest.raises(PlaywrightError, match=r"browserfleet: Page\.navigate"):
        page.goto("file:///etc/hostname")
    cdp = browser.new_browser_cdp_session()
    for url in ("file:///etc/passwd", "view-source:file:///etc/passwd", " FILE:///"):
        with pytest.raises(PlaywrightError, match=r"browserfleet: Target\.createTarget"):
            cdp.send("Target.createTarget", {"url": url})
    page_cdp = page.context.new_cdp_session(page)
    frame_id = page_cdp.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
    with pytest.raises(PlaywrightError, match=r"browserfleet: Network\.loadNetworkResource"):
        page_cdp.send(
            "Network.loadNetworkResource",
            {"url": "file:///etc/passwd", "frameId": frame_id, "options": {}},
        )
    with pytest.raises(PlaywrightError, match=r"browserfleet: Extensions\.loadUnpacked"):
        cdp.send("Extensions.loadUnpacked", {"path": "/etc"})
    # The session still works after refusals.
    assert page.evaluate("2 + 2") == 4


def test_pages_cannot_navigate_themselves_to_host_files(session_page: Any, site: str) -> None:
    """Renderer-initiated navigations to file: are Chromium's to refuse; check it does."""
    page, browser, _, _ = session_page
    page.goto(f"{site}/index.html")
    page.evaluate("window.open('file:///etc/hostname'); location.href = 'file:///etc/hostname'")
    page.wait_for_timeout(500)
    urls = [p.url for context in browser.contexts for p in context.pages]
    assert not [u for u in urls if u.startswith("file:")], urls


def test_file_inputs_take_only_the_sessions_uploads(session_page: Any) -> None:
    page, _, profile, artifacts = session_page
    page.set_content("<input type=file id=f>")
    cdp = page.context.new_cdp_session(page)
    node = cdp.send(
        "DOM.querySelector", {"nodeId": cdp.send("DOM.getDocument")["root"]["nodeId"], "selector": "#f"}
    )
    escapes = (
        "/etc/passwd",
        str(artifacts / "uploads" / ".." / "logs" / "cdp.jsonl"),
        str(profile / "user-data" / "Local State"),
        "/tmp/.uploads/../../etc/passwd",
    )
    for path in escapes:
        with pytest.raises(PlaywrightError, match=r"browserfleet: DOM\.setFileInputFiles"):
            cdp.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [path]})
    upload = artifacts / "uploads" / "notes.txt"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_text("mine")
    cdp.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [str(upload)]})
    assert page.evaluate("document.getElementById('f').files[0].name") == "notes.txt"


def test_download_path_is_always_the_sessions_own(session_page: Any, site: str, tmp_path: Path) -> None:
    page, browser, _, artifacts = session_page
    elsewhere = tmp_path / "chosen-by-client"
    cdp = browser.new_browser_cdp_session()
    cdp.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(elsewhere)})
    page.goto(f"{site}/download.html")
    page.click("#dl")

    def finished() -> list[str]:
        # Once complete, a download is moved out of the browser's profile into the session's artifacts.
        folder = artifacts / "downloads"
        return [p.read_text() for p in folder.iterdir()] if folder.exists() else []

    wait_for(lambda: finished() == ["secret-ish bytes\n"])
    assert not elsewhere.exists()


def raw_cdp(server: Server, session_id: str, messages: list[str]) -> list[dict[str, Any]]:
    """Send hand-written CDP text (escapes, duplicates) on a session's socket; the answers, in order."""
    import asyncio
    import json
    from concurrent.futures import ThreadPoolExecutor

    import websockets

    async def go() -> list[dict[str, Any]]:
        url = f"{server.ws_url}/?apiKey={server.api_key}&sessionId={session_id}"
        async with websockets.connect(url, compression=None, max_size=None) as ws:
            answers = []
            for message in messages:
                await ws.send(message)
                while True:
                    answer = json.loads(await ws.recv())
                    if "id" in answer:
                        answers.append(answer)
                        break
            return answers

    with ThreadPoolExecutor(1) as thread:  # the sync Playwright fixture may hold this thread's loop
        return thread.submit(asyncio.run, go()).result()


def test_escapes_and_duplicate_keys_do_not_slip_past(server: Server) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    try:
        answers = raw_cdp(
            server,
            session.id,
            [
                '{"id": 1, "method": "Target.create\\u0054arget", "params": {"url": "file:///etc/hostname"}}',
                '{"id": 2, "method": "Target.createTarget", "params": {"url": "file:///"},'
                ' "method": "Browser.getVersion"}',
                '{"id": 3, "method": "Target.createTarget", "params": {"url": "fil\\u0065:///etc/hostname"}}',
                '{"id": 4, "method": "PWA.launchFilesInApp",'
                ' "params": {"manifestId": "x", "files": ["/etc/hostname"]}}',
                '{"id": 5, "method": "Browser.getVersion"}',
            ],
        )
        for answer in answers[:4]:
            assert "browserfleet" in answer["error"]["message"], answer
        assert answers[4]["result"]["product"].startswith("Chrome/")
    finally:
        server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


def test_drag_and_drop_cannot_carry_host_files(session_page: Any) -> None:
    page, _, _, _ = session_page
    cdp = page.context.new_cdp_session(page)
    drag = {
        "type": "drop",
        "x": 10,
        "y": 10,
        "data": {"items": [], "files": ["/etc/hostname"], "dragOperationsMask": 1},
    }
    with pytest.raises(PlaywrightError, match=r"browserfleet: Input\.dispatchDragEvent"):
        cdp.send("Input.dispatchDragEvent", drag)


def test_clients_are_told_when_the_session_ends(server: Server) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import websockets

    session = server.sdk().sessions.create(keep_alive=True)

    async def go() -> tuple[int | None, str | None]:
        async with websockets.connect(session.connect_url, compression=None, max_size=None) as ws:
            await ws.send('{"id": 1, "method": "Browser.getVersion"}')
            await ws.recv()
            await asyncio.to_thread(server.sdk().sessions.update, session.id, status="REQUEST_RELEASE")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            rcvd = closed.value.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, None)

    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(asyncio.run, go()).result() == (1001, "session ended")
