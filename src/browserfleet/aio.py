"""Structured concurrency for work that outlives the call that starts it.

Every background task belongs to a `Tasks` owner, and the owner's `close()` (or `join()`) is awaited by
whoever owns the owner, so no task is left running when a component stops and no exception vanishes:
a task that fails is logged with its name. Where the scope is lexical, use `asyncio.TaskGroup` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Tasks:
    """A set of background tasks with one owner.

    Guarantees: a spawned task is referenced until it finishes (the loop keeps only weak references);
    an exception other than cancellation is logged once, naming the task; `join()` returns only when no
    task is left, including tasks spawned while it waited; `close()` cancels what is left, then joins.
    After `close()`, `spawn()` refuses new work (the coroutine is closed, never run)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T] | None:
        """Run `coro` in the background; None (and `coro` closed) once the owner is closed."""
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s failed", task.get_name(), exc_info=exc)

    async def join(self) -> None:
        """Wait for every task, including those spawned meanwhile."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self) -> None:
        """Refuse new work, cancel what runs, and wait until it has stopped."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await self.join()
