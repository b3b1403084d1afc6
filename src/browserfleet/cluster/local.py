"""Browsers as local child processes: from the warm pool when it has one ready, else launched now."""

from __future__ import annotations

import asyncio
import logging

from browserfleet.browsers import applied, extensions
from browserfleet.browsers.launcher import Browser, Launcher
from browserfleet.browsers.spec import BrowserSpec
from browserfleet.cluster.pool import WarmPool

log = logging.getLogger(__name__)


class LocalRunner:
    def __init__(
        self, launcher: Launcher, pool_size: int, max_parallel_launches: int, min_free_mb: int
    ) -> None:
        self.launcher = launcher
        # On 2 cores ten simultaneous launches take 4 s: bursts queue here instead of thrashing.
        self._launch_slots = asyncio.Semaphore(max_parallel_launches)
        self.pool = WarmPool(launcher, pool_size, self._launch_slots, min_free_mb)

    def start(self) -> None:
        self.pool.start()

    async def acquire(self, spec: BrowserSpec) -> Browser:
        browser = self.pool.take(spec.launch)
        if browser is None:
            async with self._launch_slots:
                browser = await self.launcher.launch(spec.launch)
        try:
            await extensions.check_loaded(browser)  # a session never starts without its extension
            await applied.apply(browser, spec.applied)
        except BaseException:
            await asyncio.shield(self.release(browser))
            raise
        return browser

    async def release(self, browser: Browser) -> None:
        try:
            await browser.close()
        except Exception:  # the protocol's promise: never raises (see Runner.release)
            log.exception("browser %s: not fully cleaned up", browser.pid)

    async def reap_orphans(self) -> int:
        return await asyncio.to_thread(self.launcher.reap_orphans)  # a /proc scan: off the loop

    async def close(self) -> None:
        await self.pool.close()
        await asyncio.to_thread(self.launcher.close)
