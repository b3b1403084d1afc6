"""Chromium's own DevTools for a running session, through the gateway: `/debug/<token>/devtools/...`.

The token (a view token from `GET /v1/sessions/{id}/debug`) is part of the path, so the frontend's
relative requests carry it too. Static files come from the browser's own bundled frontend; the
`page/<target>` and `browser/<id>` sockets are spliced like any client, under the same CDP policy, but
they do not count as clients: closing DevTools never ends a session. Read-only tokens are refused:
DevTools is full control of the browser.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from browserfleet.errors import BrowserUnreachable, Forbidden, Gone, NotFound, Unauthenticated
from browserfleet.gateway.routes import relay, websocket_key
from browserfleet.services import SERVICES
from browserfleet.sessions.manager import LiveSession

routes = web.RouteTableDef()
_SOCKET = re.compile(r"^(page|browser)/([A-Za-z0-9-]{1,64})$")
_STATIC = re.compile(r"^[A-Za-z0-9_\-./]{1,300}$")


def _session(request: web.Request) -> LiveSession:
    svc = request.app[SERVICES]
    verified = svc.view_tokens.verify(request.match_info["token"], time.time())
    if verified is None:
        raise Unauthenticated("Invalid or expired token")
    session_id, read_only = verified
    if read_only:
        raise Forbidden("This token is read-only; DevTools needs an interactive one")
    live = svc.manager.find(session_id)
    if live is None:  # a valid token: the session existed, so it has ended
        raise Gone(f"Session {session_id} has ended")
    return live


@routes.get("/debug/{token}/devtools/{path:.+}")
async def devtools(request: web.Request) -> web.StreamResponse:
    live = _session(request)
    path = request.match_info["path"]
    socket = _SOCKET.match(path)
    if socket is not None:
        key = websocket_key(request)
        if socket.group(1) == "browser":  # whatever id the client has: it is this session's browser
            return await relay(request, key, live, live.browser.ws_url, counted=False)
        page_url = f"ws://127.0.0.1:{live.browser.port}/devtools/page/{socket.group(2)}"
        return await relay(request, key, live, page_url, counted=False, target_id=socket.group(2))
    if not _STATIC.match(path) or ".." in path:
        raise NotFound(f"Route GET:{request.path} not found")
    try:
        status, kind, body = await live.browser.http_get(f"/devtools/{path}")
    except (OSError, BrowserUnreachable) as exc:
        raise BrowserUnreachable(f"Session {live.id}: browser unreachable ({exc})") from exc
    if status != 200:
        raise NotFound(f"Route GET:{request.path} not found")
    return web.Response(body=body, content_type=kind.split(";")[0] or "application/octet-stream")
