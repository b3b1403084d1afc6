"""The artifacts side of every session: starts capture when a session goes live, finishes it (downloads
saved, CDP log flushed, recordings queued for encoding) when it ends, and samples CPU and memory, and
the bytes its browser sent through upstream proxies (`proxyBytes`, written with each pass of samples and
once more at the end).

Owns, and ends: each session's capture and CDP log (at the session's end, even when finishing them
times out), the tasks that start captures, the sampler, and the Recordings (at `close()`, which the
server awaits at shutdown, after the sessions have ended).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from browserfleet.aio import Tasks
from browserfleet.artifacts.capture import SessionCapture
from browserfleet.artifacts.cdplog import CdpLog
from browserfleet.artifacts.layout import ArtifactRoot
from browserfleet.artifacts.recordings import Recordings
from browserfleet.browsers.sampler import TreeSampler
from browserfleet.sessions.manager import LiveSession
from browserfleet.store.models import Session, SessionSample
from browserfleet.store.repo import Store

log = logging.getLogger(__name__)

FINISH_TIMEOUT = 30.0  # seconds a session's capture may take to finish after the session ends


@dataclass(eq=False)
class Tracked:
    capture: SessionCapture
    cdp_log: CdpLog | None
    sampler: TreeSampler
    started: asyncio.Task[None] | None = None  # the capture's start (None once the service is closed)
    cpu: list[float] = field(default_factory=list)
    peak_memory: int = 0
    baselined: bool = False  # sampled once at the start: CPU counts from then, not from the pool
    proxy_bytes: int = 0  # as last written to the session's row


class Artifacts:
    def __init__(
        self,
        root: ArtifactRoot,
        store: Store,
        recordings: Recordings,
        sample_interval: float,
        disk_quota: int | None = None,
    ) -> None:
        self.disk_quota = disk_quota  # bytes of downloads and uploads each session may keep
        self.sample_interval = sample_interval
        self.root = root
        self.store = store
        self.recordings = recordings
        self.sessions: dict[str, Tracked] = {}
        self._tasks = Tasks("artifacts")
        self._sampling: asyncio.Task[None] | None = None
        self._sampler_lock = asyncio.Lock()  # samplers keep state: one pass at a time

    def offer_upload(self, session_id: str, stored: Path) -> bool:
        """Show an uploaded file to the session's running browser (read-only, in its uploads folder).

        A hard link of the kept copy: no second copy on disk, and the browser, whose uid does not own
        it, can read it but not change it. False when the session's browser is gone.
        """
        tracked = self.sessions.get(session_id)
        if tracked is None:
            return False
        shown = tracked.capture.browser.uploads_dir / stored.name
        shown.unlink(missing_ok=True)
        try:
            os.link(stored, shown)
        except OSError:
            shutil.copyfile(stored, shown)  # another filesystem
        shown.chmod(0o644)
        return True

    # -- SessionObserver -------------------------------------------------------------------------

    def started(self, live: LiveSession, row: Session) -> None:
        files = self.root.session(live.id)
        capture = SessionCapture(
            live.id,
            live.browser,
            files,
            self.store,
            live.spec.record_session,
            live.spec.log_session,
            self.disk_quota,
        )
        cdp_log = CdpLog(live.id, files.cdp_log, capture.page_index) if live.spec.log_session else None
        if cdp_log is not None:
            cdp_log.start()
        tracked = Tracked(capture, cdp_log, TreeSampler(live.browser.pid))
        tracked.started = self._tasks.spawn(self._start(tracked), f"capture-{live.id}")
        self.sessions[live.id] = tracked
        if self._sampling is None:
            self._sampling = self._tasks.spawn(self._sample_forever(), "sampler")

    async def _start(self, tracked: Tracked) -> None:
        await tracked.capture.start()  # first: a client's connect waits for it
        async with self._sampler_lock:
            await asyncio.to_thread(tracked.sampler.sample, False)  # CPU counts from here, not the pool
            tracked.baselined = True

    async def ended(self, live: LiveSession, row: Session) -> None:
        tracked = self.sessions.get(live.id)
        if tracked is None:
            return
        try:
            # Bounded: a hung browser must still be killed after this (the manager does it next).
            await asyncio.wait_for(self._finish(live.id, tracked, row), FINISH_TIMEOUT)
        except TimeoutError:
            log.error("session %s: capture did not finish in %.0f s", live.id, FINISH_TIMEOUT)
        finally:
            await self._abandon(tracked)  # after a finish, nothing is left to end
            # Only now: until the log is closed, readers flush it through `cdp_log()`.
            del self.sessions[live.id]

    async def _abandon(self, tracked: Tracked) -> None:
        """End whatever of a session's capture is still running (a finish cut short)."""
        if tracked.started is not None:
            tracked.started.cancel()
        await tracked.capture.close()
        if tracked.cdp_log is not None:
            await tracked.cdp_log.close()

    async def _finish(self, session_id: str, tracked: Tracked, row: Session) -> None:
        if tracked.started is not None:
            await asyncio.wait([tracked.started])  # its failure, if any, is the task owner's to log
        await self._sample({session_id: tracked})  # a last sample, so even a short session has one
        pages = await tracked.capture.stop(row.ended_at or datetime.now(UTC))
        if tracked.cdp_log is not None:
            await tracked.cdp_log.close()
        for page in pages:
            self.recordings.encode_later(session_id, page.index)

    # -- for the gateway and the API -------------------------------------------------------------

    def capture(self, session_id: str) -> SessionCapture | None:
        tracked = self.sessions.get(session_id)
        return None if tracked is None else tracked.capture

    def cdp_log(self, session_id: str) -> CdpLog | None:
        tracked = self.sessions.get(session_id)
        return None if tracked is None else tracked.cdp_log

    async def close(self) -> None:
        """At shutdown, once every session has ended: stop sampling and encoding."""
        await self._tasks.close()
        for session_id, tracked in list(self.sessions.items()):  # none, unless a session's end was cut
            await self._abandon(tracked)
            self.sessions.pop(session_id, None)
        await self.recordings.close()

    # -- CPU and memory --------------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sample_interval)
            try:
                await self._sample({sid: t for sid, t in self.sessions.items() if t.baselined})
            except Exception:
                log.exception("sampling failed")

    async def _sample(self, sessions: dict[str, Tracked]) -> None:
        async with self._sampler_lock:
            at = datetime.now(UTC)
            taken = await asyncio.to_thread(
                lambda: {sid: tracked.sampler.sample() for sid, tracked in sessions.items()}
            )
        rows = []
        for sid, sample in taken.items():
            if sample is None:
                continue
            tracked = sessions[sid]
            tracked.cpu.append(sample.cpu_percent)
            tracked.peak_memory = max(tracked.peak_memory, sample.memory_bytes)
            rows.append(
                SessionSample(
                    session_id=sid, at=at, cpu_percent=sample.cpu_percent, memory_bytes=sample.memory_bytes
                )
            )
        proxied = _proxy_bytes(sessions)
        if rows or proxied:
            totals = {
                row.session_id: (
                    round(statistics.fmean(sessions[row.session_id].cpu)),
                    sessions[row.session_id].peak_memory,
                )
                for row in rows
            }
            await self.store.add_samples(rows, totals, proxied)
            for sid, count in proxied.items():
                sessions[sid].proxy_bytes = count


def _proxy_bytes(sessions: dict[str, Tracked]) -> dict[str, int]:
    """Each session's bytes through upstream proxies, where they grew since they were last written."""
    grown = {}
    for sid, tracked in sessions.items():
        egress = tracked.capture.browser.egress
        if egress is not None and egress.proxy_bytes > tracked.proxy_bytes:
            grown[sid] = egress.proxy_bytes
    return grown
