"""Reaping adopted processes from a thread never steals the exit status of asyncio's own children
(no Chromium: short-lived `sh` children)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import uvloop

from browserfleet.browsers import process


def reap_meanwhile(stop: threading.Event) -> threading.Thread:
    """`reap_adopted` in a tight loop in a thread, as `Browser.close` runs it while the loop goes on."""

    def loop() -> None:
        while not stop.is_set():
            process.reap_adopted()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_a_reaping_thread_leaves_asyncios_children_alone() -> None:
    async def main() -> list[int | None]:
        stop = threading.Event()
        thread = reap_meanwhile(stop)
        codes: list[int | None] = []
        try:
            for _ in range(5):
                with process.spawning() as spawned:
                    proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 7")
                    spawned(proc.pid)
                # The loop busy elsewhere (blocked on purpose): the child exits, and the thread sees it first.
                time.sleep(0.2)  # noqa: ASYNC251
                try:
                    # Stolen, the exit would never be seen (uvloop) or be reported as 255.
                    codes.append(await asyncio.wait_for(proc.wait(), 5))
                finally:
                    process.collected(proc.pid)
        finally:
            stop.set()
            thread.join()
        return codes

    with ThreadPoolExecutor(
        1
    ) as thread:  # a loop of its own: the sync Playwright fixture holds this thread's
        assert thread.submit(uvloop.run, main()).result() == [7] * 5


def test_a_dead_child_nobody_waits_for_is_reaped() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 0"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    process.reap_adopted()
    with pytest.raises(ChildProcessError):  # collected already
        os.waitpid(child.pid, os.WNOHANG)
    child.returncode = 0  # so that Popen does not wait for it in turn
