"""SessionManager: the one place session state changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from browserfleet.browsers.launcher import Browser
from browserfleet.cluster.runner import Runner
from browserfleet.errors import BrowserError, ConcurrencyLimited, Gone, NotFound, Unavailable
from browserfleet.sessions import query
from browserfleet.store.models import Project, Session
from browserfleet.store.repo import Store

log = logging.getLogger(__name__)

RUNNING, COMPLETED, TIMED_OUT, ERROR = "RUNNING", "COMPLETED", "TIMED_OUT", "ERROR"
CRASH_GRACE = 2.0  # seconds to wait for a browser whose connection dropped to be seen exiting


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SessionSpec:
    """What a create asks for, already validated."""

    timeout: int | None = None
    keep_alive: bool = False
    region: str = "us-west-2"
    user_metadata: dict[str, Any] | None = None
    context_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


Closer = Callable[[], Awaitable[None]]


@dataclass(eq=False)
class LiveSession:
    """A running session's in-memory half: its browser, clients and timer."""

    id: str
    project_id: str
    keep_alive: bool
    expires_at: datetime
    browser: Browser
    clients: set[Closer] = field(default_factory=set)
    watchers: set[Closer] = field(default_factory=set)  # live views, DevTools: closed at the end, not counted
    timer: asyncio.TimerHandle | None = None
    watcher: asyncio.Task[None] | None = None


class SessionObserver(Protocol):
    """Something that follows every session (artifact capture, sampling) without owning its state."""

    def started(self, live: LiveSession, row: Session) -> None:
        """Called once the session is live; must not block (start tasks instead)."""

    async def ended(self, live: LiveSession, row: Session) -> None:
        """Called after the session has ended and before its browser is killed."""


class SessionManager:
    def __init__(self, store: Store, runner: Runner) -> None:
        self.store = store
        self.runner = runner
        self.observers: list[SessionObserver] = []
        self._live: dict[str, LiveSession] = {}
        self._pending: dict[str, int] = {}
        self._admission = asyncio.Lock()
        self._endings: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- start-up and shutdown -------------------------------------------------------------------

    async def reconcile(self) -> int:
        """After a restart: kill browsers the last server left, end the sessions they served."""
        killed = self.runner.reap_orphans()
        now = utcnow()
        for row in await self.store.live_sessions():
            # A session cannot have run past its expiry, however long the server was down.
            status, ended = (TIMED_OUT, row.expires_at) if row.expires_at <= now else (ERROR, now)
            await self.store.end_session(row.id, status, ended, "server restarted while the session ran")
        return killed

    async def shutdown(self) -> None:
        self._stopping = True  # creates still launching end their own browsers (see _start)
        for live in list(self._live.values()):
            self._end_soon(live, ERROR, "server stopped")
        while self._endings:
            await asyncio.gather(*list(self._endings), return_exceptions=True)

    # -- admission and creation ------------------------------------------------------------------

    def _in_use(self, project_id: str) -> int:
        running = sum(1 for live in self._live.values() if live.project_id == project_id)
        return running + self._pending.get(project_id, 0)

    def usage(self, project: Project) -> tuple[int, int]:
        """(remaining slots, seconds until the earliest running session expires)."""
        remaining = max(0, project.concurrency - self._in_use(project.id))
        expiries = [live.expires_at for live in self._live.values() if live.project_id == project.id]
        reset = max(0, math.ceil((min(expiries) - utcnow()).total_seconds())) if expiries else 0
        return remaining, reset

    async def create(self, project: Project, spec: SessionSpec) -> Session:
        async with self._admission:
            if self._stopping:
                raise Unavailable("The server is shutting down")
            if self._in_use(project.id) >= project.concurrency:
                raise ConcurrencyLimited(project.concurrency, self.usage(project)[1])
            self._pending[project.id] = self._pending.get(project.id, 0) + 1
        try:
            return await self._start(project, spec)
        finally:
            # Only now: until the session is in `live`, the reservation is what holds its slot.
            self._pending[project.id] -= 1

    async def _start(self, project: Project, spec: SessionSpec) -> Session:
        created = utcnow()
        try:
            browser = await self.runner.acquire()
        except BrowserError as exc:
            log.error("browser launch failed: %s (%s)", exc, exc.detail)
            raise Unavailable(f"The browser could not be started: {exc}") from exc
        except Exception as exc:  # the runner's defect, still the server's fault: 503, never 500
            log.exception("the runner failed to give a browser")
            raise Unavailable("The browser could not be started") from exc
        if self._stopping:
            await self.runner.release(browser)
            raise Unavailable("The server is shutting down")
        started = utcnow()
        timeout = spec.timeout or project.default_timeout
        row = Session(
            id=str(uuid.uuid4()),
            project_id=project.id,
            status=RUNNING,
            created_at=created,
            updated_at=started,
            started_at=started,
            expires_at=started + timedelta(seconds=timeout),
            keep_alive=spec.keep_alive,
            region=spec.region,
            context_id=spec.context_id,
            user_metadata=spec.user_metadata,
            create_params=spec.params,
            proxy_bytes=0,
            browser_pid=browser.pid,
            browser_profile=str(browser.profile_dir),
        )
        try:
            await self.store.add_session(row)
        except BaseException:
            await self.runner.release(browser)
            raise
        live = LiveSession(row.id, project.id, spec.keep_alive, row.expires_at, browser)
        self._live[row.id] = live
        loop = asyncio.get_running_loop()
        delay = (row.expires_at - utcnow()).total_seconds()
        live.timer = loop.call_later(delay, self._end_soon, live, TIMED_OUT, "timeout reached")
        live.watcher = asyncio.create_task(self._watch_browser(live), name=f"session-{row.id}-browser")
        for observer in self.observers:
            observer.started(live, row)
        return row

    async def _watch_browser(self, live: LiveSession) -> None:
        await asyncio.shield(live.browser.exited)  # cancelling the watcher must not cancel the wait
        self._track(asyncio.create_task(self._ended_by_exit(live), name=f"session-{live.id}-exit"))

    async def _ended_by_exit(self, live: LiveSession) -> None:
        code = live.browser.exited.result()
        # A client's Browser.close exits cleanly; anything else is a crash or a kill.
        status, reason = (COMPLETED, "browser closed") if code == 0 else (ERROR, f"browser exited ({code})")
        await self.end(live, status, reason)

    # -- reading ---------------------------------------------------------------------------------
    # The one way other packages reach a running session (this is the seat of the session map that
    # PostgreSQL will back later).

    async def running(self, session_id: str, project_id: str | None = None) -> LiveSession:
        """The running session `session_id` (of `project_id`, when given). NotFound if there is no such
        session (in that project: another project's is never acknowledged), Gone if it has ended."""
        live = self._live.get(session_id)
        if live is not None and (project_id is None or live.project_id == project_id):
            return live
        row = await self.store.session(session_id, project_id)
        if row is None:
            raise NotFound(f"Session {session_id} not found")
        raise Gone(f"Session {session_id} has ended ({row.status}); create a new one")

    def find(self, session_id: str) -> LiveSession | None:
        """The running session `session_id`, or None: for callers that only need "is it running"."""
        return self._live.get(session_id)

    async def get(self, project_id: str, session_id: str) -> Session:
        row = await self.store.session(session_id, project_id)
        if row is None:
            raise NotFound(f"Session {session_id} not found")
        return row

    async def list(self, project_id: str, status: str | None, q: str | None) -> Sequence[Session]:
        metadata = query.parse(q) if q is not None else None
        return await self.store.sessions(project_id, status, metadata)

    # -- ending ----------------------------------------------------------------------------------

    async def release(self, project_id: str, session_id: str) -> Session:
        """REQUEST_RELEASE: end now; on an already-ended session, a no-op."""
        row = await self.get(project_id, session_id)
        live = self._live.get(session_id)
        if live is not None:
            await self.end(live, COMPLETED, "released by request")
            row = await self.get(project_id, session_id)
        return row

    def _end_soon(self, live: LiveSession, status: str, reason: str) -> None:
        self._track(asyncio.create_task(self.end(live, status, reason), name=f"session-{live.id}-end"))

    def _track(self, task: asyncio.Task[None]) -> None:
        """Background work that shutdown must wait for."""
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    async def end(self, live: LiveSession, status: str, reason: str) -> None:
        if self._live.get(live.id) is not live:
            return  # already ending
        del self._live[live.id]  # frees the concurrency slot at once
        if live.timer is not None:
            live.timer.cancel()
        ended = utcnow()
        if status == TIMED_OUT:
            # The loop's timers may fire a millisecond early (uvloop rounds to whole ms): a session
            # never times out before its expiresAt.
            ended = max(ended, live.expires_at)
        await self.store.end_session(live.id, status, ended, reason)
        closers = [*live.clients, *live.watchers]
        live.clients.clear()
        live.watchers.clear()
        for close in closers:
            with contextlib.suppress(Exception):
                await close()
        if live.watcher is not None and live.watcher is not asyncio.current_task():
            live.watcher.cancel()
        # The session has ended (stored, clients closed, slot free); observers finishing (downloads
        # saved, recordings closed), then killing and reaping the browser tree and removing its profile,
        # take ~0.3 s more, which no caller needs to wait for.
        self._track(asyncio.create_task(self._release(live), name=f"session-{live.id}-release"))

    async def _release(self, live: LiveSession) -> None:
        try:
            row = await self.store.session(live.id)
            for observer in self.observers:
                if row is not None:
                    try:
                        await observer.ended(live, row)
                    except Exception:
                        log.exception("session %s: %s failed at the end", live.id, type(observer).__name__)
        finally:
            await self.runner.release(live.browser)

    # -- clients (called by the gateway) ---------------------------------------------------------

    def attach(self, session_id: str, close: Closer) -> LiveSession:
        """A client: it keeps the session alive, and the last one leaving may end it."""
        return self._join(session_id, close, counted=True)

    def watch(self, session_id: str, close: Closer) -> LiveSession:
        """A viewer (live view, DevTools): closed when the session ends, but never keeps it alive."""
        return self._join(session_id, close, counted=False)

    def _join(self, session_id: str, close: Closer, counted: bool) -> LiveSession:
        live = self._live.get(session_id)
        if live is None:
            raise Gone(f"Session {session_id} has ended; create a new one")
        (live.clients if counted else live.watchers).add(close)
        return live

    def unwatch(self, live: LiveSession, close: Closer) -> None:
        live.watchers.discard(close)

    def detach(self, live: LiveSession, close: Closer, browser_lost: bool = False) -> None:
        """A client left. `browser_lost`: its connection was closed from the browser's side, which is
        what a crash looks like from the relay, usually a moment before the exit watcher hears of it."""
        live.clients.discard(close)
        if not live.clients and not live.keep_alive and self._live.get(live.id) is live:
            if browser_lost:
                self._track(
                    asyncio.create_task(self._end_unless_crashed(live), name=f"session-{live.id}-lost")
                )
            else:
                self._end_soon(live, COMPLETED, "last client disconnected")

    async def _end_unless_crashed(self, live: LiveSession) -> None:
        # Whichever notices first, a browser that died ends its session as the exit watcher says (ERROR,
        # or COMPLETED for a clean Browser.close), never as a client that simply left.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(live.browser.exited), CRASH_GRACE)
        if live.browser.exited.done():
            await self._ended_by_exit(live)
        elif not live.clients and self._live.get(live.id) is live:
            await self.end(live, COMPLETED, "last client disconnected")
