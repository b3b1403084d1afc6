"""Each running session's chromedriver, if a WebDriver client has asked for one: started on the first
new-session command, ended with the session (this is a `SessionObserver`), and the WebDriver session
open on it.

Owns the drivers' lifetimes only: what a WebDriver command may do is `gateway/webdriver.py`'s, and the
driver processes themselves are `browsers/chromedriver.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from browserfleet.browsers import chromedriver, sandbox
from browserfleet.browsers.chromedriver import ChromeDriver
from browserfleet.sessions.manager import Closer, LiveSession
from browserfleet.store.models import Session

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Attached:
    """One session's driver, what serves its debugger address, and the WebDriver session on it."""

    live: LiveSession
    driver: ChromeDriver
    stop_serving: Closer
    driver_session: str | None = None  # chromedriver's id of the open WebDriver session
    closer: Closer | None = None  # its place among the session's clients (manager.attach)
    key_hash: str | None = None  # the API key it was opened with, if it was (hashed as at rest)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # new-session and delete, one at a time

    async def close(self) -> None:
        self.driver_session = self.key_hash = None
        try:
            await self.stop_serving()
        finally:
            await self.driver.close()


class Drivers:
    def __init__(self, jail: sandbox.Support | None, isolate: bool) -> None:
        self.jail = jail
        self.isolate = isolate
        self._attached: dict[str, Attached] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    def get(self, session_id: str) -> Attached | None:
        return self._attached.get(session_id)

    def __len__(self) -> int:
        return len(self._attached)

    async def attach(self, live: LiveSession, serve: Callable[[ChromeDriver], Awaitable[Closer]]) -> Attached:
        """The session's driver, started now if it has none: `serve` puts the gateway on its debugger
        address and returns how to stop that. LaunchFailed if the driver cannot be started."""
        lock = self._starting.setdefault(live.id, asyncio.Lock())
        async with lock:
            found = self._attached.get(live.id)
            if found is not None:
                return found
            driver = await chromedriver.start(live.browser, self.jail, self.isolate)
            try:
                stop = await serve(driver)
            except BaseException:
                await asyncio.shield(driver.close())
                raise
            attached = self._attached[live.id] = Attached(live, driver, stop)
            return attached

    # -- SessionObserver ---------------------------------------------------------------------------

    def started(self, live: LiveSession, row: Session) -> None:
        pass

    async def ended(self, live: LiveSession, row: Session) -> None:
        lock = self._starting.pop(live.id, None)
        if lock is not None:
            async with lock:  # a driver starting now is closed here once it has started
                pass
        attached = self._attached.pop(live.id, None)
        if attached is not None:
            try:
                await attached.close()
            except Exception:
                log.exception("session %s: its chromedriver did not close cleanly", live.id)

    async def close(self) -> None:
        for session_id in list(self._attached):
            attached = self._attached.pop(session_id)
            await attached.close()
