"""The session lifecycle as pure logic: given what happened, decide whether and how a session ends.

No I/O, no clock of its own, no asyncio: `Lifecycle.on(event, now)` returns what the shell
(`SessionManager`) must do, and the shell does it (writes the row, closes clients, releases the
browser). Every rule of docs/architecture.md's "How sessions end" table lives here, once:

| event                                        | decision                                           |
|----------------------------------------------|----------------------------------------------------|
| `Expired`                                    | TIMED_OUT "timeout reached", at max(now, expiry)   |
| `ReleaseRequested`                           | COMPLETED "released by request"                    |
| `ClientDetached`, last one, not keepAlive    | COMPLETED "last client disconnected"               |
| ... when the browser closed its side         | `AwaitExit`: wait `CRASH_GRACE` for the exit first |
| `BrowserExited(0)` (a client's Browser.close) | COMPLETED "browser closed"                        |
| `BrowserExited(code ≠ 0)`                    | ERROR "browser exited (<code>)"                    |
| `ServerStopping`                             | ERROR "server stopped"                             |
| `ConnectWindowElapsed`, no client ever came  | TIMED_OUT "no client connected within the connect  |
|                                              | window", at max(now, connect_by)                   |
| a restart finds the session unfinished       | `after_restart`: TIMED_OUT at expiry if it has     |
|                                              | passed, else ERROR, "server restarted while ..."   |

The first event that ends a session wins; every later one is answered with None.

"Connected" means a counted client attached at least once: a CDP client for as long as its socket is
open, and (issue 11) a WebDriver session from its new-session command to its delete, which the shell
reports as `ClientAttached` and `ClientDetached` like any other client. Viewers (live view, DevTools)
are not clients and never count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

CRASH_GRACE = 2.0  # seconds to wait for a browser whose connection dropped to be seen exiting


class Status(StrEnum):
    """A session's status, as the contract names it. PENDING is never used: a session is recorded only
    once its browser is ready."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"
    ERROR = "ERROR"


# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientAttached:
    """A counted client (CDP, WebDriver) connected. Viewers (live view, DevTools) are not events."""


@dataclass(frozen=True)
class ClientDetached:
    """A counted client left; `browser_lost`: its connection was closed from the browser's side, which
    is how a crash looks from the relay, usually a moment before the exit is seen."""

    browser_lost: bool = False


@dataclass(frozen=True)
class BrowserExited:
    code: int


@dataclass(frozen=True)
class Expired:
    """The session's timer fired."""


@dataclass(frozen=True)
class ReleaseRequested:
    """`POST /v1/sessions/{id}` with REQUEST_RELEASE."""


@dataclass(frozen=True)
class ServerStopping:
    pass


@dataclass(frozen=True)
class GraceElapsed:
    """`CRASH_GRACE` passed after an `AwaitExit` and the browser has not exited."""


@dataclass(frozen=True)
class ConnectWindowElapsed:
    """The session's connect window (`connect_by`) passed: it ends if no client has connected yet."""


Event = (
    ClientAttached
    | ClientDetached
    | BrowserExited
    | Expired
    | ReleaseRequested
    | ServerStopping
    | GraceElapsed
    | ConnectWindowElapsed
)

NEVER_CONNECTED = "no client connected within the connect window"


# -- decisions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ending:
    """End the session: this status and reason, ended at `at`."""

    status: Status
    reason: str
    at: datetime


@dataclass(frozen=True)
class AwaitExit:
    """Wait up to `seconds` for the browser to exit, then report `BrowserExited` or `GraceElapsed`."""

    seconds: float = CRASH_GRACE


Decision = Ending | AwaitExit | None


class Lifecycle:
    """One running session's lifecycle: the counted clients, whether one ever connected, and whether
    it has ended. `connect_by`: when it ends if no client has connected by then (None: no such window)."""

    def __init__(self, keep_alive: bool, expires_at: datetime, connect_by: datetime | None = None) -> None:
        self.keep_alive = keep_alive
        self.expires_at = expires_at
        self.connect_by = connect_by
        self.clients = 0
        self.connected = False  # a client attached at least once
        self.ending: Ending | None = None

    @property
    def ended(self) -> bool:
        return self.ending is not None

    def on(self, event: Event, now: datetime) -> Decision:
        """The decision `event` calls for; an `Ending` is final, and after it every event gets None."""
        if self.ending is not None:
            return None
        decision = self._decide(event, now)
        if isinstance(decision, Ending):
            self.ending = decision
        return decision

    def _decide(self, event: Event, now: datetime) -> Decision:
        match event:
            case ClientAttached():
                self.clients += 1
                self.connected = True
                return None
            case ClientDetached(browser_lost=lost):
                self.clients = max(0, self.clients - 1)
                if self.clients or self.keep_alive:
                    return None
                return AwaitExit() if lost else Ending(Status.COMPLETED, "last client disconnected", now)
            case GraceElapsed():
                if self.clients or self.keep_alive:
                    return None  # a client came back meanwhile
                return Ending(Status.COMPLETED, "last client disconnected", now)
            case BrowserExited(code=0):
                return Ending(Status.COMPLETED, "browser closed", now)
            case BrowserExited(code=code):
                return Ending(Status.ERROR, f"browser exited ({code})", now)
            case Expired():
                # Timers may fire a millisecond early (uvloop rounds to whole ms): a session never times
                # out before its expiresAt.
                return Ending(Status.TIMED_OUT, "timeout reached", max(now, self.expires_at))
            case ReleaseRequested():
                return Ending(Status.COMPLETED, "released by request", now)
            case ServerStopping():
                return Ending(Status.ERROR, "server stopped", now)
            case ConnectWindowElapsed():
                if self.connected or self.connect_by is None:
                    return None
                return Ending(Status.TIMED_OUT, NEVER_CONNECTED, max(now, self.connect_by))
        raise TypeError(f"not a lifecycle event: {event!r}")


def after_restart(expires_at: datetime, now: datetime) -> Ending:
    """How a session a previous server left running ends: it cannot have run past its expiry, however
    long the server was down."""
    reason = "server restarted while the session ran"
    if expires_at <= now:
        return Ending(Status.TIMED_OUT, reason, expires_at)
    return Ending(Status.ERROR, reason, now)
