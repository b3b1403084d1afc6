"""Turning recorded tabs into videos after their session ends: one encode at a time, each in a process
of its own at low priority, resumed after a restart from the frame logs on disk.

Every encode and export is a task of this object's own; `close()` ends them (what was cut short is
resumed at the next start), and the artifacts service, which owns the Recordings, awaits it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime

from browserfleet.aio import Tasks
from browserfleet.artifacts.layout import ArtifactRoot
from browserfleet.artifacts.video import mp4_from_hls
from browserfleet.browsers import process
from browserfleet.store.repo import Store

log = logging.getLogger(__name__)


class Recordings:
    def __init__(self, root: ArtifactRoot, store: Store) -> None:
        self.root = root
        self.store = store
        self._slot = asyncio.Semaphore(1)  # encoding is CPU-bound: one at a time on a small machine
        self._tasks = Tasks("recordings")
        self._jobs: dict[tuple[str, int], asyncio.Task[None]] = {}  # the encode of each tab, while it runs

    def encode_later(self, session_id: str, page_index: int) -> asyncio.Task[None] | None:
        """The tab's encode, started now unless it runs already; None once closed (the next start does it)."""
        key = (session_id, page_index)
        job = self._jobs.get(key)
        if job is None or job.done():
            job = self._tasks.spawn(self._encode(session_id, page_index), f"encode-{session_id}-{page_index}")
            if job is None:
                return None
            self._jobs[key] = job
            job.add_done_callback(lambda _t: self._jobs.pop(key, None) if self._jobs.get(key) is _t else None)
        return job

    async def wait(self, session_id: str, page_index: int) -> None:
        job = self._jobs.get((session_id, page_index))
        if job is not None:
            await asyncio.shield(job)

    async def resume(self) -> int:
        """After a restart: encode what was recorded or being encoded, finish MP4s that were asked for."""
        count = 0
        for page in await self.store.pages_to_finish():
            if page.recording in ("RECORDING", "ENCODING"):
                self.encode_later(page.session_id, page.page_index)
            else:
                self.export_later(page.session_id, page.page_index)
            count += 1
        return count

    def export_later(self, session_id: str, page_index: int) -> None:
        self._tasks.spawn(self._export(session_id, page_index), f"mp4-{session_id}-{page_index}")

    async def close(self) -> None:
        """Stop encoding: what was cut short is resumed at the next start (the frame logs stay)."""
        await self._tasks.close()

    async def _run(self, *args: str) -> dict[str, int]:
        async with self._slot:
            with process.spawning() as spawned:  # asyncio collects its exit, not `reap_adopted`
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "browserfleet.artifacts.encode",
                    *args,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    preexec_fn=process.die_with_parent,
                )
                spawned(proc.pid)
            try:
                out, err = await proc.communicate()
            except BaseException:
                proc.kill()
                await proc.wait()
                raise
            finally:
                process.collected(proc.pid)
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"encoder exited with {proc.returncode}")
        result: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    async def _encode(self, session_id: str, page_index: int) -> None:
        files = self.root.session(session_id)
        page = await self.store.page(session_id, page_index)
        if page is None:
            return
        if page.end_ms is None:  # recorded by a server that stopped before it could close the tab
            session = await self.store.session(session_id)
            ended = session.ended_at if session is not None and session.ended_at else datetime.now(UTC)
            end_ms = int(ended.timestamp() * 1000)
        else:
            end_ms = page.end_ms
        args = [str(files.frames(page_index)), str(files.hls(page_index)), str(end_ms)]
        if page.mp4_status == "PENDING":
            args.append(str(files.mp4(page_index)))
        try:
            result = await self._run(*args)
        except (OSError, RuntimeError, ValueError) as exc:
            log.error("session %s tab %d: encoding failed: %s", session_id, page_index, exc)
            await self.store.update_page(session_id, page_index, recording="FAILED")
            return
        if not result.get("frames"):
            await self.store.update_page(session_id, page_index, recording="EMPTY", frame_count=0)
            return
        fields: dict[str, object] = {
            "recording": "READY",
            "frame_count": result["frames"],
            "start_ms": result["start_ms"],
            "end_ms": result["end_ms"],
        }
        if len(args) > 3:
            fields |= {"mp4_status": "COMPLETED", "mp4_completed_at": datetime.now(UTC)}
        await self.store.update_page(session_id, page_index, **fields)
        files.frames(page_index).unlink(missing_ok=True)  # the video holds every frame now

    async def _export(self, session_id: str, page_index: int) -> None:
        """An MP4 of a tab, once its video exists (waits for an encode in progress)."""
        await self.wait(session_id, page_index)
        page = await self.store.page(session_id, page_index)
        if page is None:
            return
        frames = self.root.session(session_id).frames(page_index)
        retry = page.recording == "FAILED" and await asyncio.to_thread(frames.exists)
        if page.recording in ("RECORDING", "ENCODING") or retry:
            # A failed encode keeps its frame log: asking for the MP4 again retries it, as the
            # contract's "re-POST retries failures" says. The encode picks up the PENDING export.
            job = self.encode_later(session_id, page_index)
            if job is not None:
                await job
            return
        if page.recording != "READY":
            await self.store.update_page(session_id, page_index, mp4_status="FAILED")
            return
        files = self.root.session(session_id)
        try:
            async with self._slot:
                await asyncio.to_thread(mp4_from_hls, files.hls(page_index), files.mp4(page_index))
        except Exception as exc:
            log.error("session %s tab %d: MP4 export failed: %s", session_id, page_index, exc)
            await self.store.update_page(session_id, page_index, mp4_status="FAILED")
            return
        await self.store.update_page(
            session_id, page_index, mp4_status="COMPLETED", mp4_completed_at=datetime.now(UTC)
        )
