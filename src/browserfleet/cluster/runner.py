"""The runner interface: what the session manager needs from wherever browsers run."""

from __future__ import annotations

from typing import Protocol

from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.spec import BrowserSpec


class Runner(Protocol):
    async def acquire(self, spec: BrowserSpec) -> Browser:
        """A ready browser launched as `spec.launch` asks, used by one session only.

        Raises a `BrowserError` (`LaunchFailed`) when none can be had."""
        ...

    async def release(self, browser: Browser) -> None:
        """End a browser for good (browsers are never reused). Never raises for a browser that is
        already gone."""
        ...

    async def reap_orphans(self) -> int:
        """Kill browsers a previous server left running; how many processes were killed."""
        ...
