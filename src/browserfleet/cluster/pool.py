"""The warm pool: browsers launched ahead of demand, each handed to one session and never reused.

Creating a session takes a ready browser (no launch on the request path) and wakes the refiller,
which launches replacements one at a time, so a burst never has the two cores launching browsers
while running sessions starve. A launched browser joins the pool once its agent has started with the
default fingerprint (`applied.prepare`, run beside the next launch), so taking it needs no CDP. When
the host runs short of memory the pool gives back its idle browsers instead of refilling, and sessions
fall back to launching on demand.

The pool owns its tasks (the refiller, the preparing and the closing of browsers); `close()`, awaited by the
runner at shutdown, stops the refiller and returns once every idle browser is closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging

import psutil

from browserfleet.aio import Tasks
from browserfleet.browsers import applied
from browserfleet.browsers.launcher import Browser, Launcher
from browserfleet.browsers.spec import LaunchSpec
from browserfleet.errors import LaunchFailed

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = 2.0  # seconds before the refiller tries again after a failed launch
MEMORY_CHECK_INTERVAL = 5.0  # seconds between memory checks while the pool is full
REFILL_DELAY = 0.1  # seconds between handing out a browser and starting its replacement


class WarmPool:
    def __init__(
        self, launcher: Launcher, size: int, launch_slots: asyncio.Semaphore, min_free_mb: int
    ) -> None:
        self.launcher = launcher
        self.size = size
        self.min_free_bytes = min_free_mb * 1024 * 1024
        self._slots = launch_slots
        self._ready: collections.deque[Browser] = collections.deque()
        self._tasks = Tasks("warm-pool")
        self._refiller: asyncio.Task[None] | None = None
        self._closed = False
        self._wanted = asyncio.Event()  # set when a browser is taken or dies
        self._preparing = 0  # launched, their agent starting (applied.prepare), not yet ready

    @property
    def idle(self) -> int:
        return len(self._ready)

    def start(self) -> None:
        self._wake()

    def take(self, spec: LaunchSpec) -> Browser | None:
        """A ready browser that `spec` would have launched, or None: the pool is empty, or `spec` asks
        for something (a profile, an extension) its browsers were not launched with."""
        if not spec.pooled:
            return None
        while self._ready:
            browser = self._ready.popleft()
            if browser.alive:
                self._wake_soon()
                return browser
            self._discard(browser)
        self._wake()
        return None

    def _wake_soon(self) -> None:
        # A launch keeps both cores busy for ~0.5 s: let the create that just took a browser answer
        # first, rather than slow it down with the replacement's start-up.
        asyncio.get_running_loop().call_later(REFILL_DELAY, self._wake)

    def _short_of_memory(self) -> bool:
        return bool(psutil.virtual_memory().available < self.min_free_bytes)

    def _wake(self) -> None:
        self._wanted.set()
        if not self._closed and (self._refiller is None or self._refiller.done()):
            self._refiller = self._tasks.spawn(self._refill(), "refill")

    async def _refill(self) -> None:
        """Runs for the pool's life: tops it up, and watches memory even while it is full."""
        short = False
        while not self._closed:
            if self._short_of_memory():
                if not short:
                    log.warning("short of memory: warm pool emptied, sessions launch on demand")
                short = True
                # Give memory back rather than hold idle browsers a session may need.
                while self._ready:
                    self._discard(self._ready.pop())
            elif len(self._ready) + self._preparing < self.size:
                short = False
                try:
                    async with self._slots:
                        browser = await self.launcher.launch(LaunchSpec())
                except LaunchFailed as exc:
                    log.error("warm pool launch failed: %s (%s)", exc, exc.detail)
                    await asyncio.sleep(RETRY_AFTER_FAILURE)
                    continue
                if self._closed:
                    self._discard(browser)
                    return
                # Its agent starts with the default fingerprint beside the next launch; it joins the
                # pool once that is done, so a default session's create waits for no CDP.
                self._preparing += 1
                self._tasks.spawn(self._prepare(browser), f"prepare-{browser.pid}")
                continue
            else:
                short = False
            self._wanted.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), MEMORY_CHECK_INTERVAL)

    async def _prepare(self, browser: Browser) -> None:
        try:
            await applied.prepare(browser)
        except BaseException:  # cancelled: the browser is in no list, close it here
            await asyncio.shield(browser.close())
            raise
        finally:
            self._preparing -= 1
        if self._closed or not browser.alive:
            self._discard(browser)
            self._wake()
            return
        self._ready.append(browser)
        browser.exited.add_done_callback(functools.partial(self._on_exit, browser))

    def _on_exit(self, browser: Browser, _exited: object = None) -> None:
        # An idle browser that died (crash, OOM kill) is cleaned up and replaced.
        if browser in self._ready:
            self._ready.remove(browser)
            log.warning("idle pooled browser %s exited; replacing it", browser.pid)
            self._discard(browser)
            self._wake()

    def _discard(self, browser: Browser) -> None:
        self._tasks.spawn(browser.close(), f"discard-{browser.pid}")

    async def close(self) -> None:
        self._closed = True
        if self._refiller is not None:
            self._refiller.cancel()  # a launch it was waiting for ends its own half-started browser
            await asyncio.wait([self._refiller])
        while self._ready:
            self._discard(self._ready.pop())
        # Not cancelled: a browser closed halfway would outlive the server. Then nothing is left to stop.
        await self._tasks.join()
        await self._tasks.close()
