"""Gateway routes: the CDP WebSocket at `/` and `/json/version` for clients that start from HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidHandshake

from browserfleet.api.errors import ApiError
from browserfleet.gateway import credentials
from browserfleet.gateway.policy import Policy
from browserfleet.gateway.relay import relay
from browserfleet.services import SERVICES

routes = web.RouteTableDef()


def _ws_base(request: web.Request) -> str:
    base = request.app[SERVICES].public_base(request)
    return "ws" + base[4:] if base.startswith("http") else base


@routes.get("/")
async def connect(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    probe = web.WebSocketResponse(compress=False, max_msg_size=0)
    if not probe.can_prepare(request).ok:
        raise ApiError(400, "Expected a WebSocket upgrade: connect a CDP client (Playwright, Puppeteer) here")
    live = await credentials.session_for_connect(svc, request)
    client = web.WebSocketResponse(compress=False, max_msg_size=0, autoping=True)
    browser_ws: ClientConnection | None = None

    async def close() -> None:
        await client.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"session ended")
        if browser_ws is not None:
            await browser_ws.close()

    svc.manager.attach(live.id, close)
    try:
        try:
            browser_ws = await live.browser.open_cdp()
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ApiError(502, f"Session {live.id}: browser unreachable ({exc})") from exc
        await client.prepare(request)
        await relay(client, browser_ws, Policy(live.browser.downloads_dir, live.browser.uploads_dir))
    finally:
        svc.manager.detach(live, close)
    return client


@routes.get("/json/version")
@routes.get("/json/version/")
async def version(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    live = await credentials.existing_session(svc, request)
    info: dict[str, Any] = {"Browser": "Chrome", "Protocol-Version": "1.3"}
    if live is not None:
        info = dict(live.browser.version)
        query = f"signingKey={svc.signing_keys.mint(live.id)}"
    else:
        query = request.query_string  # apiKey[&projectId]: the session is created when the socket opens
    info["webSocketDebuggerUrl"] = f"{_ws_base(request)}/?{query}"
    return web.json_response(info)
