"""Session creations per rolling minute, per project: the contract's second limit (§7), as pure logic.

No I/O and no clock of its own: callers pass the time (seconds on any one monotonic scale: the manager
passes its clock's timestamps). A creation is taken when it is admitted and given back if it does not
happen (the browser could not be started), so only sessions that were created count, and a refused
request (a 429) never does.

Guarantees: at most `limit` creations of a project fall in any `WINDOW`-second span, and the wait a
refusal reports is exactly the time until the oldest creation in the window leaves it, that is when one
more is allowed: a `retry-after` that is true.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WINDOW = 60.0  # seconds


@dataclass(frozen=True)
class Usage:
    """A project's standing: how many more creations the window allows now, and in how many whole seconds
    the next one frees up (0 when the window is empty)."""

    remaining: int
    reset_seconds: int


class CreationWindow:
    """The times of each project's creations in the last `WINDOW` seconds."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._times: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def usage(self, key: str, limit: int, now: float) -> Usage:
        times = self._recent(key, now)
        if not times:
            self._times.pop(key, None)  # no memory kept for projects that stopped creating
            return Usage(limit, 0)
        # Rounded up: a client that waits this long finds the slot free, never a moment early.
        reset = max(1, math.ceil(times[0] + self.window - now))
        return Usage(max(0, limit - len(times)), reset)

    def take(self, key: str, limit: int, now: float) -> Usage | None:
        """Record a creation at `now` and return None if the window allows it; else the usage to refuse
        it with (remaining 0, and when to retry)."""
        times = self._recent(key, now)
        if len(times) >= limit:
            return self.usage(key, limit, now)
        times.append(now)
        return None

    def give_back(self, key: str, at: float) -> None:
        """A creation taken at `at` did not happen: it no longer counts."""
        times = self._times.get(key)
        if times is not None and at in times:
            times.remove(at)
