"""The live view: one tab of a running session, shown from CDP screencast frames, and driven by its viewer.

    GET /live/view?t=<token>[&page=<targetId>][&readOnly=true]        the viewer page (static/live.html)
    GET /live/ws?t=<token>[&page=<targetId>][&readOnly=true][&w=&h=]  its WebSocket
    GET /live/static/<file>                                           the page's script and style

`t` is a `ViewTokens` token: it names the session, its expiry and whether it is read-only. `readOnly=true`
can only take interactivity away. Without `page`, the tab active last is shown (the first in Chromium's
/json/list).

Server → viewer, on the WebSocket:

* text `{"type": "hello", "targetId", "url", "title", "readOnly"}`, once, first;
* binary frames: a 4-byte big-endian length, that many bytes of JSON header (`seq`, `deviceWidth`,
  `deviceHeight`, `offsetTop`, `pageScaleFactor`, `scrollOffsetX`, `scrollOffsetY`, `timestamp`: the
  screencast metadata, sizes in CSS pixels), then the JPEG;
* the close frame's reason says why it ended: `session ended` (1001), `tab closed` or `tab crashed`
  (4000), `live view failed` (1011).

Viewer → server, JSON text (anything else, or anything invalid, is ignored):

* `{"type": "ack"}` once a frame is drawn. One frame at a time is in flight to a viewer; the newest
  waits, older ones are dropped, and Chromium is acknowledged only as the viewer keeps up.
* `{"type": "size", "width", "height"}`: the viewer's size in device pixels; frames are scaled to fit.
* input, dropped here when the view is read-only; `x`/`y` are fractions (0..1) of the frame image and
  are mapped to the tab's CSS pixels with the metadata of the last frame sent:
  `{"type": "mouse", "event": "move"|"down"|"up", "x", "y", "button", "buttons", "clickCount", "modifiers"}`,
  `{"type": "wheel", "x", "y", "deltaX", "deltaY", "modifiers"}`,
  `{"type": "key", "event": "down"|"up", "key", "code", "keyCode", "location", "repeat", "modifiers"}`,
  `{"type": "text", "text"}` (inserted as typed, e.g. a paste).
  `modifiers` is CDP's bit field: Alt 1, Ctrl 2, Meta 4, Shift 8.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import re
import struct
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from websockets.exceptions import WebSocketException

from browserfleet.browsers.cdp import CdpConnection
from browserfleet.browsers.launcher import Browser
from browserfleet.errors import BrowserUnreachable, CdpError, Gone, InvalidRequest, NotFound, Unauthenticated
from browserfleet.services import SERVICES, Services

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"live.js": "text/javascript", "live.css": "text/css"}
TARGET_ID = re.compile(r"[0-9A-Fa-f]{32}")  # Chromium's target ids: 32 hex digits

QUALITY = 70  # JPEG quality of the screencast
DEFAULT_SIZE = (1280, 720)
MIN_SIDE, MAX_SIDE = 64, 4096  # bounds of the frame size a viewer may ask for
CHROMIUM_IN_FLIGHT = 3  # unacknowledged frames at which Chromium skips captures (and forgets the damage)
REFRESH_AFTER = 0.25  # after such a stall, how long to wait for a frame before asking for one
CDP_TIMEOUT = 10.0
INPUT_TIMEOUT = 5.0  # an input event the page does not take in this long is given up
INPUT_QUEUE = 256  # input events waiting for the tab; beyond that, the viewer's events are dropped
MAX_TEXT = 10_000  # characters of one text input (a paste)
MAX_MESSAGE = 128 * 1024  # bytes of one viewer message: such a text, escaped
MAX_DELTA = 100_000.0
HEARTBEAT = 30.0  # a viewer that stops answering pings is dropped
CLOSE_TIMEOUT = 2.0  # how long a closing viewer has to answer our close frame

SESSION_ENDED = (1001, "session ended")
TAB_CLOSED = (4000, "tab closed")
TAB_CRASHED = (4000, "tab crashed")
FAILED = (1011, "live view failed")

PAGE_HEADERS = {
    # Embeddable anywhere; nothing but this origin's script, style and socket.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors *"
    ),
    "Cache-Control": "no-store",  # the URL carries a credential
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

CTRL, META = 2, 4  # of the modifiers bit field (Alt 1, Ctrl 2, Meta 4, Shift 8)
KEY_TEXT = {"Enter": "\r"}  # keys whose name is not their text, but which type some

Command = tuple[str, dict[str, Any]]


# -- requests --------------------------------------------------------------------------------------


def viewer_credentials(svc: Services, request: web.Request) -> tuple[str, bool]:
    """(session id, read-only) from `t` (and `readOnly`), or 401."""
    token = request.query.get("t", "")
    verified = svc.view_tokens.verify(token, time.time()) if token else None
    if verified is None:
        raise Unauthenticated("Missing, invalid or expired live view token")
    session_id, read_only = verified
    return session_id, read_only or request.query.get("readOnly", "false").lower() in ("", "1", "true")


def page_param(request: web.Request) -> str | None:
    page = request.query.get("page") or None
    if page is not None and not TARGET_ID.fullmatch(page):
        raise InvalidRequest("page must be a target id (32 hex digits)")
    return page.upper() if page else None


def screen_size(request: web.Request) -> tuple[int, int]:
    """The frame size the viewer asks for in `w`, `h`, within bounds; 1280x720 if unsaid (or not numbers)."""
    width, height = request.query.get("w", ""), request.query.get("h", "")
    # ASCII digits only: int() also reads "٣", " 12 " and "1_000", and a long string costs it time.
    if not all(side.isascii() and side.isdigit() and len(side) <= 6 for side in (width, height)):
        return DEFAULT_SIZE
    return bound(int(width)), bound(int(height))


def bound(side: int) -> int:
    return min(max(side, MIN_SIDE), MAX_SIDE)


async def open_cdp(browser: Browser, path: str | None = None) -> CdpConnection:
    try:
        return await CdpConnection.open(browser, path)
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise BrowserUnreachable(f"The browser is unreachable: {exc or type(exc).__name__}") from exc


async def command(cdp: CdpConnection, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return await asyncio.wait_for(cdp.send(method, params), CDP_TIMEOUT)


async def find_page(browser: Browser, target_id: str | None) -> dict[str, Any]:
    """The tab `target_id`, or else the one active last; 404 if there is none."""
    try:
        tabs = await asyncio.wait_for(list_tabs(browser), CDP_TIMEOUT)
    except (OSError, TimeoutError, ValueError, BrowserUnreachable, asyncio.IncompleteReadError) as exc:
        raise BrowserUnreachable(f"The browser did not list its tabs: {exc or type(exc).__name__}") from exc
    for tab in tabs:
        if target_id is None or tab["targetId"] == target_id:
            return tab
    raise NotFound(f"Tab {target_id} not found" if target_id else "The session has no open tab")


async def list_tabs(browser: Browser) -> list[dict[str, Any]]:
    """The browser's page targets, the most recently active first (the order of Chromium's /json/list;
    CDP's Target.getTargets has none to speak of)."""
    status, _kind, body = await browser.http_get("/json/list")
    if status != 200:
        raise ValueError(f"/json/list answered {status}")
    targets = json.loads(body)
    if not isinstance(targets, list):
        raise ValueError("/json/list is not a list")
    return [
        {"targetId": t["id"], "url": t.get("url", ""), "title": t.get("title", "")}
        for t in targets
        if isinstance(t, dict) and t.get("type") == "page" and isinstance(t.get("id"), str)
    ]


# -- routes ----------------------------------------------------------------------------------------


@routes.get("/live/view")
async def live_view(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    session_id, _ = viewer_credentials(svc, request)
    if svc.manager.find(session_id) is None:  # a valid token: the session existed, so it has ended
        raise Gone(f"Session {session_id} has ended")
    page_param(request)
    return web.FileResponse(STATIC / "live.html", headers=PAGE_HEADERS)


@routes.get("/live/static/{name}")
async def live_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise NotFound(f"Route GET:{request.path} not found")
    headers = {"Content-Type": ASSETS[name], "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return web.FileResponse(STATIC / name, headers=headers)


@routes.get("/live/ws")
async def live_socket(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    session_id, read_only = viewer_credentials(svc, request)
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def close() -> None:
        # Called by the manager as the session ends: only flag it, the session must not wait for us.
        if not ended.done():
            ended.set_result(None)

    live = svc.manager.watch(session_id, close)  # Gone → 410
    try:
        target = await find_page(live.browser, page_param(request))
        ws = web.WebSocketResponse(
            compress=False, heartbeat=HEARTBEAT, timeout=CLOSE_TIMEOUT, max_msg_size=MAX_MESSAGE
        )
        if not ws.can_prepare(request).ok:
            raise InvalidRequest("Expected a WebSocket upgrade; open /live/view in a browser instead")
        cdp = await open_cdp(live.browser, f"/devtools/page/{target['targetId']}")
        try:
            await ws.prepare(request)
            view = LiveView(ws, cdp, read_only, screen_size(request))
            await view.serve(target, ended)
        finally:
            await cdp.close()
            if ws.prepared:
                await ws.close()
    finally:
        svc.manager.unwatch(live, close)
    return ws


# -- viewer messages -------------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0, le=1)]
Modifiers = Annotated[int, Field(ge=0, le=15)]
Delta = Annotated[float, Field(ge=-MAX_DELTA, le=MAX_DELTA)]
Side = Annotated[int, Field(ge=1, le=100_000)]


class Ack(_Message):
    type: Literal["ack"]


class Size(_Message):
    type: Literal["size"]
    width: Side
    height: Side


class Mouse(_Message):
    type: Literal["mouse"]
    event: Literal["move", "down", "up"]
    x: Fraction
    y: Fraction
    button: Literal["none", "left", "middle", "right", "back", "forward"] = "none"
    buttons: Annotated[int, Field(ge=0, le=31)] = 0
    clickCount: Annotated[int, Field(ge=0, le=3)] = 0  # the viewer's JSON names
    modifiers: Modifiers = 0


class Wheel(_Message):
    type: Literal["wheel"]
    x: Fraction
    y: Fraction
    deltaX: Delta = 0
    deltaY: Delta = 0
    modifiers: Modifiers = 0


class Key(_Message):
    type: Literal["key"]
    event: Literal["down", "up"]
    key: Annotated[str, Field(min_length=1, max_length=32)]
    code: Annotated[str, Field(max_length=32)] = ""
    keyCode: Annotated[int, Field(ge=0, le=255)] = 0
    location: Annotated[int, Field(ge=0, le=3)] = 0
    repeat: bool = False
    modifiers: Modifiers = 0


class Text(_Message):
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


ViewerMessage = Annotated[Ack | Size | Mouse | Wheel | Key | Text, Field(discriminator="type")]
VIEWER_MESSAGE: TypeAdapter[ViewerMessage] = TypeAdapter(ViewerMessage)


def parse_message(raw: str) -> ViewerMessage | None:
    try:
        return VIEWER_MESSAGE.validate_json(raw)
    except ValidationError:
        return None


@dataclass(frozen=True)
class Viewport:
    """The tab's viewport as the last frame sent showed it, in CSS pixels."""

    width: float = DEFAULT_SIZE[0]
    height: float = DEFAULT_SIZE[1]
    offset_top: float = 0.0

    @classmethod
    def of(cls, metadata: dict[str, Any]) -> Viewport:
        width, height, top = (metadata.get(k) for k in ("deviceWidth", "deviceHeight", "offsetTop"))
        if not (_finite(width) and _finite(height) and width > 0 and height > 0):
            return cls()
        return cls(float(width), float(height), max(0.0, float(top)) if _finite(top) else 0.0)

    def to_page(self, fx: float, fy: float) -> tuple[float, float]:
        """Fractions of the frame image → CSS pixels of the page (the image has the top controls above)."""
        y = fy * (self.height + self.offset_top) - self.offset_top
        return round(fx * self.width, 2), round(min(max(y, 0.0), self.height), 2)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def input_command(message: ViewerMessage, viewport: Viewport) -> Command | None:
    """The CDP command for a viewer's input message (None for the other messages)."""
    if isinstance(message, Mouse):
        return mouse_command(message, viewport)
    if isinstance(message, Wheel):
        x, y = viewport.to_page(message.x, message.y)
        params = {"type": "mouseWheel", "x": x, "y": y, "deltaX": message.deltaX, "deltaY": message.deltaY}
        return "Input.dispatchMouseEvent", params | {"modifiers": message.modifiers}
    if isinstance(message, Key):
        return key_command(message)
    if isinstance(message, Text):
        return "Input.insertText", {"text": message.text}
    return None


MOUSE_TYPES = {"move": "mouseMoved", "down": "mousePressed", "up": "mouseReleased"}


def mouse_command(message: Mouse, viewport: Viewport) -> Command:
    x, y = viewport.to_page(message.x, message.y)
    params: dict[str, Any] = {
        "type": MOUSE_TYPES[message.event],
        "x": x,
        "y": y,
        "modifiers": message.modifiers,
        "button": message.button,
        "buttons": message.buttons,
    }
    if message.event != "move":
        params["clickCount"] = max(1, message.clickCount)  # no click without a count
    return "Input.dispatchMouseEvent", params


def key_command(message: Key) -> Command:
    params: dict[str, Any] = {
        "key": message.key,
        "code": message.code,
        "windowsVirtualKeyCode": message.keyCode,
        "nativeVirtualKeyCode": message.keyCode,
        "modifiers": message.modifiers,
        "location": message.location,
        "isKeypad": message.location == 3,
        "autoRepeat": message.repeat,
    }
    if message.event == "up":
        return "Input.dispatchKeyEvent", params | {"type": "keyUp"}
    text = key_text(message)
    if text is None:
        return "Input.dispatchKeyEvent", params | {"type": "rawKeyDown"}
    return "Input.dispatchKeyEvent", params | {"type": "keyDown", "text": text, "unmodifiedText": text}


def key_text(message: Key) -> str | None:
    """What a key press types: its character, unless it is a shortcut (Ctrl, Meta)."""
    if message.modifiers & (CTRL | META):
        return None
    if message.key in KEY_TEXT:
        return KEY_TEXT[message.key]
    return message.key if len(message.key) == 1 else None


# -- frames ----------------------------------------------------------------------------------------


def encode_frame(params: dict[str, Any], seq: int) -> tuple[bytes, Viewport]:
    """A `Page.screencastFrame` as the viewer's binary message, and the viewport it shows."""
    metadata = params.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    header: dict[str, Any] = {"seq": seq}
    for name in (
        "deviceWidth",
        "deviceHeight",
        "offsetTop",
        "pageScaleFactor",
        "scrollOffsetX",
        "scrollOffsetY",
        "timestamp",
    ):
        if _finite(metadata.get(name)):
            header[name] = metadata[name]
    head = json.dumps(header).encode()
    jpeg = base64.b64decode(params["data"], validate=True)
    return struct.pack(">I", len(head)) + head + jpeg, Viewport.of(metadata)


class FramePump:
    """Screencast frames from one tab to one viewer, paced by the viewer.

    At most one frame is in flight to the viewer. Frames that arrive meanwhile replace each other (the
    newest wins), and Chromium's acknowledgements are held back until the viewer takes a frame, so a slow
    viewer slows the capture instead of queueing. Chromium skips captures while `CHROMIUM_IN_FLIGHT`
    frames are unacknowledged and does not redo them: after such a stall, unless a new frame comes anyway
    (the page still changing), the screencast is restarted, which makes Chromium send the current picture.
    """

    def __init__(self, cdp: CdpConnection, ws: web.WebSocketResponse, size: tuple[int, int]) -> None:
        self.cdp = cdp
        self.ws = ws
        self.size = size
        self.viewport = Viewport()
        self.sent = 0
        self._pending: dict[str, Any] | None = None
        self._unacked: list[Any] = []  # sessionIds of the frames Chromium has not had an ack for
        self._viewer_busy = False
        self._resize: tuple[int, int] | None = None
        self._stale = False  # Chromium may have skipped the last change, and sent nothing since
        self._wake = asyncio.Event()
        cdp.on("Page.screencastFrame", self._on_frame)

    def _on_frame(self, params: dict[str, Any], _session: str | None) -> None:
        self._pending = params
        self._unacked.append(params.get("sessionId"))
        self._stale = False  # whatever was skipped, this frame shows it
        self._wake.set()

    def viewer_took_frame(self) -> None:
        self._viewer_busy = False
        self._wake.set()

    def resize(self, width: int, height: int) -> None:
        size = (bound(width), bound(height))
        if size != self.size:
            self._resize = size
            self._wake.set()

    async def run(self) -> None:
        await self._start()
        while True:
            await self._next_event()
            if self._resize is not None:
                self.size, self._resize = self._resize, None
                await self._restart()
            if not self._viewer_busy:
                await self._hand_over()

    async def _next_event(self) -> None:
        """Wait to be woken; after a stall, restart the screencast if Chromium stays silent."""
        if not self._stale:
            await self._wake.wait()
        else:
            try:
                await asyncio.wait_for(self._wake.wait(), REFRESH_AFTER)
            except TimeoutError:
                if self._stale:
                    await self._restart()
        self._wake.clear()

    async def _hand_over(self) -> None:
        """The viewer is free: acknowledge what Chromium sent and give the viewer the newest frame."""
        stalled = len(self._unacked) >= CHROMIUM_IN_FLIGHT
        for session_id in self._unacked:
            if isinstance(session_id, int):
                self.cdp.send_soon("Page.screencastFrameAck", {"sessionId": session_id})
        self._unacked.clear()
        frame, self._pending = self._pending, None
        if frame is not None:
            try:
                data, viewport = encode_frame(frame, self.sent + 1)
            except (KeyError, TypeError, ValueError, binascii.Error):
                log.debug("live view: unreadable screencast frame skipped")
            else:
                self._viewer_busy = True
                self.sent += 1
                self.viewport = viewport
                await self.ws.send_bytes(data)
        if stalled:
            self._stale = True

    async def _start(self) -> None:
        width, height = self.size
        params = {"format": "jpeg", "quality": QUALITY, "maxWidth": width, "maxHeight": height}
        await command(self.cdp, "Page.startScreencast", params)

    async def _restart(self) -> None:
        self._unacked.clear()  # a new screencast starts with nothing in flight
        self._stale = False
        await command(self.cdp, "Page.stopScreencast")
        await self._start()

    async def stop(self) -> None:
        if not self.cdp.closed.done():
            with contextlib.suppress(CdpError, TimeoutError):
                await asyncio.wait_for(self.cdp.send("Page.stopScreencast"), CLOSE_TIMEOUT)


# -- one viewer ------------------------------------------------------------------------------------


async def _until_stopped(work: Coroutine[Any, Any, None], stopped: asyncio.Future[Exception | None]) -> None:
    """Run a viewer's worker; its end is told to `stopped` (the first one only, with its failure if any)."""
    failure: Exception | None = None
    try:
        await work
    except Exception as exc:
        failure = exc
    if not stopped.done():
        stopped.set_result(failure)


class LiveView:
    """One viewer's socket bound to one tab: frames out, input in (unless read-only)."""

    def __init__(
        self, ws: web.WebSocketResponse, cdp: CdpConnection, read_only: bool, size: tuple[int, int]
    ) -> None:
        self.ws = ws
        self.cdp = cdp
        self.read_only = read_only
        self.frames = FramePump(cdp, ws, size)
        self.inputs: asyncio.Queue[Command] = asyncio.Queue(INPUT_QUEUE)
        self.tab_gone: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._closing = False
        cdp.on("Inspector.detached", self._on_detached)
        cdp.on("Inspector.targetCrashed", self._on_crashed)

    def _on_detached(self, params: dict[str, Any], _session: str | None) -> None:
        # A closing tab says "Render process gone." first, then "target_closed"; only the last is final.
        if params.get("reason") == "target_closed" and not self.tab_gone.done():
            self.tab_gone.set_result(TAB_CLOSED)

    def _on_crashed(self, _params: dict[str, Any], _session: str | None) -> None:
        if not self.tab_gone.done():
            self.tab_gone.set_result(TAB_CRASHED)

    async def serve(self, target: dict[str, Any], ended: asyncio.Future[None]) -> None:
        """Until the viewer leaves, the session ends or the tab goes; then stop the screencast."""
        hello = {
            "type": "hello",
            "targetId": target.get("targetId"),
            "url": target.get("url", ""),
            "title": target.get("title", ""),
            "readOnly": self.read_only,
        }
        try:
            await self.ws.send_json(hello)
        except ConnectionError:
            return
        self.cdp.send_soon("Inspector.enable")  # so that a closing or crashing tab says so
        stopped: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.TaskGroup() as tasks:
                workers = [tasks.create_task(_until_stopped(self.frames.run(), stopped), name="live-frames")]
                if not self.read_only:
                    workers.append(
                        tasks.create_task(_until_stopped(self._dispatch_inputs(), stopped), name="live-input")
                    )
                closer = tasks.create_task(self._close_when_over(ended, stopped), name="live-close")
                try:
                    await self._receive()
                except (ConnectionError, RuntimeError) as exc:
                    log.debug("live view: viewer connection lost: %s", exc)
                finally:
                    if not self._closing:  # else the group lets the close handshake finish
                        closer.cancel()
                    for worker in workers:
                        worker.cancel()
        finally:
            await self.frames.stop()

    async def _close_when_over(
        self, ended: asyncio.Future[None], stopped: asyncio.Future[Exception | None]
    ) -> None:
        waits: list[asyncio.Future[Any]] = [ended, self.tab_gone, self.cdp.closed, stopped]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            code, reason = SESSION_ENDED
        elif self.tab_gone.done():
            code, reason = self.tab_gone.result()
        elif self.cdp.closed.done():
            code, reason = TAB_CLOSED
        else:
            code, reason = FAILED
            if stopped.result() is not None:
                log.debug("live view stopped: %r", stopped.result())
        self._closing = True
        try:
            await self.ws.close(code=code, message=reason.encode())
        except Exception as exc:  # the viewer is gone already
            log.debug("live view: closing the viewer's socket failed: %r", exc)

    async def _receive(self) -> None:
        async for message in self.ws:
            if message.type is WSMsgType.TEXT:
                self.handle(message.data)
            elif message.type is WSMsgType.ERROR:
                break

    def handle(self, raw: str) -> None:
        """One message from the viewer. Never raises: bad input is the viewer's problem, not ours."""
        try:
            message = parse_message(raw)
            if isinstance(message, Ack):
                self.frames.viewer_took_frame()
            elif isinstance(message, Size):
                self.frames.resize(message.width, message.height)
            elif message is not None and not self.read_only:
                cmd = input_command(message, self.frames.viewport)
                if cmd is not None:
                    self.inputs.put_nowait(cmd)
        except asyncio.QueueFull:
            log.debug("live view: input dropped, the tab is not keeping up")
        except Exception:
            log.exception("live view: viewer message not handled")

    async def _dispatch_inputs(self) -> None:
        """Input to the tab, in order, one command at a time."""
        while True:
            method, params = await self.inputs.get()
            try:
                await asyncio.wait_for(self.cdp.send(method, params), INPUT_TIMEOUT)
            except TimeoutError:
                log.debug("live view: %s timed out", method)
            except CdpError as exc:
                if self.cdp.closed.done():
                    return
                log.debug("live view: %s refused: %s", method, exc)
