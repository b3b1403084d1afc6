"""The live view (/live/view and its socket): frames from a real tab, input back to it, read-only held by
the server, tokens checked, and nothing left behind when viewers, tabs or sessions go."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import os
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from conftest import RESOLVER_RULES, Server, session_browser, wait_for

from browserfleet.browsers.egress import PORT as EGRESS_PORT
from browserfleet.sessions.tokens import SigningKeys, ViewTokens

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
BLUE, RED = (30, 120, 220), (220, 60, 40)  # the button in tests/site/live.html, before and after a click

# These tests watch tabs live; a recording of each would only queue encodes behind the suite's others.
NOT_RECORDED: Any = {"record_session": False}


# -- helpers -----------------------------------------------------------------------------------------


def run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run async client code off this thread (the sync Playwright fixture owns its loop)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, make()).result()


def server_secret(server: Server) -> str:
    def missing() -> str:
        raise AssertionError("the server keeps no signing-keys secret")

    return server.read_store(lambda store: store.secret("signing-keys", missing))


def view_tokens(server: Server) -> ViewTokens:
    """Tokens as the server mints them, from the secret it keeps in its store."""
    return ViewTokens(server_secret(server))


def mint(server: Server, session_id: str, read_only: bool = False, ttl: int = 300) -> str:
    return view_tokens(server).mint(session_id, int(time.time()) + ttl, read_only)


def view_url(server: Server, token: str, **params: str) -> str:
    return f"{server.url}/live/view?{urlencode({'t': token, **params})}"


def socket_url(server: Server, token: str, **params: str) -> str:
    return f"{server.ws_url}/live/ws?{urlencode({'t': token, **params})}"


def split_frame(message: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack(">I", message[:4])
    return json.loads(message[4 : 4 + length]), message[4 + length :]


def established(pid: int, port: int, listen: bool = False) -> int:
    """TCP connections to `port` in the network namespace of process `pid`, from /proc/<pid>/net/tcp."""
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.rsplit(":", 1)[1], 16) == port and state == ("0A" if listen else "01"):
            count += 1
    return count


def devtools_port(pid: int) -> int:
    """The browser's debugging port: what it listens on in its namespace, other than the egress proxy."""
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        port = int(local.rsplit(":", 1)[1], 16)
        if state == "0A" and port != EGRESS_PORT:
            return port
    raise AssertionError(f"browser {pid} listens on nothing")


@dataclass
class Tab:
    session_id: str
    page: Any  # the session's page, driven by Playwright through the gateway
    browser: Any

    def box(self, selector: str) -> tuple[float, float]:
        """The centre of an element, in the tab's CSS pixels."""
        box = self.page.locator(selector).bounding_box()
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def fraction(self, selector: str) -> tuple[float, float]:
        """The centre of an element as fractions of the viewport (what the viewer sends)."""
        x, y = self.box(selector)
        width, height = self.page.evaluate("[innerWidth, innerHeight]")
        return x / width, y / height


@pytest.fixture(scope="module")
def viewer_browser(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second, local Chromium: the one a person would watch the live view in."""
    tmp = tmp_path_factory.mktemp("viewer-tmp")
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[RESOLVER_RULES.replace('"', "")],
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    yield browser
    browser.close()


@pytest.fixture
def viewer(viewer_browser: Any) -> Iterator[Callable[[str], Any]]:
    """Open a live view URL in the viewer browser; every page opened is closed after the test."""
    pages: list[Any] = []

    def open_view(url: str, wait_frames: bool = True) -> Any:
        page = viewer_browser.new_page(viewport={"width": 960, "height": 640})
        pages.append(page)
        page.goto(url)
        if wait_frames:
            page.wait_for_function("() => window.liveView && liveView.frames > 0", timeout=15_000)
        return page

    yield open_view
    for page in pages:
        page.close()


@pytest.fixture
def tab(server: Server, site: str, playwright: Any) -> Iterator[Tab]:
    # The tab these tests were written against (headless Chromium's old default size): the viewer
    # scales it up, so a button's centre is its colour, not its anti-aliased label.
    settings = {**NOT_RECORDED, "viewport": {"width": 780, "height": 437}}
    session = server.sdk().sessions.create(keep_alive=True, browser_settings=settings)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/live.html")
    yield Tab(session.id, page, browser)
    browser.close()
    server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


def viewer_point(view: Any, x: float, y: float) -> tuple[float, float]:
    """Where the tab's CSS pixel (x, y) is drawn in the viewer page."""
    point = view.evaluate(
        """([x, y]) => {
            const rect = document.getElementById("screen").getBoundingClientRect();
            const h = liveView.header, top = h.offsetTop || 0;
            return [rect.left + x / h.deviceWidth * rect.width,
                    rect.top + (y + top) / (h.deviceHeight + top) * rect.height];
        }""",
        [x, y],
    )
    return float(point[0]), float(point[1])


def pixel(view: Any, x: float, y: float) -> tuple[int, int, int]:
    """The colour the viewer's canvas shows at viewer point (x, y)."""
    rgb = view.evaluate(
        """([x, y]) => {
            const canvas = document.getElementById("screen");
            const rect = canvas.getBoundingClientRect();
            const px = Math.floor((x - rect.left) / rect.width * canvas.width);
            const py = Math.floor((y - rect.top) / rect.height * canvas.height);
            return Array.from(canvas.getContext("2d").getImageData(px, py, 1, 1).data.slice(0, 3));
        }""",
        [x, y],
    )
    return rgb[0], rgb[1], rgb[2]


def near(color: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


def click_in_viewer(view: Any, tab: Tab, selector: str) -> None:
    view.mouse.click(*viewer_point(view, *tab.box(selector)))


# -- seeing and driving a tab ------------------------------------------------------------------------


def test_the_live_view_shows_the_tab_and_drives_it(server: Server, tab: Tab, viewer: Any) -> None:
    view = viewer(view_url(server, mint(server, tab.session_id)))
    assert view.evaluate("liveView.readOnly") is False
    assert view.locator("#badge").is_hidden()
    header = view.evaluate("liveView.header")
    width, height = tab.page.evaluate("[innerWidth, innerHeight]")
    assert (header["deviceWidth"], header["deviceHeight"]) == (width, height)
    # The frames are the tab: the button's blue is where the button is.
    wait_for(lambda: near(pixel(view, *viewer_point(view, *tab.box("#big"))), BLUE))

    click_in_viewer(view, tab, "#big")
    wait_for(lambda: tab.page.evaluate("clicks") == 1)
    assert tab.page.locator("#big").inner_text() == "Clicked 1"
    # The button moved and turned red; once the viewer shows that, click it where it is now.
    wait_for(lambda: near(pixel(view, *viewer_point(view, *tab.box("#big"))), RED))
    click_in_viewer(view, tab, "#big")
    wait_for(lambda: tab.page.evaluate("clicks") == 2)

    click_in_viewer(view, tab, "#field")
    view.keyboard.type("hello live")
    wait_for(lambda: tab.page.input_value("#field") == "hello live")
    view.keyboard.press("Backspace")
    view.keyboard.press("Shift+ArrowLeft")  # selects the "v"
    view.keyboard.type("X")
    wait_for(lambda: tab.page.input_value("#field") == "hello liX")
    assert "Shift+ArrowLeft" in tab.page.evaluate("keys")
    view.keyboard.press("Control+a")
    view.keyboard.type("all new")
    wait_for(lambda: tab.page.input_value("#field") == "all new")

    x, y = viewer_point(view, *tab.box("#dbl"))
    view.mouse.dblclick(x, y)
    wait_for(lambda: tab.page.locator("#dbl").inner_text() == "double")

    view.mouse.move(x, y)
    view.mouse.wheel(0, 600)
    wait_for(lambda: tab.page.evaluate("scrollY") > 0)


def test_input_messages_are_validated(server: Server, tab: Tab) -> None:
    """Garbage from a viewer is ignored, and the socket goes on working."""
    fx, fy = tab.fraction("#big")
    junk = [
        "not json",
        "[]",
        "null",
        '{"type": "mouse"}',
        '{"type": "mouse", "event": "down", "x": 1e309, "y": 0.5}',
        '{"type": "mouse", "event": "down", "x": NaN, "y": 0.5, "button": "left"}',
        '{"type": "mouse", "event": "down", "x": 7, "y": 0.5, "button": "left"}',
        '{"type": "mouse", "event": "down", "x": 0.5, "y": 0.5, "button": "thumb"}',
        '{"type": "key", "event": "down", "key": "' + "k" * 500 + '"}',
        '{"type": "key", "event": "down", "key": "a", "keyCode": -1}',
        '{"type": "text", "text": ""}',
        '{"type": "wheel", "x": 0.5, "y": 0.5, "deltaY": "lots"}',
        '{"type": "size", "width": -5, "height": 1e12}',
        '{"type": "Browser.close"}',
        '{"method": "Runtime.evaluate", "params": {"expression": "clicks = 99"}}',
    ]
    click = [
        {"type": "mouse", "event": "down", "x": fx, "y": fy, "button": "left", "buttons": 1, "clickCount": 1},
        {"type": "mouse", "event": "up", "x": fx, "y": fy, "button": "left", "clickCount": 1},
    ]

    async def go() -> None:
        async with websockets.connect(socket_url(server, mint(server, tab.session_id))) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["readOnly"] is False
            header, jpeg = split_frame(await asyncio.wait_for(ws.recv(), 10))
            assert jpeg[:2] == b"\xff\xd8" and header["deviceWidth"] > 0
            for message in junk:
                await ws.send(message)
            await ws.send(b"\x00binary")
            for message in click:
                await ws.send(json.dumps(message))
            await ws.send('{"type": "ack"}')
            await asyncio.wait_for(ws.recv(), 10)  # still framing: the click repainted the button

    run(go)
    wait_for(lambda: tab.page.evaluate("clicks") == 1)
    assert tab.page.input_value("#field") == ""


# -- read-only ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["read-only token", "readOnly=true"])
def test_read_only_views_cannot_act(server: Server, tab: Tab, viewer: Any, how: str) -> None:
    if how == "read-only token":
        token, extra = mint(server, tab.session_id, read_only=True), {}
    else:
        token, extra = mint(server, tab.session_id), {"readOnly": "true"}
    view = viewer(view_url(server, token, **extra))
    assert view.evaluate("liveView.readOnly") is True
    assert view.locator("#badge").is_visible()
    click_in_viewer(view, tab, "#big")
    click_in_viewer(view, tab, "#field")
    view.keyboard.type("nope")

    # The page would not send input; a hand-made client does, and the server drops it.
    fx, fy = tab.fraction("#big")
    ix, iy = tab.fraction("#field")
    messages = [
        {"type": "mouse", "event": "down", "x": fx, "y": fy, "button": "left", "buttons": 1, "clickCount": 1},
        {"type": "mouse", "event": "up", "x": fx, "y": fy, "button": "left", "clickCount": 1},
        {"type": "mouse", "event": "down", "x": ix, "y": iy, "button": "left", "buttons": 1, "clickCount": 1},
        {"type": "mouse", "event": "up", "x": ix, "y": iy, "button": "left", "clickCount": 1},
        {"type": "key", "event": "down", "key": "a", "code": "KeyA", "keyCode": 65},
        {"type": "key", "event": "up", "key": "a", "code": "KeyA", "keyCode": 65},
        {"type": "text", "text": "typed anyway"},
        {"type": "wheel", "x": 0.5, "y": 0.5, "deltaY": 800},
    ]

    async def go() -> bool:
        async with websockets.connect(socket_url(server, token, **extra)) as ws:
            hello = json.loads(await ws.recv())
            await asyncio.wait_for(ws.recv(), 10)  # the first frame
            for message in messages:
                await ws.send(json.dumps(message))
            await asyncio.sleep(1.5)
            return bool(hello["readOnly"])

    assert run(go) is True
    assert tab.page.evaluate("[clicks, keys.length, scrollY]") == [0, 0, 0]
    assert tab.page.input_value("#field") == ""
    # Still a live picture: a change made by the automation client shows up.
    frames = view.evaluate("liveView.frames")
    tab.page.click("#big")
    wait_for(lambda: view.evaluate("liveView.frames") > frames)
    wait_for(lambda: near(pixel(view, *viewer_point(view, *tab.box("#big"))), RED))


# -- credentials and headers -------------------------------------------------------------------------


def test_the_page_embeds_and_is_not_cached(server: Server, site: str, tab: Tab, viewer: Any) -> None:
    url = view_url(server, mint(server, tab.session_id))
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors *" in response.headers["content-security-policy"]
    assert "x-frame-options" not in response.headers
    assert "no-store" in response.headers["cache-control"]
    assert "http" not in response.text.replace("http-equiv", "")  # nothing from elsewhere
    for name in ("live.js", "live.css"):
        asset = httpx.get(f"{server.url}/live/static/{name}")
        assert asset.status_code == 200 and asset.text
    assert httpx.get(f"{server.url}/live/static/..%2F__init__.py").status_code == 404

    # In an iframe of a page from another origin, frames arrive.
    host = viewer(f"{site}/index.html", wait_frames=False)
    host.evaluate(
        """(url) => { const f = document.createElement("iframe");
            f.src = url; f.width = 800; f.height = 500; document.body.append(f); }""",
        url,
    )
    frame = host.frame_locator("iframe")
    frame.locator("#screen").wait_for()
    embedded = next(f for f in host.frames if "/live/view" in f.url)
    embedded.wait_for_function("() => liveView.frames > 0", timeout=15_000)


def test_bad_tokens_are_refused(server: Server, tab: Tab) -> None:
    good = mint(server, tab.session_id, read_only=True)
    body, _, mac = good.rpartition(".")
    refused = {
        "missing": "",
        "garbled": "not-a-token",
        "expired": mint(server, tab.session_id, ttl=-5),
        "read-only made interactive": body.replace(".ro", ".rw") + "." + mac,
        "foreign secret": ViewTokens("some other server").mint(tab.session_id, int(time.time()) + 300),
        "signing key": SigningKeys(server_secret(server)).mint(tab.session_id),
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
    }
    for name, token in refused.items():
        for path in ("/live/view", "/live/ws"):
            response = httpx.get(f"{server.url}{path}", params={"t": token} if token else {})
            assert response.status_code == 401, (name, path, response.text)
            assert response.json()["statusCode"] == 401

    async def upgrade(token: str) -> int:
        with pytest.raises(websockets.InvalidStatus) as refused_upgrade:
            async with websockets.connect(socket_url(server, token)):
                pass
        return int(refused_upgrade.value.response.status_code)

    assert run(lambda: upgrade(refused["expired"])) == 401
    assert run(lambda: upgrade(refused["foreign secret"])) == 401

    token = mint(server, tab.session_id)
    assert httpx.get(view_url(server, token, page="../../json")).status_code == 400
    assert httpx.get(f"{server.url}/live/ws", params={"t": token, "page": "x" * 32}).status_code == 400
    unknown = httpx.get(f"{server.url}/live/ws", params={"t": token, "page": "A" * 32})
    assert unknown.status_code == 404 and "not found" in unknown.json()["message"]
    # Valid, but not a WebSocket: says so (the page asks this way why an upgrade failed).
    assert httpx.get(f"{server.url}/live/ws", params={"t": token}).status_code == 400
    assert run(lambda: upgrade_status(socket_url(server, token, page="A" * 32))) == 404


async def upgrade_status(url: str) -> int:
    try:
        async with websockets.connect(url):
            return 101
    except websockets.InvalidStatus as exc:
        return int(exc.response.status_code)


def test_an_ended_session_is_gone(server: Server) -> None:
    session = server.sdk().sessions.create(keep_alive=True, browser_settings=NOT_RECORDED)
    token = mint(server, session.id)
    assert httpx.get(view_url(server, token)).status_code == 200
    server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
    for path in ("/live/view", "/live/ws"):
        response = httpx.get(f"{server.url}{path}", params={"t": token})
        assert response.status_code == 410, response.text
        assert response.json()["statusCode"] == 410
    assert run(lambda: upgrade_status(socket_url(server, token))) == 410


# -- endings -----------------------------------------------------------------------------------------


def test_viewers_are_told_when_the_session_is_released(server: Server, tab: Tab, viewer: Any) -> None:
    view = viewer(view_url(server, mint(server, tab.session_id)))

    async def go() -> tuple[int, str]:
        async with websockets.connect(socket_url(server, mint(server, tab.session_id))) as ws:
            await ws.recv()
            await ws.recv()
            await asyncio.to_thread(server.sdk().sessions.update, tab.session_id, status="REQUEST_RELEASE")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code, closed.value.rcvd.reason

    assert run(go) == (1001, "session ended")
    view.wait_for_function("() => liveView.reason === 'session ended'", timeout=10_000)
    assert view.locator("#status").inner_text() == "Session ended"


def test_viewers_do_not_keep_a_session_alive(server: Server, site: str, playwright: Any, viewer: Any) -> None:
    session = server.sdk().sessions.create(
        browser_settings=NOT_RECORDED
    )  # no keepAlive: it ends when its last client leaves
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    browser.contexts[0].pages[0].goto(f"{site}/live.html")
    view = viewer(view_url(server, mint(server, session.id)))
    browser.close()
    wait_for(lambda: server.sdk().sessions.retrieve(session.id).status == "COMPLETED")
    view.wait_for_function("() => liveView.reason === 'session ended'", timeout=10_000)


def target_id(page: Any) -> str:
    info = page.context.new_cdp_session(page).send("Target.getTargetInfo")["targetInfo"]
    return str(info["targetId"])


def test_which_tab_is_shown_and_its_closing(server: Server, site: str, tab: Tab, viewer: Any) -> None:
    first = target_id(tab.page)
    second_page = tab.browser.contexts[0].new_page()
    second_page.goto(f"{site}/index.html")
    second = target_id(second_page)
    token = mint(server, tab.session_id)
    # Without `page`: the tab active last.
    assert viewer(view_url(server, token)).evaluate("liveView.targetId") == second
    tab.page.bring_to_front()
    assert viewer(view_url(server, token)).evaluate("liveView.targetId") == first
    chosen = viewer(view_url(server, token, page=second))
    assert chosen.evaluate("liveView.targetId") == second
    assert chosen.title().startswith("Museum of Local Art")
    second_page.close()
    chosen.wait_for_function("() => liveView.reason === 'tab closed'", timeout=10_000)
    assert chosen.locator("#status").inner_text() == "Tab closed"
    # The session goes on, and its other tab can still be watched.
    assert server.sdk().sessions.retrieve(tab.session_id).status == "RUNNING"
    assert viewer(view_url(server, token)).evaluate("liveView.targetId") == first


async def crash_tab(server: Server, session_id: str, target: str) -> None:
    """Page.crash on a tab, through the gateway (it never answers: the renderer is gone)."""
    url = f"{server.ws_url}/?apiKey={server.api_key}&sessionId={session_id}"
    async with websockets.connect(url, max_size=None) as ws:
        attach = {"targetId": target, "flatten": True}
        await ws.send(json.dumps({"id": 1, "method": "Target.attachToTarget", "params": attach}))
        while "id" not in (answer := json.loads(await ws.recv())):
            pass
        crash = {"id": 2, "method": "Page.crash", "sessionId": answer["result"]["sessionId"]}
        await ws.send(json.dumps(crash))
        await asyncio.sleep(0.5)


def test_a_crashed_tab(server: Server, site: str, tab: Tab, viewer: Any) -> None:
    doomed = tab.browser.contexts[0].new_page()
    doomed.goto(f"{site}/live.html")
    view = viewer(view_url(server, mint(server, tab.session_id), page=target_id(doomed)))
    run(functools.partial(crash_tab, server, tab.session_id, target_id(doomed)))
    view.wait_for_function("() => liveView.reason === 'tab crashed'", timeout=10_000)
    assert view.locator("#status").inner_text() == "Tab crashed"
    assert server.sdk().sessions.retrieve(tab.session_id).status == "RUNNING"


def test_two_viewers_across_a_cross_site_navigation(server: Server, site: str, tab: Tab, viewer: Any) -> None:
    """Two viewers at once; the tab moves to another site (another renderer process) and both follow."""
    watcher = viewer(view_url(server, mint(server, tab.session_id, read_only=True)))
    driver = viewer(view_url(server, mint(server, tab.session_id)))
    port = site.rsplit(":", 1)[1]
    tab.page.goto(f"http://localhost:{port}/live.html")
    for view in (watcher, driver):
        wait_for(lambda view=view: near(pixel(view, *viewer_point(view, *tab.box("#big"))), BLUE))
    click_in_viewer(driver, tab, "#big")
    wait_for(lambda: tab.page.evaluate("clicks") == 1)
    for view in (watcher, driver):
        wait_for(lambda view=view: near(pixel(view, *viewer_point(view, *tab.box("#big"))), RED))


# -- pacing and clean-up -----------------------------------------------------------------------------


def test_a_slow_viewer_gets_the_newest_picture(server: Server, tab: Tab, viewer_browser: Any) -> None:
    """Frames are not queued for a viewer that has not taken the last one; when it does, it gets the
    page as it is now, although Chromium stopped capturing while the viewer kept it waiting."""
    waiting, changed = threading.Event(), threading.Event()

    async def slow_viewer(url: str) -> tuple[int, bytes]:
        async with websockets.connect(url) as ws:
            await ws.recv()
            await asyncio.wait_for(ws.recv(), 10)  # the first frame, not acknowledged
            waiting.set()
            await asyncio.to_thread(changed.wait, 30)
            extra = 0
            with contextlib.suppress(TimeoutError):
                while True:
                    await asyncio.wait_for(ws.recv(), 1.0)
                    extra += 1
            last = b""
            while True:  # now take every frame, until they stop coming
                await ws.send('{"type": "ack"}')
                try:
                    message = await asyncio.wait_for(ws.recv(), 1.5)
                except TimeoutError:
                    return extra, last
                assert isinstance(message, bytes)
                last = split_frame(message)[1]

    url = socket_url(server, mint(server, tab.session_id), w="320", h="240")
    with ThreadPoolExecutor(1) as thread:
        outcome = thread.submit(asyncio.run, slow_viewer(url))
        assert waiting.wait(15)
        for hue in range(0, 360, 40):
            tab.page.evaluate(f"document.body.style.background = 'hsl({hue}, 80%, 50%)'")
            tab.page.wait_for_timeout(50)
        tab.page.evaluate("document.body.style.background = 'rgb(0, 200, 0)'")
        changed.set()
        extra, last = outcome.result(timeout=60)
    assert extra == 0, "frames were sent before the viewer took the last one"
    assert last, "no frame after the viewer caught up"
    assert near(jpeg_pixel(viewer_browser, last), (0, 200, 0))


def jpeg_pixel(browser: Any, jpeg: bytes) -> tuple[int, int, int]:
    """The colour at 80% across and down a JPEG, decoded by a real browser."""
    page = browser.new_page()
    try:
        rgb = page.evaluate(
            """async (bytes) => {
                const blob = new Blob([new Uint8Array(bytes)], {type: "image/jpeg"});
                const bitmap = await createImageBitmap(blob);
                const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
                const context = canvas.getContext("2d");
                context.drawImage(bitmap, 0, 0);
                const [x, y] = [Math.floor(bitmap.width * 0.8), Math.floor(bitmap.height * 0.8)];
                const data = context.getImageData(x, y, 1, 1).data;
                return Array.from(data.slice(0, 3));
            }""",
            list(jpeg),
        )
    finally:
        page.close()
    return rgb[0], rgb[1], rgb[2]


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    at = 2
    while at < len(jpeg):
        marker, length = jpeg[at + 1], struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", jpeg[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("no start-of-frame in the JPEG")


def test_frames_fit_the_viewer(server: Server, tab: Tab) -> None:
    async def go() -> list[tuple[int, int]]:
        async with websockets.connect(
            socket_url(server, mint(server, tab.session_id), w="320", h="240")
        ) as ws:
            await ws.recv()
            sizes = [jpeg_size(split_frame(await asyncio.wait_for(ws.recv(), 10))[1])]
            await ws.send('{"type": "size", "width": 640, "height": 480}')
            await ws.send('{"type": "ack"}')
            sizes.append(jpeg_size(split_frame(await asyncio.wait_for(ws.recv(), 10))[1]))
            return sizes

    small, large = run(go)
    width, height = tab.page.evaluate("[innerWidth, innerHeight]")
    assert small[0] <= 320 and small[1] <= 240 and max(small[0] / 320, small[1] / 240) > 0.95
    assert large[0] <= 640 and large[1] <= 480 and max(large[0] / 640, large[1] / 480) > 0.95
    assert abs(large[0] / large[1] - width / height) < 0.02  # the aspect kept


def test_viewers_leave_nothing_behind(server: Server, tab: Tab) -> None:
    token = mint(server, tab.session_id)
    assert server.proc is not None
    browser_pid, _ = session_browser(server, tab.session_id)
    port = devtools_port(browser_pid)

    def connections() -> tuple[int, int]:
        """(sockets open to the server's port, CDP connections open to the tab's browser)."""
        assert server.proc is not None
        return established(server.proc.pid, server.port), established(browser_pid, port)

    async def one_viewer(ack: bool) -> None:
        async with websockets.connect(socket_url(server, token)) as ws:
            await ws.recv()
            await asyncio.wait_for(ws.recv(), 10)
            if ack:
                await ws.send('{"type": "ack"}')

    async def abrupt_viewer() -> None:
        ws = await websockets.connect(socket_url(server, token))
        await ws.recv()
        ws.transport.abort()  # no close handshake: the viewer just vanishes

    gc.collect()  # idle SDK clients close their pooled connections to the server
    before = connections()
    for ack in (True, False, True, False):
        run(functools.partial(one_viewer, ack))
    run(abrupt_viewer)
    # Every viewer's socket and the server's CDP connection to the tab for it: all closed.
    wait_for(lambda: connections()[0] <= before[0] and connections()[1] == before[1], timeout=10)
    # And the tab is not being screencast by anyone any more: it goes on working normally.
    tab.page.click("#big")
    wait_for(lambda: tab.page.evaluate("clicks") == 1)
