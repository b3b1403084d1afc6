"""Gateway routes: the CDP WebSocket at `/` and `/json/version` for clients that start from HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiohttp import web

from browserfleet.artifacts.cdplog import LinkTap
from browserfleet.errors import BrowserUnreachable, HandshakeError, InvalidRequest
from browserfleet.gateway import credentials, inside
from browserfleet.gateway.policy import Policy
from browserfleet.gateway.splice import ClientFrames, Link, accept_key, connect_browser
from browserfleet.services import SERVICES, Services
from browserfleet.sessions.manager import LiveSession

routes = web.RouteTableDef()
CAPTURE_WAIT = 5.0  # seconds a first connect waits for the session's capture to be set up


def _ws_base(request: web.Request) -> str:
    base = request.app[SERVICES].public_base(request)
    return "ws" + base[4:] if base.startswith("http") else base


@routes.get("/")
async def connect(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    key = websocket_key(request)
    if inside.pinned(request):  # from inside a browser: its own session only, never an implicit create
        found = await credentials.existing_session(svc, request)
        live = inside.own_session(request, found)
    else:
        live = await credentials.session_for_connect(svc, request)
    # A client inside the session's own browser (its extension) is not one that keeps it alive.
    return await relay(request, key, live, live.browser.ws_url, counted=not inside.check(request, live))


async def relay(
    request: web.Request,
    key: str,
    live: LiveSession,
    browser_url: str,
    counted: bool,
    target_id: str | None = None,
) -> web.StreamResponse:
    """Splice the client to `browser_url` on the session's browser. A counted client keeps the session
    alive (its leaving may end it); an uncounted one (DevTools) is only closed when the session ends."""
    svc = request.app[SERVICES]
    link = Link(policy_for(svc, live), await _tap(svc, live.id, target_id), svc.link_limits, live.id)

    async def close() -> None:
        link.close()

    try:
        await connect_browser(link, await live.browser.connect_socket(), browser_url)
    except (OSError, TimeoutError, HandshakeError) as exc:
        link.close()
        raise BrowserUnreachable(f"Session {live.id}: browser unreachable ({exc})") from exc
    # Attached only once connected: a client that never got through does not count as one leaving.
    try:
        (svc.manager.attach if counted else svc.manager.watch)(live.id, close)
    except BaseException:
        link.close()
        raise
    try:
        response = web.StreamResponse(
            status=101,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Accept": accept_key(key),
            },
        )
        await response.prepare(request)
        # From here the connection is ours: aiohttp hands every further byte to ClientFrames.
        assert request.transport is not None
        link.attach_client(request.transport)
        request.protocol.set_parser(ClientFrames(link))  # type: ignore[arg-type]
        request.protocol.keep_alive(False)
        await link.done
    finally:
        link.close()
        if counted:
            svc.manager.detach(live, close, browser_lost=link.browser_lost)
        else:
            svc.manager.unwatch(live, close)
    return response


def policy_for(svc: Services, live: LiveSession) -> Policy:
    """The session's policy, with its folders as its browser sees them (inside its jail, if any)."""
    browser = live.browser
    return Policy(
        Path(browser.seen(browser.downloads_dir)),
        Path(browser.uploads_seen),
        frozenset(browser.extension_ids),
    )


async def _tap(svc: Services, session_id: str, target_id: str | None) -> LinkTap | None:
    """The session's CDP log, once its capture is set up (downloads are captured from the first command)."""
    capture = svc.artifacts.capture(session_id)
    if capture is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(capture.ready), CAPTURE_WAIT)
    cdp_log = svc.artifacts.cdp_log(session_id)
    return None if cdp_log is None else cdp_log.tap(target_id)


def websocket_key(request: web.Request) -> str:
    """The client's Sec-WebSocket-Key, if this is a WebSocket upgrade we can accept (RFC 6455, v13)."""
    headers = request.headers
    key = headers.get("Sec-WebSocket-Key", "")
    upgrade = headers.get("Upgrade", "").lower() == "websocket"
    connection = "upgrade" in headers.get("Connection", "").lower()
    if not (upgrade and connection and key):
        raise InvalidRequest(
            "Expected a WebSocket upgrade: connect a CDP client (Playwright, Puppeteer) here"
        )
    if headers.get("Sec-WebSocket-Version") != "13":
        raise InvalidRequest("Unsupported WebSocket version (13 is supported)")
    return key


@routes.get("/json/version")
@routes.get("/json/version/")
async def version(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    live = await credentials.existing_session(svc, request)
    if inside.pinned(request):
        live = inside.own_session(request, live)
    info: dict[str, Any] = {"Browser": "Chrome", "Protocol-Version": "1.3"}
    if live is not None:
        info = dict(live.browser.version)
        query = f"signingKey={svc.signing_keys.mint(live.id)}"
    else:
        query = request.query_string  # apiKey[&projectId]: the session is created when the socket opens
    info["webSocketDebuggerUrl"] = f"{_ws_base(request)}/?{query}"
    return web.json_response(info)
