"""The session lifecycle without Chromium: the pure core, and the manager shell driven by a fake
runner, an in-memory store and a fake clock. Every rule of docs/architecture.md's "How sessions end"
table is here, and so is the store that refuses to record an end."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.spec import BrowserSpec, LaunchSpec
from browserfleet.errors import (
    ConcurrencyLimited,
    Gone,
    LaunchFailed,
    NotFound,
    RateLimited,
    ShuttingDown,
    Unavailable,
)
from browserfleet.sessions.lifecycle import (
    NEVER_CONNECTED,
    AwaitExit,
    BrowserExited,
    ClientAttached,
    ClientDetached,
    ConnectWindowElapsed,
    Ending,
    Expired,
    GraceElapsed,
    Lifecycle,
    ReleaseRequested,
    ServerStopping,
    Status,
    after_restart,
)
from browserfleet.sessions.manager import SessionManager, SessionSpec, stored_setting
from browserfleet.sessions.ratelimit import Usage
from browserfleet.store.models import Project, Session
from harness.server import run_async

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EXPIRY = T0 + timedelta(minutes=5)


# -- the pure core --------------------------------------------------------------------------------


def core(keep_alive: bool = False) -> Lifecycle:
    return Lifecycle(keep_alive, EXPIRY)


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        (ReleaseRequested(), Status.COMPLETED, "released by request"),
        (BrowserExited(0), Status.COMPLETED, "browser closed"),
        (BrowserExited(-9), Status.ERROR, "browser exited (-9)"),
        (BrowserExited(1), Status.ERROR, "browser exited (1)"),
        (ServerStopping(), Status.ERROR, "server stopped"),
    ],
)
def test_each_ending_event_ends_as_the_table_says(event: Any, status: Status, reason: str) -> None:
    assert core().on(event, T0) == Ending(status, reason, T0)


def test_a_timeout_never_ends_before_the_expiry() -> None:
    early = EXPIRY - timedelta(milliseconds=1)  # timers may fire a millisecond early
    assert core().on(Expired(), early) == Ending(Status.TIMED_OUT, "timeout reached", EXPIRY)
    late = EXPIRY + timedelta(seconds=3)
    assert core().on(Expired(), late) == Ending(Status.TIMED_OUT, "timeout reached", late)


def test_the_last_client_leaving_ends_it_unless_keep_alive() -> None:
    life = core()
    life.on(ClientAttached(), T0)
    life.on(ClientAttached(), T0)
    assert life.on(ClientDetached(), T0) is None  # one is still there
    assert life.on(ClientDetached(), T0) == Ending(Status.COMPLETED, "last client disconnected", T0)

    kept = core(keep_alive=True)
    kept.on(ClientAttached(), T0)
    assert kept.on(ClientDetached(), T0) is None
    assert not kept.ended


def test_a_lost_browser_waits_for_the_exit_before_blaming_the_client() -> None:
    life = core()
    life.on(ClientAttached(), T0)
    assert life.on(ClientDetached(browser_lost=True), T0) == AwaitExit()
    assert life.on(BrowserExited(-11), T0) == Ending(Status.ERROR, "browser exited (-11)", T0)

    quiet = core()
    quiet.on(ClientAttached(), T0)
    quiet.on(ClientDetached(browser_lost=True), T0)
    assert quiet.on(GraceElapsed(), T0) == Ending(Status.COMPLETED, "last client disconnected", T0)


def test_a_client_returning_during_the_grace_keeps_it_running() -> None:
    life = core()
    life.on(ClientAttached(), T0)
    life.on(ClientDetached(browser_lost=True), T0)
    life.on(ClientAttached(), T0)
    assert life.on(GraceElapsed(), T0) is None
    assert not life.ended


def test_the_first_ending_wins() -> None:
    life = core()
    first = life.on(ReleaseRequested(), T0)
    for event in (Expired(), BrowserExited(-9), ServerStopping(), ClientDetached(), GraceElapsed()):
        assert life.on(event, T0 + timedelta(seconds=1)) is None
    assert life.ending == first


def test_after_a_restart() -> None:
    reason = "server restarted while the session ran"
    assert after_restart(EXPIRY, EXPIRY + timedelta(hours=1)) == Ending(Status.TIMED_OUT, reason, EXPIRY)
    assert after_restart(EXPIRY, T0) == Ending(Status.ERROR, reason, T0)


def test_stored_settings_read_this_servers_summary_and_older_raw_bodies() -> None:
    assert stored_setting(SessionSpec(record_session=False).summary(), "recordSession") is False
    assert stored_setting(SessionSpec().summary(), "recordSession") is True
    assert stored_setting({"browserSettings": {"recordSession": False}}, "recordSession") is False
    assert stored_setting(None, "logSession") is True


def test_a_spec_summary_keeps_no_secret() -> None:
    from browserfleet.browsers.spec import AppliedSpec, ProxyRule

    spec = SessionSpec(
        browser=BrowserSpec(
            LaunchSpec(extension_id="ext"),
            AppliedSpec(proxies=(ProxyRule("external", server="http://p:1", password="hunter2"),)),
        )
    )
    summary = spec.summary()
    assert "hunter2" not in repr(summary)
    assert summary["launch"] == {"extension_id": "ext"}
    assert summary["applied"]["proxies"][0]["password"] == "(set)"
    assert SessionSpec().summary() == {}


# -- the shell, with fakes ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.time = T0
        self._timers: list[tuple[datetime, int, Callable[[], None], list[bool]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        cancelled = [False]
        self._timers.append((self.time + timedelta(seconds=delay), next(self._order), callback, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def advance(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)
        due = sorted(t for t in self._timers if t[0] <= self.time)
        self._timers = [t for t in self._timers if t[0] > self.time]
        for _at, _n, callback, cancelled in due:
            if not cancelled[0]:
                callback()


@dataclass(eq=False)
class FakeBrowser:
    pid: int
    profile_dir: Path
    exited: asyncio.Future[int]
    released: bool = False


@dataclass
class FakeRunner:
    browsers: list[FakeBrowser] = field(default_factory=list)
    fail: BaseException | None = None
    specs: list[BrowserSpec] = field(default_factory=list)

    async def acquire(self, spec: BrowserSpec) -> Browser:
        if self.fail is not None:
            raise self.fail
        self.specs.append(spec)
        browser = FakeBrowser(
            1000 + len(self.browsers), Path("/nowhere"), asyncio.get_running_loop().create_future()
        )
        self.browsers.append(browser)
        return cast(Browser, browser)

    async def release(self, browser: Browser) -> None:
        cast(FakeBrowser, browser).released = True

    async def reap_orphans(self) -> int:
        return 0


class MemoryStore:
    """The store's session methods over a dict; `refuse_ends` makes that many end writes raise."""

    def __init__(self) -> None:
        self.rows: dict[str, Session] = {}
        self.refuse_ends = 0

    async def add_session(self, session: Session) -> None:
        self.rows[session.id] = session

    async def end_session(self, session_id: str, status: str, when: datetime, reason: str) -> bool:
        if self.refuse_ends:
            self.refuse_ends -= 1
            raise OSError("database is locked")
        row = self.rows[session_id]
        if row.status != Status.RUNNING:
            return False
        row.status, row.ended_at, row.updated_at, row.end_reason = status, when, when, reason
        return True

    async def session(self, session_id: str, project_id: str | None = None) -> Session | None:
        row = self.rows.get(session_id)
        if row is None or (project_id is not None and row.project_id != project_id):
            return None
        return Session(**vars_of(row))  # a copy, detached as the real store's rows are

    async def sessions(
        self, project_id: str, status: str | None = None, metadata: tuple[tuple[str, ...], str] | None = None
    ) -> Sequence[Session]:
        rows = [Session(**vars_of(r)) for r in self.rows.values() if r.project_id == project_id]
        return [r for r in rows if status is None or r.status == status]

    async def live_sessions(self) -> Sequence[Session]:
        return [r for r in self.rows.values() if r.status == Status.RUNNING]


PROJECT = Project(id="p1", name="p", owner_id="o", default_timeout=300, concurrency=2)


@dataclass
class Rig:
    manager: SessionManager
    runner: FakeRunner
    store: MemoryStore
    clock: FakeClock

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    def status(self, session_id: str) -> tuple[str, str | None]:
        row = self.store.rows[session_id]
        return row.status, row.end_reason


def run(test: Callable[[Rig], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        runner, store, clock = FakeRunner(), MemoryStore(), FakeClock()
        rig = Rig(SessionManager(store, runner, clock), runner, store, clock)
        await test(rig)
        await rig.manager.shutdown()
        assert all(b.released for b in runner.browsers), "a browser was never released"

    run_async(lambda: asyncio.wait_for(main(), 5))


def client(closed: list[str], name: str) -> Callable[[], Coroutine[Any, Any, None]]:
    async def close() -> None:
        closed.append(name)

    return close


def test_timeout_ends_at_the_expiry_and_releases_everything() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec(timeout=60))
        closed: list[str] = []
        rig.manager.attach(row.id, client(closed, "cdp"))
        rig.manager.watch(row.id, client(closed, "live"))
        rig.clock.advance(60)
        await rig.settle()
        assert rig.status(row.id) == (Status.TIMED_OUT, "timeout reached")
        assert rig.store.rows[row.id].ended_at == row.expires_at
        assert sorted(closed) == ["cdp", "live"]
        assert rig.runner.browsers[0].released
        assert rig.manager.find(row.id) is None

    run(body)


def test_release_and_the_404_410_decision() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec())
        assert (await rig.manager.running(row.id)).id == row.id
        with pytest.raises(NotFound):
            await rig.manager.running(row.id, project_id="other")
        ended = await rig.manager.release(PROJECT.id, row.id)
        assert (ended.status, rig.status(row.id)[1]) == (Status.COMPLETED, "released by request")
        with pytest.raises(Gone, match=r"has ended \(COMPLETED\)"):
            await rig.manager.running(row.id)
        with pytest.raises(NotFound):
            await rig.manager.running("no-such-session")
        with pytest.raises(Gone):
            rig.manager.attach(row.id, client([], "late"))
        assert (await rig.manager.release(PROJECT.id, row.id)).status == Status.COMPLETED  # a no-op

    run(body)


def test_last_client_and_keep_alive() -> None:
    async def body(rig: Rig) -> None:
        plain = await rig.manager.create(PROJECT, SessionSpec())
        kept = await rig.manager.create(PROJECT, SessionSpec(keep_alive=True))
        for row in (plain, kept):
            close = client([], "c")
            live = rig.manager.attach(row.id, close)
            rig.manager.detach(live, close)
        await rig.settle()
        assert rig.status(plain.id) == (Status.COMPLETED, "last client disconnected")
        assert rig.status(kept.id) == (Status.RUNNING, None)

    run(body)


def test_browser_exits() -> None:
    async def body(rig: Rig) -> None:
        clean = await rig.manager.create(PROJECT, SessionSpec())
        crashed = await rig.manager.create(PROJECT, SessionSpec())
        rig.runner.browsers[0].exited.set_result(0)
        rig.runner.browsers[1].exited.set_result(-9)
        await rig.settle()
        assert rig.status(clean.id) == (Status.COMPLETED, "browser closed")
        assert rig.status(crashed.id) == (Status.ERROR, "browser exited (-9)")

    run(body)


def test_a_lost_connection_waits_for_the_exit_on_the_clock() -> None:
    async def body(rig: Rig) -> None:
        crashing = await rig.manager.create(PROJECT, SessionSpec())
        quiet = await rig.manager.create(PROJECT, SessionSpec())
        for row in (crashing, quiet):
            close = client([], "c")
            rig.manager.detach(rig.manager.attach(row.id, close), close, browser_lost=True)
        await rig.settle()
        assert rig.status(crashing.id)[0] == rig.status(quiet.id)[0] == Status.RUNNING  # in the grace
        rig.runner.browsers[0].exited.set_result(-11)
        await rig.settle()
        assert rig.status(crashing.id) == (Status.ERROR, "browser exited (-11)")
        rig.clock.advance(AwaitExit().seconds)
        await rig.settle()
        assert rig.status(quiet.id) == (Status.COMPLETED, "last client disconnected")

    run(body)


def test_shutdown_and_reconcile() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec())
        await rig.manager.shutdown()
        assert rig.status(row.id) == (Status.ERROR, "server stopped")
        with pytest.raises(ShuttingDown, match="shutting down"):
            await rig.manager.create(PROJECT, SessionSpec())
        # A new server on the same store, after one that died with two sessions running.
        for expires in (T0 - timedelta(seconds=1), T0 + timedelta(hours=1)):
            left = Session(**{**vars_of(rig.store.rows[row.id]), "id": f"left-{expires:%H}"})
            left.status, left.expires_at, left.ended_at = Status.RUNNING, expires, None
            rig.store.rows[left.id] = left
        await SessionManager(rig.store, rig.runner, rig.clock).reconcile()
        restarted = "server restarted while the session ran"
        assert rig.status(f"left-{T0 - timedelta(seconds=1):%H}") == (Status.TIMED_OUT, restarted)
        assert rig.status(f"left-{T0 + timedelta(hours=1):%H}") == (Status.ERROR, restarted)

    run(body)


def vars_of(row: Session) -> dict[str, Any]:
    return {c: getattr(row, c) for c in Session.__table__.columns.keys()}


def test_a_store_that_refuses_the_end_still_frees_clients_and_browser() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec())
        closed: list[str] = []
        rig.manager.attach(row.id, client(closed, "cdp"))
        rig.store.refuse_ends = 2
        shown = await rig.manager.release(PROJECT.id, row.id)
        await rig.settle()
        assert closed == ["cdp"] and rig.runner.browsers[0].released
        assert rig.manager.find(row.id) is None  # its slot is free
        assert shown.status == Status.COMPLETED  # shown as ended while the write is retried
        assert rig.status(row.id) == (Status.RUNNING, None)  # not stored yet
        rig.clock.advance(0.5)  # the first retry: refused again
        await rig.settle()
        assert rig.status(row.id) == (Status.RUNNING, None)
        rig.clock.advance(1.0)  # the second: stored
        await rig.settle()
        assert rig.status(row.id) == (Status.COMPLETED, "released by request")

    run(body)


def test_admission_and_runner_failures() -> None:
    async def body(rig: Rig) -> None:
        await rig.manager.create(PROJECT, SessionSpec())
        await rig.manager.create(PROJECT, SessionSpec())
        with pytest.raises(ConcurrencyLimited) as limited:
            await rig.manager.create(PROJECT, SessionSpec())
        assert limited.value.reset_seconds == 300
        other = Project(id="p2", name="q", owner_id="o", default_timeout=300, concurrency=1)
        rig.runner.fail = LaunchFailed("chromium did not start", "exit 127")
        with pytest.raises(Unavailable, match="The browser could not be started: chromium did not start"):
            await rig.manager.create(other, SessionSpec())
        rig.runner.fail = RuntimeError("a bug in a runner")
        with pytest.raises(Unavailable, match="could not be started"):
            await rig.manager.create(other, SessionSpec())
        rig.runner.fail = None
        await rig.manager.create(other, SessionSpec())  # the failures held no slot

    run(body)


def test_the_runner_gets_the_typed_spec() -> None:
    async def body(rig: Rig) -> None:
        spec = SessionSpec(browser=BrowserSpec(LaunchSpec(extension_id="e1")))
        row = await rig.manager.create(PROJECT, spec)
        assert rig.runner.specs == [spec.browser]
        assert rig.store.rows[row.id].create_params == {"launch": {"extension_id": "e1"}}

    run(body)


# -- races and failures a review found unguarded ---------------------------------------------------


class BlockingAdd(MemoryStore):
    """A store whose `add_session` waits for `go`: shutdown can begin while a create writes its row."""

    def __init__(self) -> None:
        super().__init__()
        self.adding = asyncio.Event()
        self.go = asyncio.Event()

    async def add_session(self, session: Session) -> None:
        self.adding.set()
        await self.go.wait()
        await super().add_session(session)


def test_a_create_whose_row_is_written_while_shutdown_runs_is_ended_not_left_running() -> None:
    async def main() -> None:
        runner, store, clock = FakeRunner(), BlockingAdd(), FakeClock()
        manager = SessionManager(store, runner, clock)
        create = asyncio.create_task(manager.create(PROJECT, SessionSpec()))
        await store.adding.wait()
        await manager.shutdown()  # it has ended every session it saw; this one was not in the map yet
        store.go.set()
        with pytest.raises(ShuttingDown, match="shutting down"):
            await create
        # aiohttp lets a request finish after on_shutdown: it must not leave a session with no owner
        # (RUNNING until the next start, its browser alive after the server exits).
        (row,) = store.rows.values()
        assert (row.status, row.end_reason) == (Status.ERROR, "server stopped")
        assert runner.browsers[0].released
        assert manager.find(row.id) is None and not len(manager._tasks)

    run_async(lambda: asyncio.wait_for(main(), 5))


class BlockingRunner(FakeRunner):
    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def acquire(self, spec: BrowserSpec) -> Browser:
        await self.go.wait()
        return await super().acquire(spec)


def test_a_launch_that_finishes_after_shutdown_began_is_released_and_refused() -> None:
    async def main() -> None:
        runner, store, clock = BlockingRunner(), MemoryStore(), FakeClock()
        manager = SessionManager(store, runner, clock)
        create = asyncio.create_task(manager.create(PROJECT, SessionSpec()))
        await asyncio.sleep(0)
        await manager.shutdown()
        runner.go.set()
        with pytest.raises(ShuttingDown, match="shutting down"):
            await create
        assert runner.browsers[0].released and not store.rows

    run_async(lambda: asyncio.wait_for(main(), 5))


def test_a_row_that_cannot_be_written_releases_its_browser_and_slot() -> None:
    class RefusingAdd(MemoryStore):
        async def add_session(self, session: Session) -> None:
            raise OSError("disk full")

    async def main() -> None:
        runner, store = FakeRunner(), RefusingAdd()
        manager = SessionManager(store, runner, FakeClock())
        one = Project(id="p3", name="r", owner_id="o", default_timeout=300, concurrency=1)
        for _ in range(2):  # the second would be refused 429 if the first had kept its slot
            with pytest.raises(OSError):
                await manager.create(one, SessionSpec())
        assert len(runner.browsers) == 2 and all(b.released for b in runner.browsers)

    run_async(lambda: asyncio.wait_for(main(), 5))


def test_an_end_refused_at_shutdown_gets_one_last_try_and_does_not_hold_shutdown() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec())
        closed: list[str] = []
        rig.manager.attach(row.id, client(closed, "cdp"))
        rig.store.refuse_ends = 1  # the end is refused, its one last try (no clock advance) is taken
        await rig.manager.shutdown()
        assert closed == ["cdp"] and rig.runner.browsers[0].released
        assert rig.status(row.id) == (Status.ERROR, "server stopped")

        # Another server on the same store, whose end is refused every time: given up at shutdown.
        manager = SessionManager(rig.store, rig.runner, rig.clock)
        other = await manager.create(PROJECT, SessionSpec())
        rig.store.refuse_ends = 10
        await manager.shutdown()
        assert rig.status(other.id) == (Status.RUNNING, None)  # left for the next start's reconcile
        assert (await manager.get(PROJECT.id, other.id)).status == Status.ERROR  # shown as it ended
        rig.store.refuse_ends = 0

    run(body)


def test_a_client_detached_twice_counts_once() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec())
        first, second = client([], "a"), client([], "b")
        live = rig.manager.attach(row.id, first)
        rig.manager.attach(row.id, second)
        rig.manager.detach(live, first)
        rig.manager.detach(live, first)  # e.g. a relay's finally after the manager's own close
        await rig.settle()
        assert rig.status(row.id) == (Status.RUNNING, None)  # `second` is still connected
        rig.manager.detach(live, second)
        await rig.settle()
        assert rig.status(row.id) == (Status.COMPLETED, "last client disconnected")

    run(body)


def test_a_client_is_closed_only_once_the_end_is_recorded() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec())
        seen: list[str] = []

        async def close() -> None:  # a client told "session ended" may GET the session at once
            seen.append((await rig.manager.get(PROJECT.id, row.id)).status)

        rig.manager.attach(row.id, close)
        await rig.manager.release(PROJECT.id, row.id)
        assert seen == [Status.COMPLETED]

    run(body)


def test_observers_see_the_ended_row_and_one_that_fails_does_not_keep_the_browser() -> None:
    class Observer:
        def __init__(self, fail: bool) -> None:
            self.fail, self.seen = fail, list[tuple[str, bool]]()
            self.runner: FakeRunner | None = None

        def started(self, live: Any, row: Session) -> None:
            pass

        async def ended(self, live: Any, row: Session) -> None:
            self.seen.append((row.status, cast(FakeBrowser, live.browser).released))
            if self.fail:
                raise RuntimeError("observer bug")

    async def body(rig: Rig) -> None:
        failing, after = Observer(True), Observer(False)
        rig.manager.observers += [failing, after]
        row = await rig.manager.create(PROJECT, SessionSpec())
        rig.store.refuse_ends = 1  # observers are shown the end even while its write is retried
        await rig.manager.release(PROJECT.id, row.id)
        await rig.settle()
        assert failing.seen == after.seen == [(Status.COMPLETED, False)]  # before the browser is killed
        assert rig.runner.browsers[0].released
        rig.clock.advance(0.5)
        await rig.settle()

    run(body)


def test_observers_finish_even_when_the_store_cannot_be_read_at_the_end() -> None:
    class Observer:
        seen: list[tuple[str, str | None]] = []

        def started(self, live: Any, row: Session) -> None:
            pass

        async def ended(self, live: Any, row: Session) -> None:
            self.seen.append((row.status, row.end_reason))

    async def body(rig: Rig) -> None:
        observer = Observer()
        rig.manager.observers.append(observer)
        await rig.manager.create(PROJECT, SessionSpec())
        reads = rig.store.session

        async def unreadable(session_id: str, project_id: str | None = None) -> Session | None:
            raise OSError("disk I/O error")

        rig.store.session = unreadable  # type: ignore[method-assign]
        rig.runner.browsers[0].exited.set_result(-9)
        await rig.settle()
        rig.store.session = reads  # type: ignore[method-assign]
        assert observer.seen == [(Status.ERROR, "browser exited (-9)")]
        assert rig.runner.browsers[0].released

    run(body)


def test_a_list_shows_an_end_the_store_has_not_taken_as_get_does() -> None:
    async def body(rig: Rig) -> None:
        row = await rig.manager.create(PROJECT, SessionSpec())
        rig.store.refuse_ends = 1
        await rig.manager.release(PROJECT.id, row.id)
        assert (await rig.manager.get(PROJECT.id, row.id)).status == Status.COMPLETED
        assert [r.status for r in await rig.manager.list(PROJECT.id, None, None)] == [Status.COMPLETED]
        assert not await rig.manager.list(PROJECT.id, Status.RUNNING, None)  # it is not running
        rig.clock.advance(0.5)
        await rig.settle()

    run(body)


def test_a_spec_summary_keeps_no_password_given_in_a_proxy_url() -> None:
    from browserfleet.browsers.spec import AppliedSpec, ProxyRule

    rule = ProxyRule("external", server="http://alice:hunter2@proxy.test:8080")
    summary = SessionSpec(browser=BrowserSpec(applied=AppliedSpec(proxies=(rule,)))).summary()
    assert "hunter2" not in repr(summary)
    assert summary["applied"]["proxies"][0]["server"] == "http://alice:(set)@proxy.test:8080"


# -- the connect window and the creations-per-minute limit ----------------------------------------


def test_the_connect_window_ends_a_session_nobody_connected_to() -> None:
    window_end = T0 + timedelta(seconds=120)
    idle = Lifecycle(False, EXPIRY, connect_by=window_end)
    # A timer a millisecond early still ends it at the window's end, never before.
    assert idle.on(ConnectWindowElapsed(), window_end - timedelta(milliseconds=1)) == Ending(
        Status.TIMED_OUT, NEVER_CONNECTED, window_end
    )
    used = Lifecycle(True, EXPIRY, connect_by=window_end)
    used.on(ClientAttached(), T0)
    used.on(ClientDetached(), T0)  # keepAlive: it runs on, and having connected once is enough
    assert used.on(ConnectWindowElapsed(), window_end) is None
    assert not used.ended
    assert Lifecycle(False, EXPIRY).on(ConnectWindowElapsed(), window_end) is None  # no window


def test_the_manager_ends_unconnected_sessions_at_the_window_and_spares_the_rest() -> None:
    async def body(rig: Rig) -> None:
        rig.manager.connect_window = 120
        idle = await rig.manager.create(PROJECT, SessionSpec(keep_alive=True))
        used = await rig.manager.create(PROJECT, SessionSpec())
        rig.manager.attach(used.id, client([], "cdp"))
        rig.clock.advance(119)
        await rig.settle()
        assert rig.status(idle.id) == (Status.RUNNING, None)
        rig.clock.advance(1)
        await rig.settle()
        assert rig.status(idle.id) == (Status.TIMED_OUT, NEVER_CONNECTED)
        assert rig.store.rows[idle.id].ended_at == T0 + timedelta(seconds=120)
        assert rig.status(used.id) == (Status.RUNNING, None)
        assert rig.runner.browsers[0].released and not rig.runner.browsers[1].released
        # A window longer than the timeout: the timeout ends it, as without a window.
        rig.manager.connect_window = 600
        short = await rig.manager.create(PROJECT, SessionSpec(timeout=300))
        assert rig.manager.find(short.id) is not None
        assert rig.manager.find(short.id).lifecycle.connect_by is None  # type: ignore[union-attr]
        rig.clock.advance(300)
        await rig.settle()
        assert rig.status(short.id) == (Status.TIMED_OUT, "timeout reached")

    run(body)


def limited(per_minute: int, concurrency: int = 10) -> Project:
    return Project(
        id="rated",
        name="r",
        owner_id="o",
        default_timeout=300,
        concurrency=concurrency,
        creations_per_minute=per_minute,
    )


def test_creations_per_minute_refuses_with_a_true_wait() -> None:
    async def body(rig: Rig) -> None:
        project = limited(2)
        first = await rig.manager.create(project, SessionSpec())
        rig.clock.advance(15)
        await rig.manager.create(project, SessionSpec())
        assert rig.manager.creation_usage(project) == Usage(0, 45)
        await rig.manager.release(project.id, first.id)  # releasing frees concurrency, not the rate
        with pytest.raises(RateLimited) as refused:
            await rig.manager.create(project, SessionSpec())
        assert (refused.value.limit, refused.value.reset_seconds) == (2, 45)
        assert "(2)" in refused.value.message
        rig.clock.advance(44)
        with pytest.raises(RateLimited):
            await rig.manager.create(project, SessionSpec())
        rig.clock.advance(1)
        await rig.manager.create(project, SessionSpec())
        assert rig.manager.creation_usage(PROJECT) is None  # a project without the limit

    run(body)


def test_a_create_that_fails_does_not_count_against_the_rate() -> None:
    async def body(rig: Rig) -> None:
        project = limited(1)
        rig.runner.fail = LaunchFailed("chromium did not start")
        with pytest.raises(Unavailable):
            await rig.manager.create(project, SessionSpec())
        rig.runner.fail = None
        await rig.manager.create(project, SessionSpec())
        # The concurrency is checked first: at its limit, that is the refusal.
        full = limited(5, concurrency=1)
        with pytest.raises(ConcurrencyLimited):
            await rig.manager.create(full, SessionSpec())

    run(body)
