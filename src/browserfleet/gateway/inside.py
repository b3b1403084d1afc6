"""Clients inside a session's own browser: an extension (Stagehand's) that dials the session's connectUrl.

An isolated browser reaches nothing of this host (the egress rules), so for a session launched with an
extension the server pins one route in its egress proxy: exactly the host and port of the connectUrl it
handed out, to this server's own listening address (`pin`). What comes through that route is known by
its peer address (`browsers.egress.PinnedPeers`: the proxy made that socket, in this process), not by a
header a page could send, and it may do one thing only (`middleware`, `check`): open the CDP socket (or
read `/json/version`) of its own session, authenticated as any client. Such a client is a watcher, not a
client: it never keeps its session alive. Everything else through the route is a 403.

A browser that is not isolated (no egress proxy) reaches the host directly; there a client is taken to
be inside when its Origin is one of the session's own extensions (`chrome-extension://<id>`), which a
page cannot forge and an outside client gains nothing by sending. With an `https` public URL (TLS ended
by a proxy in front) no route is pinned: the browser would speak TLS to the server's plain port.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from browserfleet.browsers.egress import EgressProxy, Pin
from browserfleet.errors import Forbidden
from browserfleet.services import SERVICES, Services
from browserfleet.sessions.manager import LiveSession

log = logging.getLogger(__name__)

# What a connection through a pinned route may ask for: the gateway's own entry.
ENTRY_PATHS = frozenset({"/", "/json/version", "/json/version/"})
_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def listening_address(svc: Services) -> tuple[str, int]:
    """Where this server listens, as a connection from this host reaches it."""
    host = svc.settings.host
    return _ANY_ADDRESS.get(host, host), svc.settings.port


def pin(svc: Services, request: web.Request, session_id: str) -> None:
    """Route the connectUrl's host:port from the session's browser to this server, if the session has an
    extension (the only thing inside a browser that is given the connectUrl). Idempotent."""
    live = svc.manager.find(session_id)
    if live is None or not live.browser.extension_ids or live.browser.egress is None:
        return
    url = urlsplit(svc.connect_url(request, session_id))
    try:
        port = url.port or (443 if url.scheme == "wss" else 80)
    except ValueError:
        return
    if url.scheme != "ws" or not url.hostname:
        log.info(
            "session %s: no route to the gateway from its browser (public URL %s)", session_id, url.scheme
        )
        return
    route = (url.hostname.lower().removesuffix("."), port)
    live.browser.egress.pinned.setdefault(route, Pin(listening_address(svc), svc.pinned_peers))


def _proxy(request: web.Request) -> EgressProxy | None:
    """The egress proxy whose pinned route this request arrived by, if it did."""
    if request.transport is None:
        return None
    return request.app[SERVICES].pinned_peers.proxy_of(request.transport.get_extra_info("peername"))


def pinned(request: web.Request) -> bool:
    """Whether the request arrived by some browser's pinned route (from inside that browser)."""
    return _proxy(request) is not None


def own_session(request: web.Request, live: LiveSession | None) -> LiveSession:
    """`live`, if the request through a pinned route names the session of that route's own browser;
    else a 403 (another session's key, or none: a browser never creates sessions)."""
    proxy = _proxy(request)
    if live is None or live.browser.egress is not proxy:
        raise Forbidden("A session's browser may connect to its own session only")
    return live


def check(request: web.Request, live: LiveSession) -> bool:
    """Whether the connection to `live` comes from inside its own browser."""
    proxy = _proxy(request)
    if proxy is not None:
        return own_session(request, live) is live
    if live.browser.egress is not None:
        return False
    origin = request.headers.get("Origin", "")
    return any(origin == f"chrome-extension://{ident}" for ident in live.browser.extension_ids)


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Through a pinned route, only the gateway's entry (`ENTRY_PATHS`, GET) is served."""
    if (request.method != "GET" or request.path not in ENTRY_PATHS) and _proxy(request) is not None:
        raise Forbidden("From inside a session's browser only its own CDP entry can be reached")
    return await handler(request)
