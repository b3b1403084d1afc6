"""`aio.Tasks`: background work with an owner (no Chromium)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from browserfleet.aio import Tasks
from harness.server import run_async


def test_join_waits_for_tasks_spawned_while_waiting() -> None:
    done: list[str] = []

    async def main() -> None:
        tasks = Tasks("t")

        async def second() -> None:
            await asyncio.sleep(0.01)
            done.append("second")

        async def first() -> None:
            await asyncio.sleep(0.01)
            tasks.spawn(second(), "second")
            done.append("first")

        tasks.spawn(first(), "first")
        await tasks.join()
        assert len(tasks) == 0

    run_async(main)
    assert done == ["first", "second"]


def test_close_cancels_and_refuses_new_work() -> None:
    async def main() -> list[str]:
        tasks = Tasks("t")
        seen: list[str] = []

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        tasks.spawn(forever(), "forever")
        await asyncio.sleep(0)
        await tasks.close()
        late = forever()
        assert tasks.spawn(late, "late") is None
        assert late.cr_frame is None  # closed, never run
        return seen

    assert run_async(main) == ["cancelled"]


def test_a_failing_task_is_logged_by_name(caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        tasks = Tasks("owner")
        tasks.spawn(boom(), "exploder")
        await tasks.join()

    with caplog.at_level(logging.ERROR, logger="browserfleet.aio"):
        run_async(main)
    assert any("owner:exploder" in r.getMessage() and r.exc_info for r in caplog.records)
