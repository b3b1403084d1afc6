"""`browserSettings.blockAds`: ads and trackers blocked with EasyList and EasyPrivacy, matched by Brave's
adblock-rust engine (the `adblock` package), in the browser agent.

The lists are files (by default the snapshots Debian's `webext-ublock-origin-chromium` package ships;
`BROWSERFLEET_FILTER_LISTS` names others); nothing is fetched at run time. The engine is built once per
server process, at the first session that asks for it, and shared by every session after that.

Building holds Python's GIL for seconds (the binding never releases it), so it is built in a child
process (`python -m browserfleet.browsers.adblock`), and the server only loads the serialised engine:
one pause of the server's event loop of a few hundred milliseconds (docs/network-policy.md has the
numbers), once per server process.

Matching: every request of a blockAds session's tabs, frames and workers is paused (`Fetch`, request
stage) and checked with its resource type and the page it comes from (its `Referer`, else the document
that target loaded last); a match fails it with `BlockedByClient` (Playwright and Puppeteer report
net::ERR_BLOCKED_BY_CLIENT). A tab's own top-level document is never blocked: the client chose to go
there (`allowedDomains` is the setting for that). Network filters only: cosmetic (element hiding) and
scriptlet rules are not applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import adblock

from browserfleet.browsers.agent import AttachedTarget
from browserfleet.browsers.interception import Paused, Verdict
from browserfleet.browsers.launcher import close_inherited_at_exec
from browserfleet.errors import LaunchFailed

log = logging.getLogger(__name__)

_DEBIAN = Path("/usr/share/chromium/extensions/ublock-origin/assets/thirdparties/easylist")
DEFAULT_LISTS = (_DEBIAN / "easylist.txt", _DEBIAN / "easyprivacy.txt")
BUILD_TIMEOUT = 180.0
_TRACKED = 4096  # targets whose last document is remembered (a browser's targets detach unannounced here)
# Targets whose requests are checked: tabs, out-of-process iframes and workers (each intercepts its own).
_CHECKED = {"page", "iframe", "worker", "shared_worker", "service_worker"}
# CDP resource types → the engine's request types (anything else is "other").
_TYPES = {
    "Stylesheet": "stylesheet",
    "Image": "image",
    "Media": "media",
    "Font": "font",
    "Script": "script",
    "XHR": "xmlhttprequest",
    "Fetch": "xmlhttprequest",
    "WebSocket": "websocket",
    "Ping": "ping",
    "CSPViolationReport": "csp_report",
}


def build(lists: Sequence[Path]) -> adblock.Engine:
    """The engine for these filter lists (seconds of CPU, holding the GIL: see the module docstring)."""
    filters = adblock.FilterSet()
    for path in lists:
        filters.add_filter_list(path.read_text(encoding="utf-8", errors="replace"))
    return adblock.Engine(filters, optimize=True)


class FilterEngine:
    """The engine of one set of lists, built at the first `ready()` and kept for the process."""

    def __init__(self, lists: Sequence[Path]) -> None:
        self.lists = tuple(lists)
        self._engine: adblock.Engine | None = None
        self._lock = asyncio.Lock()
        self.build_seconds: float | None = None  # child process: parse and build
        self.load_seconds: float | None = None  # this process: deserialise (the event loop's pause)

    def missing(self) -> list[Path]:
        """The lists that cannot be read (blockAds is refused while any is)."""
        return [path for path in self.lists if not path.is_file()]

    @property
    def fingerprint(self) -> str:
        """Which lists and engine version this is (logged, so an operator sees what was loaded)."""
        digest = hashlib.sha256(str(getattr(adblock, "__version__", "")).encode())
        for path in self.lists:
            digest.update(path.read_bytes())
        return digest.hexdigest()[:12]

    async def ready(self) -> adblock.Engine:
        if self._engine is not None:
            return self._engine
        async with self._lock:  # one build, however many sessions wait for it
            if self._engine is None:
                self._engine = await self._load()
            return self._engine

    async def _load(self) -> adblock.Engine:
        if missing := self.missing():
            raise LaunchFailed(f"blockAds: the filter lists are missing ({', '.join(map(str, missing))})")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            *map(str, self.lists),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=close_inherited_at_exec,
        )
        try:
            data, errors = await asyncio.wait_for(proc.communicate(), BUILD_TIMEOUT)
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0 or not data:
            detail = errors.decode(errors="replace")[-2000:]
            raise LaunchFailed("blockAds: the ad-blocking engine could not be built", detail)
        self.build_seconds = time.monotonic() - started
        started = time.monotonic()
        engine = adblock.Engine(adblock.FilterSet())
        engine.deserialize(data)
        self.load_seconds = time.monotonic() - started
        log.info(
            "ad blocking: %s (lists %s) built in %.2f s, loaded in %.2f s",
            ", ".join(p.name for p in self.lists),
            self.fingerprint,
            self.build_seconds,
            self.load_seconds,
        )
        return engine


ENGINE = FilterEngine(DEFAULT_LISTS)


def configure(lists: Sequence[Path]) -> None:
    """Use these lists (the server's `BROWSERFLEET_FILTER_LISTS`) from now on; empty: the default."""
    global ENGINE
    chosen = tuple(lists) or DEFAULT_LISTS
    if chosen != ENGINE.lists:
        ENGINE = FilterEngine(chosen)


def request_type(paused: Paused) -> str:
    """The engine's name for a request's type (a document here is always a frame's: see `decide`)."""
    return "subdocument" if paused.resource_type == "Document" else _TYPES.get(paused.resource_type, "other")


class AdBlock:
    """The `Interceptor` for `blockAds`: every request of tabs, frames and workers."""

    def __init__(self, engine: FilterEngine | None = None) -> None:
        self.filters = engine or ENGINE
        self._engine: adblock.Engine | None = None
        self._documents: dict[str, str] = {}  # CDP session id → the last document its target loaded
        self.checked = 0
        self.blocked = 0

    async def prepare(self) -> None:
        self._engine = await self.filters.ready()

    def patterns(self, target: AttachedTarget) -> list[dict[str, Any]]:
        return [{"urlPattern": "*", "requestStage": "Request"}] if target.type in _CHECKED else []

    def decide(self, paused: Paused) -> Verdict | None:
        if paused.at_response or self._engine is None:
            return None
        url = paused.url
        if urlsplit(url).scheme not in ("http", "https", "ws", "wss"):
            return None
        session = paused.target.session_id
        source = paused.header("Referer") or self._documents.get(session)
        source = source or str(paused.target.info.get("url") or url)
        if paused.resource_type == "Document" and paused.params.get("frameId") == paused.target.info.get(
            "targetId"
        ):
            self._documents[session] = url  # the source of what the target loads next
            if len(self._documents) > _TRACKED:
                del self._documents[next(iter(self._documents))]  # the oldest: its target is long gone
            if paused.top_level:
                return None  # a tab's own document: the client navigated there
        result = self._engine.check_network_urls(url, source, request_type(paused))
        self.checked += 1
        if not result.matched:
            return None
        self.blocked += 1
        log.debug("blocked %s (from %s)", url[:200], source[:200])
        return Verdict.fail("BlockedByClient")


def _main(argv: list[str]) -> int:
    """The child process: build the engine of the lists named in `argv` and write it, serialised, to
    stdout."""
    engine = build([Path(arg) for arg in argv])
    sys.stdout.buffer.write(engine.serialize())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
