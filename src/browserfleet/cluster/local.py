"""Browsers as local child processes."""

from __future__ import annotations

import asyncio

from browserfleet.browsers.launcher import Browser, Launcher


class LocalRunner:
    def __init__(self, launcher: Launcher, max_parallel_launches: int = 4) -> None:
        self.launcher = launcher
        # On 2 cores, ten simultaneous launches take 4 s: queue bursts instead of thrashing.
        self._launch_slots = asyncio.Semaphore(max_parallel_launches)

    async def acquire(self) -> Browser:
        async with self._launch_slots:
            return await self.launcher.launch()

    async def release(self, browser: Browser) -> None:
        await browser.close()

    def reap_orphans(self) -> int:
        return self.launcher.reap_orphans()
