"""The runner interface: what the session manager needs from wherever browsers run."""

from __future__ import annotations

from typing import Protocol

from browserfleet.browsers.launcher import Browser


class Runner(Protocol):
    async def acquire(self) -> Browser:
        """A ready browser, used by one session only."""
        ...

    async def release(self, browser: Browser) -> None:
        """End a browser for good (browsers are never reused)."""
        ...

    def reap_orphans(self) -> int:
        """Kill browsers a previous server left running; how many processes were killed."""
        ...
