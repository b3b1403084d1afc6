"""The runner interface: what the session manager needs from wherever browsers run.

Failures are `browserfleet.errors.BrowserError`s, whose message is safe to show a client and whose
`detail` is for the log. Anything else a runner raises is its defect; a create still answers it 503
(`SessionManager` makes it `Unavailable`), never 500.
"""

from __future__ import annotations

from typing import Protocol

from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.spec import BrowserSpec


class Runner(Protocol):
    async def acquire(self, spec: BrowserSpec) -> Browser:
        """A ready browser launched as `spec.launch` asks, with `spec.applied` applied (its agent
        started, `browsers/applied.py`), used by one session only.

        Raises `LaunchFailed` when no browser could be started (the sandbox refused, Chromium did not
        come up in time), or another `BrowserError` (`BrowserUnreachable`: where browsers run cannot be
        reached). Cancelling it leaves nothing running.
        """
        ...

    async def release(self, browser: Browser) -> None:
        """End a browser for good (browsers are never reused).

        Never raises: it is called on the way out of failures and from background work. What could not
        be cleaned up is logged; the browser is gone for its session either way.
        """
        ...

    async def reap_orphans(self) -> int:
        """Kill browsers a previous server left running; how many processes were killed.

        Raises `BrowserUnreachable` when where browsers run cannot be reached (the server then does not
        start: it cannot know which sessions still have a browser).
        """
        ...
