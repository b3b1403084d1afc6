"""The browser agent: one CDP connection the server holds to a session's browser, which sees every target
(tab, out-of-process iframe, worker, service worker) before its first script runs, and applies the
session's `AppliedSpec` there through `TargetHook`s (fingerprint, allowed domains, ad blocking).

Mechanism: `Target.setAutoAttach {waitForDebuggerOnStart, flatten}` on the browser and then on every
attached page, so each new target is paused at its start until every hook has run for it; then
`Runtime.runIfWaitingForDebugger` lets it go. Targets that already ran when the agent started (the
first tab) are attached too; their hooks run before `start()` returns, which is before the session is
handed to its client. Clients' own auto-attach is unaffected: Chromium resumes a target once every
session that paused it has let it go.

A pooled browser's agent starts when the pool launches it, with the default spec's hooks
(`applied.prepare`), so a default session's create waits for none of this; `extend` adds a session's
other hooks when it is taken.

Guarantees: a hook that fails is logged and the target still resumes (a broken hook must not hang a
tab); the agent never sends anything on a client's CDP session; `close()` (by the browser's owner)
ends its connection and tasks. Hooks must be quick: every new tab waits for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from browserfleet.aio import Tasks
from browserfleet.browsers.cdp import CdpConnection, Handler
from browserfleet.browsers.launcher import Browser
from browserfleet.errors import CdpError

log = logging.getLogger(__name__)

# Targets whose own children (dedicated workers, out-of-process iframes) must be auto-attached too.
_PARENTS = {"page", "iframe", "tab"}
_AUTO_ATTACH = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}


@dataclass
class AttachedTarget:
    """A target as the agent holds it: paused at its start while hooks run (when `waiting`)."""

    cdp: CdpConnection
    session_id: str
    info: dict[str, Any]  # the CDP TargetInfo: targetId, type, url, browserContextId...
    waiting: bool
    events: dict[str, list[Handler]] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.info.get("type", ""))

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.send(method, params, self.session_id)

    def on(self, method: str, handler: Handler) -> None:
        """Events of this target's session only (handlers get (params, session id))."""
        self.events.setdefault(method, []).append(handler)


class TargetHook(Protocol):
    """Something applied to every target of one session's browser."""

    async def browser(self, cdp: CdpConnection) -> None:
        """Once, on the browser's own session, before any target is attached (browser-wide settings)."""

    async def attached(self, target: AttachedTarget) -> None:
        """For each target, while it is paused at its start: set overrides, enable interception. Must not
        resume it. Raising logs the failure; the target resumes regardless."""


class BrowserAgent:
    def __init__(self, browser: Browser, hooks: Sequence[TargetHook]) -> None:
        self.browser = browser
        self.hooks = list(hooks)
        self.cdp: CdpConnection | None = None
        self.targets: dict[str, AttachedTarget] = {}  # by CDP session id
        self._tasks = Tasks(f"agent-{browser.pid}")
        self._first: list[asyncio.Task[None]] = []
        self._started = False

    async def start(self) -> None:
        """Connect, run the browser-wide hooks, attach every target; returns once the targets that
        exist now have had their hooks run."""
        cdp = self.cdp = await CdpConnection.open(self.browser)
        cdp.on("Target.attachedToTarget", self._on_attached)
        cdp.on("Target.detachedFromTarget", self._on_detached)
        for method in ("Fetch.requestPaused", "Fetch.authRequired", "Page.frameNavigated"):
            cdp.on(method, self._dispatcher(method))
        for hook in self.hooks:
            await hook.browser(cdp)
        await cdp.send("Target.setAutoAttach", _AUTO_ATTACH)
        # The attach events of targets that exist already arrived before the answer above.
        await asyncio.gather(*self._first, return_exceptions=True)
        self._started = True

    def dispatch(self, method: str) -> None:
        """Route events of `method` to the targets' own handlers (`AttachedTarget.on`)."""
        assert self.cdp is not None
        self.cdp.on(method, self._dispatcher(method))

    def _dispatcher(self, method: str) -> Handler:
        def handle(params: dict[str, Any], session_id: str | None) -> None:
            target = self.targets.get(session_id or "")
            for handler in target.events.get(method, ()) if target else ():
                handler(params, session_id)

        return handle

    def _on_attached(self, params: dict[str, Any], _parent: str | None) -> None:
        assert self.cdp is not None
        target = AttachedTarget(
            self.cdp,
            params["sessionId"],
            params.get("targetInfo", {}),
            bool(params.get("waitingForDebugger")),
        )
        self.targets[target.session_id] = target
        task = self._tasks.spawn(self._prepare(target), f"attach-{target.type}")
        if task is not None and not self._started:
            self._first.append(task)

    def _on_detached(self, params: dict[str, Any], _parent: str | None) -> None:
        self.targets.pop(params.get("sessionId", ""), None)

    async def extend(self, hooks: Sequence[TargetHook]) -> None:
        """Add hooks to a started agent (a pooled browser's, when its session is taken): their
        browser-wide part, then each target attached now, which is already running (as the first tab is
        when an agent starts); targets attached from now on get them before they resume."""
        assert self.cdp is not None and self._started
        for hook in hooks:
            await hook.browser(self.cdp)
        self.hooks.extend(hooks)
        await asyncio.gather(*(self._run(hooks, target) for target in list(self.targets.values())))

    async def _run(self, hooks: Sequence[TargetHook], target: AttachedTarget) -> None:
        for hook in hooks:
            try:
                await hook.attached(target)
            except CdpError as exc:  # the target went away meanwhile, typically
                log.debug("hook %s on a %s target: %s", type(hook).__name__, target.type, exc)
            except Exception:
                log.exception("hook %s failed on a %s target", type(hook).__name__, target.type)

    async def _prepare(self, target: AttachedTarget) -> None:
        await self._run(list(self.hooks), target)
        try:
            if target.type in _PARENTS:
                await target.send(
                    "Target.setAutoAttach",
                    {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
                )
            if target.waiting:
                await target.send("Runtime.runIfWaitingForDebugger")
        except CdpError as exc:
            log.debug("a %s target could not be resumed: %s", target.type, exc)

    async def close(self) -> None:
        await self._tasks.close()
        if self.cdp is not None:
            await self.cdp.close()
