"""The store on its own, on SQLite and on PostgreSQL: migrations carry old data forward and run both
ways, every kind of row reads back as written, and what SQLite takes PostgreSQL takes too."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from conftest import each_database

from browserfleet.store import db
from browserfleet.store.models import (
    ApiKey,
    Download,
    Project,
    Session,
    SessionPage,
    SessionSample,
    UTCDateTime,
)
from browserfleet.store.repo import Store
from harness.server import run_async

T = TypeVar("T")
NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def on_store(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    """`work` on a store opened (and so migrated) on `url`, on a thread of its own (the sync Playwright
    fixture may hold this thread's event loop)."""

    async def run() -> T:
        store = await Store.open(url)
        try:
            return await work(store)
        finally:
            await store.close()

    return run_async(run)


def project(**fields: Any) -> Project:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": "p",
        "owner_id": "local",
        "default_timeout": 300,
        "concurrency": 5,
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return Project(**values)


def session(project_id: str, **fields: Any) -> Session:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "status": "RUNNING",
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": NOW,
        "expires_at": NOW + timedelta(minutes=5),
        "keep_alive": False,
        "region": "us-west-2",
        "create_params": {},
        **fields,
    }
    return Session(**values)


def page(session_id: str, index: int, **fields: Any) -> SessionPage:
    values: dict[str, Any] = {
        "session_id": session_id,
        "page_index": index,
        "target_id": "A" * 32,
        "url": "about:blank",
        "title": "",
        "opened_at": NOW,
        "recording": "RECORDING",
        "frame_count": 0,
        "mp4_status": "NOT_REQUESTED",
        **fields,
    }
    return SessionPage(**values)


@each_database("database_url")
def test_metadata_index_is_backfilled_for_sessions_stored_before_it(database_url: str) -> None:
    url = database_url
    project, session = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    # The tables as revision 0001 made them (typed, so each database gets values in its own format).
    projects = sa.table(
        "projects",
        *(sa.column(c) for c in ("id", "name", "owner_id", "default_timeout", "concurrency")),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    sessions = sa.table(
        "sessions",
        *(sa.column(c) for c in ("id", "project_id", "status", "keep_alive", "region", "proxy_bytes")),
        *(sa.column(c, UTCDateTime()) for c in ("created_at", "updated_at", "started_at", "expires_at")),
        sa.column("user_metadata", sa.JSON()),
        sa.column("create_params", sa.JSON()),
    )

    async def scenario() -> list[str]:
        engine = db.create_engine(url)
        async with engine.begin() as conn:  # a database as revision 0001 left it, with one session
            await conn.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0001"))
            await conn.execute(
                projects.insert().values(
                    id=project,
                    name="old",
                    owner_id="local",
                    default_timeout=300,
                    concurrency=5,
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                sessions.insert().values(
                    id=session,
                    project_id=project,
                    status="COMPLETED",
                    created_at=now,
                    updated_at=now,
                    started_at=now,
                    expires_at=now,
                    keep_alive=False,
                    region="us-west-2",
                    user_metadata={"order": {"status": "shipped"}, "n": 1},
                    create_params={},
                    proxy_bytes=0,
                )
            )
        await engine.dispose()
        store = await Store.open(url)  # migrates to the newest revision
        try:
            found = await store.sessions(project, metadata=(("order", "status"), "shipped"))
            none = await store.sessions(project, metadata=(("n",), "1"))
            assert none == []
            return [row.id for row in found]
        finally:
            await store.close()

    assert run_async(scenario) == [session]


@each_database("database_url")
def test_migrations_run_down_to_nothing_and_up_again(database_url: str) -> None:
    async def tables() -> set[str]:
        engine = db.create_engine(database_url)
        try:
            async with engine.begin() as conn:
                return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    async def migrate(target: str, down: bool) -> None:
        engine = db.create_engine(database_url)
        step = command.downgrade if down else command.upgrade
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: step(db._alembic_config(c), target))
        finally:
            await engine.dispose()

    run_async(lambda: migrate("head", down=False))
    assert {"projects", "sessions", "session_metadata", "downloads", "session_samples"} <= run_async(tables)
    run_async(lambda: migrate("base", down=True))
    assert run_async(tables) <= {"alembic_version"}
    run_async(lambda: migrate("head", down=False))
    p = project()
    assert on_store(database_url, lambda store: store.add_project(p)).id == p.id


@each_database("database_url")
def test_every_kind_of_row_reads_back_as_written(database_url: str) -> None:
    async def scenario(store: Store) -> None:
        p = await store.add_project(project(name="shop"))
        await store.add_key(
            ApiKey(key_hash="h" * 64, prefix="bf_abcdefgh", project_id=p.id, name="ci", created_at=NOW)
        )
        metadata = {"z": "last key first", "order": {"status": "shipped", "n": 5, "ok": True}}
        s = session(p.id, user_metadata=metadata, create_params={"userMetadata": metadata, "timeout": 60.5})
        await store.add_session(s)

        row = await store.session(s.id)
        assert row is not None and row.created_at == NOW and row.created_at.tzinfo is not None
        assert row.user_metadata == metadata and row.create_params["timeout"] == 60.5
        # JSON is kept as written, key order too (PostgreSQL's jsonb would sort the keys).
        assert list(row.user_metadata or {}) == ["z", "order"]
        assert await store.session(s.id, project_id=str(uuid.uuid4())) is None
        assert await store.session("not-a-uuid-" + "x" * 100) is None
        assert [r.id for r in await store.sessions(p.id, metadata=(("order", "status"), "shipped"))] == [s.id]
        assert await store.sessions(p.id, metadata=(("order", "n"), "5")) == []
        assert [r.id for r in await store.sessions(p.id, status="RUNNING")] == [s.id]
        assert [r.id for r in await store.live_sessions()] == [s.id]

        await store.update_session(s.id, browser_pid=4_000_000, browser_profile="/data/profiles/b-1")
        assert (await store.session(s.id)).browser_pid == 4_000_000  # type: ignore[union-attr]
        await store.add_samples(
            [SessionSample(session_id=s.id, at=NOW, cpu_percent=12.5, memory_bytes=6 * 2**30)],
            {s.id: (12, 6 * 2**30)},
        )
        assert [(x.cpu_percent, x.memory_bytes) for x in await store.samples(s.id)] == [(12.5, 6 * 2**30)]
        await store.add_page(page(s.id, 0, title="tickets"))
        await store.update_page(s.id, 0, frame_count=3, start_ms=1_770_000_000_000)
        assert (await store.page(s.id, 0)).start_ms == 1_770_000_000_000  # type: ignore[union-attr]
        assert [x.title for x in await store.pages(s.id)] == ["tickets"]

        for i, (name, size) in enumerate([("a.txt", 10), ("b.pdf", 5 * 2**40)]):
            await store.add_download(
                Download(
                    id=str(uuid.uuid4()),
                    session_id=s.id,
                    filename=name,
                    stored_name=f"{name}-{i}",
                    mime_type="text/plain",
                    size=size,
                    checksum="0" * 64,
                    url="http://127.0.0.1/",
                    created_at=NOW + timedelta(seconds=i),
                )
            )
        # As the API filters them: sizes compared as doubles, times as aware datetimes.
        big, total = await store.downloads(s.id, [Download.size >= 10.5])
        assert [d.filename for d in big] == ["b.pdf"] and total == 1
        later, _ = await store.downloads(s.id, [Download.created_at > NOW + timedelta(microseconds=1)])
        assert [d.filename for d in later] == ["b.pdf"]
        first, total = await store.downloads(s.id, limit=1, offset=0)
        assert [d.filename for d in first] == ["a.txt"] and total == 2

        assert await store.end_session(s.id, "COMPLETED", NOW + timedelta(minutes=2), "released")
        assert not await store.end_session(s.id, "ERROR", NOW + timedelta(minutes=3), "again")
        ended = await store.session(s.id)
        assert ended is not None and (ended.status, ended.ended_at) == (
            "COMPLETED",
            NOW + timedelta(minutes=2),
        )
        assert [(x.session_id, x.page_index) for x in await store.pages_to_finish()] == [(s.id, 0)]
        assert await store.browser_minutes(p.id, NOW) == 2
        assert await store.proxy_bytes(p.id) == 0
        assert sorted(await store.delete_downloads(s.id)) == ["a.txt-0", "b.pdf-1"]

        assert await store.secret("k", lambda: "made") == "made"
        assert await store.secret("k", lambda: "not again") == "made"
        assert await store.revoke_key("h" * 64, NOW)
        assert not await store.revoke_key("h" * 64, NOW)
        assert [k.revoked_at for k in await store.keys(p.id)] == [NOW]
        assert [k.name for k in await store.keys_with_prefix("bf_abcdefgh")] == ["ci"]

    on_store(database_url, scenario)


@each_database("database_url")
def test_what_sqlite_stores_postgresql_stores(database_url: str) -> None:
    """SQLite enforces no VARCHAR length nor INTEGER width: names and limits the CLI and the settings
    accept, and text pages hand in, must not fail a write on PostgreSQL."""
    on_postgres = database_url.startswith("postgresql")

    async def scenario(store: Store) -> None:
        p = await store.add_project(project(name="n" * 300, concurrency=2**40))
        updated = await store.update_project(p.id, name="m" * 1000, concurrency=2**62)
        assert updated is not None
        again = await store.project(p.id)
        assert again is not None and (again.name, again.concurrency) == ("m" * 1000, 2**62)
        await store.add_key(
            ApiKey(key_hash="k" * 64, prefix="bf_x", project_id=p.id, name="k" * 500, created_at=NOW)
        )
        assert [k.name for k in await store.keys(p.id)] == ["k" * 500]

        # A page may title itself with a NUL; PostgreSQL's text cannot hold one, so it gets U+FFFD.
        s = session(p.id, user_metadata={"k": "a\x00b"})
        await store.add_session(s)
        await store.add_page(page(s.id, 0, title="a\x00b"))
        await store.end_session(s.id, "ERROR", NOW, "browser said \x00")
        stored = "a\ufffdb" if on_postgres else "a\x00b"
        assert (await store.page(s.id, 0)).title == stored  # type: ignore[union-attr]
        assert (await store.session(s.id)).user_metadata == {"k": "a\x00b"}  # type: ignore[union-attr]
        assert [r.id for r in await store.sessions(p.id, metadata=(("k",), "a\x00b"))] == [s.id]

    on_store(database_url, scenario)


@each_database("database_url")
def test_times_are_stored_as_the_instant_they_name(database_url: str) -> None:
    """A time with another offset is the same instant in UTC; a naive one is UTC already."""
    plus_five = NOW.astimezone(timezone(timedelta(hours=5)))

    async def scenario(store: Store) -> None:
        p = await store.add_project(project())
        s = session(p.id)
        await store.add_session(s)
        await store.update_session(s.id, updated_at=plus_five, expires_at=NOW.replace(tzinfo=None))
        row = await store.session(s.id)
        assert row is not None
        assert row.updated_at == NOW and row.updated_at.utcoffset() == timedelta(0)
        assert row.expires_at == NOW
        await store.add_download(
            Download(
                id=str(uuid.uuid4()),
                session_id=s.id,
                filename="f",
                stored_name="f-1",
                mime_type="text/plain",
                size=1,
                checksum="0" * 64,
                created_at=NOW,
            )
        )
        # Lookups compare instants too.
        around = [plus_five - timedelta(seconds=1), plus_five + timedelta(seconds=1)]
        found, _ = await store.downloads(s.id, [Download.created_at.between(*around)])
        assert [d.filename for d in found] == ["f"]
        assert await store.downloads(s.id, [Download.created_at > plus_five]) == ([], 0)

    on_store(database_url, scenario)


@each_database("database_url")
def test_processes_starting_together_all_migrate(database_url: str) -> None:
    """A server and CLI commands may start at once on a new database: each finds the schema made."""
    script = (
        "import asyncio, sys\n"
        "from browserfleet.store.repo import Store\n"
        "async def main():\n"
        "    await (await Store.open(sys.argv[1])).close()\n"
        "asyncio.run(main())\n"
    )
    starting = [
        subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in starting]
    failed = [e.strip().splitlines()[-3:] for e in errors if e]
    assert [proc.returncode for proc in starting] == [0] * 6, failed
