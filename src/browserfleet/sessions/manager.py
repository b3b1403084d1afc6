"""SessionManager: the shell around the lifecycle core, and the one place session state changes.

`sessions/lifecycle.py` decides when and how a session ends; this module does the I/O those decisions
ask for (the row, the clients, the browser) and admits new sessions. It is also the one way other
packages reach a running session: `running(id)` and `find(id)` read the map of running sessions, which
is private here. That map is the seat of the session map a database will back when sessions run on
several machines; today it is in memory, and only this server's sessions are in it.

Guarantees: a session that ends has its clients closed and its browser released whatever the store
does; an end the store would not take is retried in the background and shown by `get` meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from browserfleet.aio import Tasks
from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.spec import BrowserSpec
from browserfleet.cluster.runner import Runner
from browserfleet.errors import (
    BrowserError,
    ConcurrencyLimited,
    Gone,
    InvalidRequest,
    NotFound,
    RateLimited,
    ShuttingDown,
    Unavailable,
)
from browserfleet.sessions import query
from browserfleet.sessions.lifecycle import (
    AwaitExit,
    BrowserExited,
    ClientAttached,
    ClientDetached,
    ConnectWindowElapsed,
    Ending,
    Event,
    Expired,
    GraceElapsed,
    Lifecycle,
    ReleaseRequested,
    ServerStopping,
    Status,
    after_restart,
)
from browserfleet.sessions.ratelimit import CreationWindow, Usage
from browserfleet.store.models import Project, Session

log = logging.getLogger(__name__)

END_RETRY_FIRST, END_RETRY_MAX = 0.5, 30.0  # seconds between attempts to record an end the store refused


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time as the manager sees it: the loop's in production, a fake one in the unit tests."""

    def now(self) -> datetime: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...


class LoopClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_later(delay, callback)


class SessionStore(Protocol):
    """What the manager needs of the store (`store.repo.Store` is one)."""

    async def add_session(self, session: Session) -> None: ...

    async def end_session(self, session_id: str, status: str, when: datetime, reason: str) -> bool: ...

    async def session(self, session_id: str, project_id: str | None = None) -> Session | None: ...

    async def sessions(
        self, project_id: str, status: str | None = None, metadata: tuple[tuple[str, ...], str] | None = None
    ) -> Sequence[Session]: ...

    async def live_sessions(self) -> Sequence[Session]: ...


@dataclass(frozen=True)
class SessionSpec:
    """What a create asks for, already validated: the session's own settings and its browser's."""

    timeout: int | None = None
    keep_alive: bool = False
    region: str = "us-west-2"
    user_metadata: dict[str, Any] | None = None
    persist_context: bool = False
    record_session: bool = True
    log_session: bool = True
    implicit: bool = False  # created by a connect that named no session (`?apiKey=` alone)
    fetch: bool = False  # the short-lived session of a `POST /v1/fetch`
    browser: BrowserSpec = field(default_factory=BrowserSpec)
    # Settings accepted and stored but not performed here (docs/settings.md), as (key, value) pairs, and
    # the paths of keys no model names (accepted: clients send fields of newer SDKs), stored by name only.
    not_performed: tuple[tuple[str, Any], ...] = ()
    unknown_keys: tuple[str, ...] = ()

    @property
    def context_id(self) -> str | None:
        return self.browser.launch.context_id

    def summary(self) -> dict[str, Any]:
        """What is stored with the session as its create parameters (no secrets)."""
        out: dict[str, Any] = self.browser.summary()
        if self.implicit:
            out["implicit"] = True
        if self.fetch:
            out["fetch"] = True
        if self.persist_context:
            out["persistContext"] = True
        if not self.record_session:
            out["recordSession"] = False
        if not self.log_session:
            out["logSession"] = False
        if self.not_performed:
            out["notPerformed"] = dict(self.not_performed)
        if self.unknown_keys:
            out["unknownKeys"] = list(self.unknown_keys)
        return out


def stored_setting(create_params: dict[str, Any] | None, name: str) -> bool:
    """`recordSession` / `logSession` of an ended session: on unless its stored create parameters turned
    it off (a `SessionSpec.summary()`, or the raw create body servers before it stored)."""
    params = create_params or {}
    legacy = params.get("browserSettings")
    return params.get(name) is not False and not (isinstance(legacy, dict) and legacy.get(name) is False)


Closer = Callable[[], Awaitable[None]]


@dataclass(eq=False)
class LiveSession:
    """A running session's in-memory half: its browser, clients and timer, and its lifecycle."""

    id: str
    project_id: str
    browser: Browser
    spec: SessionSpec
    lifecycle: Lifecycle
    row: Session  # as created: what observers get at the end if the store cannot be read then
    clients: set[Closer] = field(default_factory=set)
    watchers: set[Closer] = field(default_factory=set)  # live views, DevTools: closed at the end, not counted
    timer: Cancellable | None = None
    connect_timer: Cancellable | None = None  # the connect window's, until a client first connects
    watcher: asyncio.Task[None] | None = None

    @property
    def expires_at(self) -> datetime:
        return self.lifecycle.expires_at


class SessionObserver(Protocol):
    """Something that follows every session (artifact capture, sampling) without owning its state."""

    def started(self, live: LiveSession, row: Session) -> None:
        """Called once the session is live; must not block (start tasks instead)."""

    async def ended(self, live: LiveSession, row: Session) -> None:
        """Called after the session has ended and before its browser is released."""


class SessionGate(Protocol):
    """Something a create must pass before a browser is taken for it (a context that must exist, a
    claim only one running session may hold)."""

    async def admit(self, session_id: str, project: Project, spec: SessionSpec) -> None:
        """Refuse the create by raising (`NotFound`, `Conflict`); nothing is held when it raises."""

    async def abandoned(self, session_id: str, spec: SessionSpec) -> None:
        """The create `admit` let through failed before its session ran: let go of what it holds."""


class SessionManager:
    def __init__(
        self,
        store: SessionStore,
        runner: Runner,
        clock: Clock | None = None,
        connect_window: float | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.clock: Clock = clock or LoopClock()
        # Seconds a session may wait for its first client before it ends (None or 0: until its timeout).
        self.connect_window = connect_window or None
        self.observers: list[SessionObserver] = []
        self.gates: list[SessionGate] = []
        self._live: dict[str, LiveSession] = {}
        self._pending: dict[str, int] = {}
        self._unrecorded: dict[str, Ending] = {}  # ends the store has not taken yet
        self._admission = asyncio.Lock()
        self._creations = CreationWindow()  # each project's creations in the last minute (its rate limit)
        self._tasks = Tasks("sessions")
        self._stopping = False
        self._stopped: asyncio.Future[None] | None = None  # done once shutdown begins (wakes retries)

    # -- start-up and shutdown -------------------------------------------------------------------

    async def reconcile(self) -> int:
        """After a restart: kill browsers the last server left, end the sessions they served."""
        killed = await self.runner.reap_orphans()
        now = self.clock.now()
        for row in await self.store.live_sessions():
            ending = after_restart(row.expires_at, now)
            await self.store.end_session(row.id, ending.status, ending.at, ending.reason)
        return killed

    async def shutdown(self) -> None:
        """End every session (ERROR, "server stopped") and wait for all their teardown."""
        self._stopping = True  # creates still launching end their own browsers (see _start)
        if not self._stop_signal().done():
            self._stop_signal().set_result(None)
        for live in list(self._live.values()):
            self._spawn_end(live, ServerStopping())
        await self._tasks.join()

    def _stop_signal(self) -> asyncio.Future[None]:
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
        return self._stopped

    # -- admission and creation ------------------------------------------------------------------

    def _in_use(self, project_id: str) -> int:
        running = sum(1 for live in self._live.values() if live.project_id == project_id)
        return running + self._pending.get(project_id, 0)

    def usage(self, project: Project) -> tuple[int, int]:
        """(remaining slots, seconds until the earliest running session expires)."""
        remaining = max(0, project.concurrency - self._in_use(project.id))
        expiries = [live.expires_at for live in self._live.values() if live.project_id == project.id]
        now = self.clock.now()
        reset = max(0, math.ceil((min(expiries) - now).total_seconds())) if expiries else 0
        return remaining, reset

    def creation_usage(self, project: Project) -> Usage | None:
        """The project's standing against its creations-per-minute limit; None when it has none."""
        limit = project.creations_per_minute
        if not limit:
            return None
        return self._creations.usage(project.id, limit, self.clock.now().timestamp())

    def _take_creation(self, project: Project) -> float | None:
        """Count a creation against the project's rate limit (RateLimited if it is reached); the time it
        was taken at, for `give_back`, or None when the project has no such limit."""
        limit = project.creations_per_minute
        if not limit:
            return None
        now = self.clock.now().timestamp()
        refused = self._creations.take(project.id, limit, now)
        if refused is not None:
            raise RateLimited(limit, refused.reset_seconds)
        return now

    async def create(self, project: Project, spec: SessionSpec) -> Session:
        async with self._admission:
            if self._stopping:
                raise ShuttingDown("The server is shutting down")
            if self._in_use(project.id) >= project.concurrency:
                raise ConcurrencyLimited(project.concurrency, self.usage(project)[1])
            taken = self._take_creation(project)
            self._pending[project.id] = self._pending.get(project.id, 0) + 1
        try:
            return await self._start(project, spec)
        except BaseException:
            if taken is not None:  # no session was created: it does not count against the rate
                self._creations.give_back(project.id, taken)
            raise
        finally:
            # Only now: until the session is in the map, the reservation is what holds its slot.
            self._pending[project.id] -= 1

    async def _acquire(self, spec: SessionSpec) -> Browser:
        try:
            return await self.runner.acquire(spec.browser)
        except (InvalidRequest, NotFound):
            raise  # what the spec names is at fault (an extension Chromium will not load, or gone)
        except BrowserError as exc:
            log.error("browser launch failed: %s (%s)", exc, exc.detail)
            raise Unavailable(f"The browser could not be started: {exc.message}") from exc
        except Exception as exc:  # the runner's defect, still the server's fault: 503, never 500
            log.exception("the runner failed to give a browser")
            raise Unavailable("The browser could not be started") from exc

    async def _start(self, project: Project, spec: SessionSpec) -> Session:
        created = self.clock.now()
        session_id = str(uuid.uuid4())
        admitted: list[SessionGate] = []
        try:
            for gate in self.gates:
                await gate.admit(session_id, project, spec)
                admitted.append(gate)
            return await self._launch(project, spec, session_id, created)
        except BaseException:
            if session_id not in self._live:
                for gate in admitted:
                    try:
                        await asyncio.shield(gate.abandoned(session_id, spec))
                    except Exception:
                        log.exception("session %s: %s could not undo its admission", session_id, gate)
            raise

    async def _launch(
        self, project: Project, spec: SessionSpec, session_id: str, created: datetime
    ) -> Session:
        browser = await self._acquire(spec)
        if self._stopping:
            await self.runner.release(browser)
            raise ShuttingDown("The server is shutting down")
        started = self.clock.now()
        timeout = spec.timeout or project.default_timeout
        row = Session(
            id=session_id,
            project_id=project.id,
            status=Status.RUNNING,
            created_at=created,
            updated_at=started,
            started_at=started,
            expires_at=started + timedelta(seconds=timeout),
            keep_alive=spec.keep_alive,
            region=spec.region,
            context_id=spec.context_id,
            user_metadata=spec.user_metadata,
            create_params=spec.summary(),
            proxy_bytes=0,
            browser_pid=browser.pid,
            browser_profile=str(browser.profile_dir),
        )
        try:
            await self.store.add_session(row)
        except BaseException:
            await self.runner.release(browser)
            raise
        if self._stopping:
            # Shutdown began while the row was written and has ended every session it saw; this one it
            # did not. Put in the map now, it would run with no owner (and its watcher hold shutdown).
            ending = Lifecycle(spec.keep_alive, row.expires_at).on(ServerStopping(), self.clock.now())
            assert isinstance(ending, Ending)
            await self._record(row.id, ending)
            await self.runner.release(browser)
            raise ShuttingDown("The server is shutting down")
        connect_by = self._connect_by(row)
        lifecycle = Lifecycle(spec.keep_alive, row.expires_at, connect_by)
        live = LiveSession(row.id, project.id, browser, spec, lifecycle, row)
        self._live[row.id] = live
        now = self.clock.now()
        delay = (row.expires_at - now).total_seconds()
        live.timer = self.clock.call_later(delay, lambda: self._spawn_end(live, Expired()))
        if connect_by is not None:
            live.connect_timer = self.clock.call_later(
                (connect_by - now).total_seconds(), lambda: self._spawn_end(live, ConnectWindowElapsed())
            )
        live.watcher = self._tasks.spawn(self._watch_browser(live), f"{row.id}:browser")
        for observer in self.observers:
            observer.started(live, row)
        return row

    def _connect_by(self, row: Session) -> datetime | None:
        """When the session ends if nobody has connected by then; None if its timeout comes first."""
        if self.connect_window is None:
            return None
        connect_by = row.started_at + timedelta(seconds=self.connect_window)
        return connect_by if connect_by < row.expires_at else None

    async def _watch_browser(self, live: LiveSession) -> None:
        await asyncio.shield(live.browser.exited)  # cancelling the watcher must not cancel the wait
        self._spawn_end(live, BrowserExited(live.browser.exited.result()))

    # -- reaching a running session --------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """The server is shutting down: no session will be created."""
        return self._stopping

    def find(self, session_id: str) -> LiveSession | None:
        """The running session, or None (never run here, or ended)."""
        return self._live.get(session_id)

    async def running(self, session_id: str, project_id: str | None = None) -> LiveSession:
        """The running session; `NotFound` if there is none (in `project_id`), `Gone` if it has ended."""
        live = self._live.get(session_id)
        if live is not None and (project_id is None or live.project_id == project_id):
            return live
        row = await self.store.session(session_id, project_id)
        if row is None:
            raise NotFound(f"Session {session_id} not found")
        raise Gone(f"Session {session_id} has ended ({self._shown(row).status}); create a new one")

    # -- reading ---------------------------------------------------------------------------------

    def _shown(self, row: Session) -> Session:
        """The row as it is: with an end the store has not taken yet."""
        ending = self._unrecorded.get(row.id)
        if ending is not None and row.status == Status.RUNNING:
            return _with_end(row, ending)
        return row

    async def get(self, project_id: str, session_id: str) -> Session:
        row = await self.store.session(session_id, project_id)
        if row is None:
            raise NotFound(f"Session {session_id} not found")
        return self._shown(row)

    async def list(self, project_id: str, status: str | None, q: str | None) -> Sequence[Session]:
        metadata = query.parse(q) if q is not None else None
        # As `get` shows them; an end not yet recorded can still be missing from a list of its status.
        rows = [self._shown(row) for row in await self.store.sessions(project_id, status, metadata)]
        return [row for row in rows if status is None or row.status == status]

    # -- ending ----------------------------------------------------------------------------------

    async def release(self, project_id: str, session_id: str) -> Session:
        """REQUEST_RELEASE: end now; on an already-ended session, a no-op."""
        row = await self.get(project_id, session_id)
        live = self._live.get(session_id)
        if live is not None:
            end = self._on(live, ReleaseRequested())
            if end is not None:
                await end
            row = await self.get(project_id, session_id)
        return row

    def _on(self, live: LiveSession, event: Event) -> Coroutine[Any, Any, None] | None:
        """Feed `event` to the session's lifecycle and start what it decides. An end takes the session
        out of the map at once (its slot is free, no new client can join); the rest of the end is the
        awaitable returned, which the caller awaits or spawns."""
        decision = live.lifecycle.on(event, self.clock.now())
        if isinstance(decision, Ending):
            if self._live.get(live.id) is live:
                del self._live[live.id]
            for timer in (live.timer, live.connect_timer):
                if timer is not None:
                    timer.cancel()
            return self._finish(live, decision)
        if isinstance(decision, AwaitExit):
            self._tasks.spawn(self._await_exit(live, decision.seconds), f"{live.id}:lost")
        return None

    def _spawn_end(self, live: LiveSession, event: Event) -> None:
        end = self._on(live, event)
        if end is not None:
            self._tasks.spawn(end, f"{live.id}:end")

    async def _await_exit(self, live: LiveSession, seconds: float) -> None:
        # Whichever notices first, a browser that died ends its session as its exit says (ERROR, or
        # COMPLETED for a clean Browser.close), never as a client that simply left.
        exited = live.browser.exited
        await self._sleep(seconds, until=exited)
        self._spawn_end(live, BrowserExited(exited.result()) if exited.done() else GraceElapsed())

    async def _sleep(self, seconds: float, until: asyncio.Future[Any] | None = None) -> None:
        """`seconds` on the manager's clock, or less if `until` is done first (it is not cancelled)."""
        loop = asyncio.get_running_loop()
        elapsed: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not elapsed.done():
                elapsed.set_result(None)

        timer = self.clock.call_later(seconds, wake)
        waits: set[asyncio.Future[Any]] = {elapsed}
        if until is not None:
            waits.add(asyncio.shield(until))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            for wait in waits:
                wait.cancel()

    async def _finish(self, live: LiveSession, ending: Ending) -> None:
        """Record the end, close the clients, then release the browser in the background."""
        try:
            await self._record(live.id, ending)
        finally:
            closers = [*live.clients, *live.watchers]
            live.clients.clear()
            live.watchers.clear()
            for close in closers:
                with contextlib.suppress(Exception):
                    await close()
            if live.watcher is not None and live.watcher is not asyncio.current_task():
                live.watcher.cancel()
            # The session has ended (stored, clients closed, slot free); observers finishing (downloads
            # saved, recordings closed), then killing and reaping the browser tree and removing its
            # profile, take ~0.3 s more, which no caller needs to wait for.
            self._tasks.spawn(self._release(live, ending), f"{live.id}:release")

    async def _record(self, session_id: str, ending: Ending) -> None:
        try:
            await self.store.end_session(session_id, ending.status, ending.at, ending.reason)
        except Exception:
            log.exception("session %s: the store refused its end; retrying in the background", session_id)
            self._unrecorded[session_id] = ending
            self._tasks.spawn(self._record_later(session_id, ending), f"{session_id}:record")

    async def _record_later(self, session_id: str, ending: Ending) -> None:
        delay = END_RETRY_FIRST
        while True:
            await self._sleep(delay, until=self._stop_signal())  # at shutdown: one last try now
            try:
                await self.store.end_session(session_id, ending.status, ending.at, ending.reason)
            except Exception as exc:
                if self._stopping:
                    # The next start's reconcile ends the row (as a restart: ERROR or TIMED_OUT).
                    log.error("session %s: its end was never recorded (%s)", session_id, exc)
                    return
                delay = min(delay * 2, END_RETRY_MAX)
                continue
            self._unrecorded.pop(session_id, None)
            log.info("session %s: its end is recorded", session_id)
            return

    async def _release(self, live: LiveSession, ending: Ending) -> None:
        try:
            try:
                row = await self.store.session(live.id)
            except Exception:
                # Observers must still finish (close the capture, save downloads): give them the row as
                # it was created, with its end.
                log.exception("session %s: the store could not be read at the end", live.id)
                row = _with_end(live.row, ending)
            if row is not None:
                row = self._shown(row)
                for observer in self.observers:
                    try:
                        await observer.ended(live, row)
                    except Exception:
                        log.exception("session %s: %s failed at the end", live.id, type(observer).__name__)
        finally:
            await self.runner.release(live.browser)

    # -- clients (called by the gateway) ---------------------------------------------------------

    def attach(self, session_id: str, close: Closer) -> LiveSession:
        """A client: it keeps the session alive, and the last one leaving may end it. A CDP socket is one
        while it is open; a WebDriver session (issue 11) is to attach at its new-session command and
        `detach` at its delete, so that it counts as connected (the connect window) in between."""
        live = self._joinable(session_id)
        live.clients.add(close)
        self._on(live, ClientAttached())
        if live.connect_timer is not None:  # connected: the window no longer matters
            live.connect_timer.cancel()
            live.connect_timer = None
        return live

    def watch(self, session_id: str, close: Closer) -> LiveSession:
        """A viewer (live view, DevTools): closed when the session ends, but never keeps it alive."""
        live = self._joinable(session_id)
        live.watchers.add(close)
        return live

    def _joinable(self, session_id: str) -> LiveSession:
        live = self._live.get(session_id)
        if live is None:
            raise Gone(f"Session {session_id} has ended; create a new one")
        return live

    def unwatch(self, live: LiveSession, close: Closer) -> None:
        live.watchers.discard(close)

    def detach(self, live: LiveSession, close: Closer, browser_lost: bool = False) -> None:
        """A client left. `browser_lost`: its connection was closed from the browser's side."""
        if close in live.clients:
            live.clients.discard(close)
            self._spawn_end(live, ClientDetached(browser_lost))


def _with_end(row: Session, ending: Ending) -> Session:
    """`row` (a detached row, never written back) marked ended as `ending` says."""
    row.status, row.ended_at, row.updated_at, row.end_reason = (
        ending.status,
        ending.at,
        ending.at,
        ending.reason,
    )
    return row
