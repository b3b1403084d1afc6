"""The store on its own: migrations carry old data forward."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import text

from browserfleet.store import db
from browserfleet.store.repo import Store


def test_metadata_index_is_backfilled_for_sessions_stored_before_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    project, session = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()

    async def scenario() -> list[str]:
        engine = db.create_engine(url)
        async with engine.begin() as conn:  # a database as revision 0001 left it, with one session
            await conn.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0001"))
            await conn.execute(
                text("insert into projects values (:id, 'old', 'local', 300, 5, :now, :now)"),
                {"id": project, "now": now},
            )
            await conn.execute(
                text(
                    "insert into sessions (id, project_id, status, created_at, updated_at, started_at,"
                    " expires_at, keep_alive, region, user_metadata, create_params, proxy_bytes)"
                    " values (:id, :p, 'COMPLETED', :now, :now, :now, :now, 0, 'us-west-2', :meta, '{}', 0)"
                ),
                {"id": session, "p": project, "now": now, "meta": '{"order": {"status": "shipped"}, "n": 1}'},
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

    # Its own thread: the sync Playwright fixture may hold this thread's event loop.
    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(asyncio.run, scenario()).result() == [session]
