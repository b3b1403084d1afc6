"""The objects every request handler needs, built once per server."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from browserfleet.artifacts.service import Artifacts
from browserfleet.artifacts.storage import Blobs
from browserfleet.browsers.egress import PinnedPeers
from browserfleet.config import Settings
from browserfleet.gateway.drivers import Drivers
from browserfleet.gateway.frames import Limits
from browserfleet.sessions.manager import SessionManager
from browserfleet.sessions.tokens import SigningKeys, ViewTokens
from browserfleet.store.repo import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    manager: SessionManager
    signing_keys: SigningKeys
    view_tokens: ViewTokens  # live view and DevTools URLs
    artifacts: Artifacts
    media_tokens: ViewTokens  # replay segments and MP4 exports
    link_limits: Limits  # the gateway's message cap and reassembly budgets (one budget per process)
    blobs: Blobs  # contexts' archives, extensions' zips
    drivers: Drivers  # sessions' chromedrivers (the WebDriver endpoint)
    # Connections open on browsers' pinned routes to this server (gateway/inside.py).
    pinned_peers: PinnedPeers = field(default_factory=PinnedPeers)

    def public_base(self, request: web.Request) -> str:
        """http(s)://host[:port][/prefix] as clients reach this server."""
        if self.settings.public_url:
            return self.settings.public_url
        return f"{request.scheme}://{request.host}"

    def connect_url(self, request: web.Request, session_id: str) -> str:
        base = self.public_base(request)
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        return f"{ws_base}/?signingKey={self.signing_keys.mint(session_id)}"

    def selenium_url(self, request: web.Request) -> str:
        return f"{self.public_base(request)}/webdriver"


SERVICES = web.AppKey("services", Services)
