"""Request interception for the browser agent: one `Fetch.enable` per target that every network setting
(allowed domains, ad blocking, PDF downloads) shares, and one answer to each paused request.

Why one: `Fetch.enable` is per CDP session and a second call replaces the first one's patterns, so two
hooks enabling it on the agent's session of a target would silently undo each other. `Interception` is
the one `TargetHook` that enables it, with the union of its `Interceptor`s' patterns, and asks them in
order about every paused request: the first that returns a `Verdict` answers it, and when none does the
request goes on unchanged (`Fetch.continueRequest`, at either stage).

Coexistence with the client's own interception (Playwright `route`, Puppeteer `setRequestInterception`),
as Chromium 156 does it: each CDP session that enabled Fetch on a target is one interceptor in a chain,
and the session attached last sees a request first. The agent attaches before any client, so a client's
handler runs first: what it continues (changed or not) reaches the agent's interceptors next, and what it
answers itself (`route.fulfill`, `route.abort`) never does. Redirects are paused again at each hop.

Guarantees: every paused request is answered exactly once (a verdict, else continue); an interceptor
that raises fails that request (`Failed`) and is logged, so a broken check neither hangs a tab nor lets
through what it exists to stop; deciding is synchronous (no await between the event and the answer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from browserfleet.browsers.agent import AttachedTarget
from browserfleet.browsers.cdp import CdpConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """How to answer a paused request: a `Fetch.*` method and its parameters, less the `requestId`."""

    method: str
    params: dict[str, Any]

    @classmethod
    def fail(cls, reason: str) -> Verdict:
        """`Fetch.failRequest`, e.g. `BlockedByClient` (Playwright reports net::ERR_BLOCKED_BY_CLIENT)."""
        return cls("Fetch.failRequest", {"errorReason": reason})


@dataclass(frozen=True)
class Paused:
    """A `Fetch.requestPaused` event as the interceptors read it."""

    target: AttachedTarget
    params: dict[str, Any]

    @property
    def url(self) -> str:
        return str(self.params.get("request", {}).get("url", ""))

    @property
    def resource_type(self) -> str:
        return str(self.params.get("resourceType", ""))

    @property
    def at_response(self) -> bool:
        """Paused at the response stage (headers received), not before the request is sent."""
        return "responseStatusCode" in self.params or "responseErrorReason" in self.params

    @property
    def top_level(self) -> bool:
        """The main frame of a tab: a page target's main frame id is its target id."""
        return self.target.type == "page" and self.params.get("frameId") == self.target.info.get("targetId")

    def header(self, name: str, response: bool = False) -> str | None:
        """A request header (or a response header, at the response stage), by case-insensitive name."""
        wanted = name.lower()
        if response:
            for entry in self.params.get("responseHeaders") or ():
                if str(entry.get("name", "")).lower() == wanted:
                    return str(entry.get("value", ""))
            return None
        headers = self.params.get("request", {}).get("headers") or {}
        for key, value in headers.items():
            if key.lower() == wanted:
                return str(value)
        return None


class Interceptor(Protocol):
    """One setting's part in request interception."""

    async def prepare(self) -> None:
        """Once per browser, before any target is attached (e.g. wait for a shared engine's build)."""
        ...

    def patterns(self, target: AttachedTarget) -> list[dict[str, Any]]:
        """The `Fetch.RequestPattern`s it needs on this target (none: it has no part there)."""
        ...

    def decide(self, paused: Paused) -> Verdict | None:
        """Its answer to a paused request, or None to leave it to the next interceptor. It sees every
        request paused on a target it has patterns for, including those only another interceptor's
        patterns match: it must check the stage and resource type it cares about."""
        ...


class Interception:
    """The `TargetHook` that enables Fetch for a list of interceptors (in the order they are asked)."""

    def __init__(self, interceptors: Sequence[Interceptor]) -> None:
        self.interceptors = list(interceptors)
        self._enabled: set[str] = set()  # CDP sessions of the targets Fetch is enabled on

    async def browser(self, cdp: CdpConnection) -> None:
        for interceptor in self.interceptors:
            await interceptor.prepare()

    def _mine(self, target: AttachedTarget) -> list[Interceptor]:
        return [i for i in self.interceptors if i.patterns(target)]

    async def attached(self, target: AttachedTarget) -> None:
        # The handler reads the interceptors when a request pauses: `retarget` may change them.
        target.on(
            "Fetch.requestPaused", lambda params, _session: self._paused(self._mine(target), target, params)
        )
        await self._enable(target)

    async def _enable(self, target: AttachedTarget) -> None:
        mine = self._mine(target)
        if mine:
            await target.send("Fetch.enable", {"patterns": [p for i in mine for p in i.patterns(target)]})
            self._enabled.add(target.session_id)
        elif target.session_id in self._enabled:
            await target.send("Fetch.disable")
            self._enabled.discard(target.session_id)

    async def retarget(self, interceptors: Sequence[Interceptor], targets: Sequence[AttachedTarget]) -> None:
        """Swap in another list of interceptors (a pooled browser's, when its session is taken) and
        re-enable Fetch on the targets attached now with their patterns."""
        for interceptor in interceptors:
            if interceptor not in self.interceptors:
                await interceptor.prepare()
        self.interceptors = list(interceptors)
        for target in targets:
            await self._enable(target)

    def _paused(
        self, interceptors: list[Interceptor], target: AttachedTarget, params: dict[str, Any]
    ) -> None:
        paused = Paused(target, params)
        verdict: Verdict | None = None
        try:
            for interceptor in interceptors:
                verdict = interceptor.decide(paused)
                if verdict is not None:
                    break
        except Exception:
            log.exception("an interceptor failed on %s", paused.url[:200])
            verdict = Verdict.fail("Failed")
        method, extra = ("Fetch.continueRequest", {}) if verdict is None else (verdict.method, verdict.params)
        target.cdp.send_soon(method, {"requestId": params["requestId"], **extra}, target.session_id)
