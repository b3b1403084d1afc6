"""What the server itself watches in a session's browser, over its own CDP connection: the tabs (in
the order they open: the contract's pageIds), downloads (moved out of the profile into the session's
artifacts as `name-<unix ms>.ext`), each tab's screencast (the recording) and its console messages
and network requests (for the Inspector).

Downloads count against the session's disk quota (downloads and uploads together): a download whose
size, once known or as it grows, would take the session past it is cancelled in the browser, and a
completed one that would is deleted instead of saved.

It never touches session state and never sits on a client's path: clients' connections are spliced
by the gateway; this is a separate connection to the same browser.

The work events start (a tab opened or closed, a download to save or cancel) runs in tasks of the
capture's own: `stop()` waits for them, `close()` (a stop cut short) cancels them; either closes the
CDP connection, and the artifacts service awaits one of them for every capture it started.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import re
import stat
import time
import uuid
from collections.abc import Collection, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from browserfleet.aio import Tasks
from browserfleet.artifacts.layout import SessionFiles
from browserfleet.artifacts.video import FrameLog
from browserfleet.browsers.cdp import CdpConnection
from browserfleet.browsers.launcher import Browser
from browserfleet.errors import CdpError
from browserfleet.store.models import Download, SessionPage
from browserfleet.store.repo import Store

log = logging.getLogger(__name__)
DOWNLOAD_GRACE = 10.0  # seconds a session's end waits for downloads in progress

FRAME_INTERVAL = 0.1  # seconds: a tab is recorded at up to 10 frames a second, and only when it changes
SCREENCAST = {"format": "jpeg", "quality": 60, "maxWidth": 1280, "maxHeight": 720}
MAX_TEXT = 2000  # characters of a console message or URL kept
_UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\]")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class Page:
    index: int
    target_id: str
    url: str = ""
    title: str = ""
    cdp_session: str | None = None
    frames: FrameLog | None = None
    first_frame_ms: int | None = None
    last_frame: float = 0.0
    closed_ms: int | None = None
    console: IO[str] | None = None
    network: IO[str] | None = None
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)


class SessionCapture:
    def __init__(
        self,
        session_id: str,
        browser: Browser,
        files: SessionFiles,
        store: Store,
        record: bool,
        log_pages: bool,
        disk_quota: int | None = None,
    ) -> None:
        self.disk_quota = disk_quota  # bytes; None: no quota
        self.session_id = session_id
        self.browser = browser
        self.files = files
        self.store = store
        self.record = record
        self.log_pages = log_pages
        self.pages: dict[str, Page] = {}  # by target id
        self._by_session: dict[str, Page] = {}  # by our CDP session id on the tab
        self._downloads: dict[str, dict[str, Any]] = {}  # by guid, from downloadWillBegin
        self._no_downloads = asyncio.Event()  # set while no download is in progress
        self._reserved: dict[str, int] = {}  # by guid: bytes a download not saved yet holds of the quota
        self._over_quota: set[str] = set()  # guids cancelled for the quota
        self._contexts: dict[str, str] = {}  # browser context of each target, by target id
        self._saving = asyncio.Lock()  # a quota check and the move it allows, one download at a time
        self._tasks = Tasks(f"capture-{session_id}")
        self._cdp: CdpConnection | None = None
        self._stopped = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def page_index(self, target_id: str) -> int | None:
        page = self.pages.get(target_id)
        return None if page is None else page.index

    async def open_tabs(self) -> list[dict[str, Any]]:
        """The browser's open tabs now (CDP TargetInfo), in the order they opened."""
        await asyncio.shield(self.ready)
        if self._cdp is None:
            return []
        result = await self._cdp.send("Target.getTargets")
        tabs = [info for info in result.get("targetInfos", []) if info.get("type") == "page"]
        order = {target: page.index for target, page in self.pages.items()}
        return sorted(tabs, key=lambda info: order.get(info.get("targetId", ""), len(order)))

    # -- start and stop --------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            cdp = await CdpConnection.open(self.browser)
            self._cdp = cdp
            handlers = {
                "Target.targetCreated": self._target_created,
                "Target.targetInfoChanged": self._target_changed,
                "Target.targetDestroyed": self._target_destroyed,
                "Browser.downloadWillBegin": self._download_begins,
                "Browser.downloadProgress": self._download_progress,
                "Page.screencastFrame": self._frame,
                "Runtime.consoleAPICalled": self._console,
                "Runtime.exceptionThrown": self._exception,
                "Network.requestWillBeSent": self._request,
                "Network.responseReceived": self._response,
                "Network.loadingFinished": self._finished,
                "Network.loadingFailed": self._failed,
            }
            for method, handler in handlers.items():
                cdp.on(method, handler)
            self.files.downloads.mkdir(parents=True, exist_ok=True)
            # Default context; contexts clients create get their paths from the gateway's policy. Events
            # reach this connection whoever set the behaviour, with the path the file landed at.
            await cdp.send(
                "Browser.setDownloadBehavior",
                {
                    "behavior": "allowAndName",
                    "downloadPath": self.browser.seen(self.browser.downloads_dir),
                    "eventsEnabled": True,
                },
            )
            await cdp.send("Target.setDiscoverTargets", {"discover": True})
        except (CdpError, OSError, TimeoutError) as exc:
            log.warning("session %s: capture unavailable: %s", self.session_id, exc)
        finally:
            if not self.ready.done():
                self.ready.set_result(None)

    async def stop(self, ended: datetime) -> list[Page]:
        """Finish: downloads in hand saved, recordings and logs closed. The recorded pages are returned.

        Downloads still arriving get up to DOWNLOAD_GRACE seconds to finish: a client that clicks a link
        and leaves at once still finds the file in the session's downloads.
        """
        self._stopped = True
        if not self.ready.done():
            self.ready.set_result(None)
        if self._downloads and self._cdp is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_downloads.wait(), DOWNLOAD_GRACE)
        await self._tasks.join()
        if self._cdp is not None:
            await self._cdp.close()
        await self._tasks.join()  # downloads that completed while the connection was closing
        end_ms = int(ended.timestamp() * 1000)
        for page in self.pages.values():
            if page.closed_ms is None:  # tabs closed earlier were stored as closed then
                await self._close_page(page, end_ms)
        return [page for page in self.pages.values() if page.frames is not None]

    async def _close_page(self, page: Page, end_ms: int) -> None:
        frames = 0
        if page.frames is not None:
            frames = page.frames.count
            page.frames.close()
        for stream in (page.console, page.network):
            if stream is not None:
                stream.close()
        page.console = page.network = None
        page.requests.clear()
        status = "OFF" if not self.record else ("ENCODING" if frames else "EMPTY")
        await self.store.update_page(
            self.session_id,
            page.index,
            url=page.url,
            title=page.title,
            closed_at=datetime.fromtimestamp(end_ms / 1000, UTC),
            recording=status,
            frame_count=frames,
            start_ms=page.first_frame_ms,
            end_ms=end_ms,
        )

    async def close(self) -> None:
        """End what a `stop()` cut short (or never called) left running: the work in progress is
        cancelled, the connection closed. Safe after `stop()`."""
        self._stopped = True
        if not self.ready.done():
            self.ready.set_result(None)
        await self._tasks.close()
        if self._cdp is not None:
            await self._cdp.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coro, name)

    # -- tabs ------------------------------------------------------------------------------------

    def _target_created(self, params: dict[str, Any], _session: str | None) -> None:
        info = params.get("targetInfo", {})
        if info.get("browserContextId"):
            self._contexts[info.get("targetId", "")] = info["browserContextId"]
        if info.get("type") != "page" or self._stopped or info.get("targetId") in self.pages:
            return
        page = Page(len(self.pages), info["targetId"], info.get("url", ""), info.get("title", ""))
        self.pages[page.target_id] = page
        self._spawn(self._open_page(page), f"open-tab-{page.index}")

    async def _open_page(self, page: Page) -> None:
        await self.store.add_page(
            SessionPage(
                session_id=self.session_id,
                page_index=page.index,
                target_id=page.target_id,
                url=page.url,
                title=page.title,
                opened_at=datetime.now(UTC),
                recording="RECORDING" if self.record else "OFF",
                frame_count=0,
                mp4_status="NOT_REQUESTED",
            )
        )
        if not (self.record or self.log_pages) or self._cdp is None:
            return
        cdp = self._cdp
        try:
            attached = await cdp.send("Target.attachToTarget", {"targetId": page.target_id, "flatten": True})
            page.cdp_session = attached["sessionId"]
            self._by_session[attached["sessionId"]] = page
            if self.log_pages:
                self.files.page_dir(page.index).mkdir(parents=True, exist_ok=True)
                # backslashreplace: a lone surrogate a page logs is written as its JSON escape.
                options: dict[str, Any] = {"buffering": 1, "encoding": "utf-8", "errors": "backslashreplace"}
                page.console = self.files.console_log(page.index).open("a", **options)
                page.network = self.files.network_log(page.index).open("a", **options)
                await cdp.send("Runtime.enable", session_id=page.cdp_session)
                await cdp.send("Network.enable", session_id=page.cdp_session)
            if self.record:
                page.frames = FrameLog(self.files.frames(page.index))
                await cdp.send("Page.startScreencast", SCREENCAST, session_id=page.cdp_session)
        except (CdpError, KeyError) as exc:
            log.debug("session %s: tab %s not captured: %s", self.session_id, page.target_id, exc)

    def _target_changed(self, params: dict[str, Any], _session: str | None) -> None:
        info = params.get("targetInfo", {})
        page = self.pages.get(info.get("targetId", ""))
        if page is not None:
            page.url, page.title = info.get("url", page.url), info.get("title", page.title)

    def _target_destroyed(self, params: dict[str, Any], _session: str | None) -> None:
        page = self.pages.get(params.get("targetId", ""))
        if page is not None and page.closed_ms is None and not self._stopped:
            page.closed_ms = now_ms()
            self._spawn(self._close_page(page, page.closed_ms), f"close-tab-{page.index}")

    # -- recording -------------------------------------------------------------------------------

    def _frame(self, params: dict[str, Any], session: str | None) -> None:
        page = self._by_session.get(session or "")
        if page is None or page.frames is None or page.closed_ms is not None or self._cdp is None:
            return
        stamp = now_ms()
        page.frames.append(stamp, base64.b64decode(params.get("data", "")))
        if page.first_frame_ms is None:
            page.first_frame_ms = stamp
        # Acknowledging paces Chromium: the next frame comes only after the ack, so a frame rate cap
        # costs nothing, and a page that does not change sends nothing at all.
        now = time.monotonic()
        delay = max(0.0, FRAME_INTERVAL - (now - page.last_frame))
        page.last_frame = now + delay
        ack = {"sessionId": params.get("sessionId")}
        asyncio.get_running_loop().call_later(
            delay, self._cdp.send_soon, "Page.screencastFrameAck", ack, session
        )

    # -- console and network, for the Inspector ----------------------------------------------------

    def _console(self, params: dict[str, Any], session: str | None) -> None:
        page = self._by_session.get(session or "")
        if page is None or page.console is None:
            return
        text = " ".join(_describe(arg) for arg in params.get("args", []))[:MAX_TEXT]
        _write(
            page.console,
            {"t": int(params.get("timestamp", now_ms())), "level": params.get("type"), "text": text},
        )

    def _exception(self, params: dict[str, Any], session: str | None) -> None:
        page = self._by_session.get(session or "")
        if page is None or page.console is None:
            return
        details = params.get("exceptionDetails", {})
        text = str(details.get("exception", {}).get("description") or details.get("text", ""))[:MAX_TEXT]
        _write(
            page.console, {"t": int(params.get("timestamp", now_ms())), "level": "exception", "text": text}
        )

    def _request(self, params: dict[str, Any], session: str | None) -> None:
        page = self._by_session.get(session or "")
        if page is None or page.network is None:
            return
        request = params.get("request", {})
        page.requests[params.get("requestId", "")] = {
            "t": int(params.get("wallTime", time.time()) * 1000),
            "start": params.get("timestamp", 0.0),
            "method": request.get("method"),
            "url": str(request.get("url", ""))[:MAX_TEXT],
            "type": params.get("type"),
        }

    def _response(self, params: dict[str, Any], session: str | None) -> None:
        page = self._by_session.get(session or "")
        entry = None if page is None else page.requests.get(params.get("requestId", ""))
        if entry is not None:
            response = params.get("response", {})
            entry["status"] = response.get("status")
            entry["mimeType"] = response.get("mimeType")

    def _finished(self, params: dict[str, Any], session: str | None) -> None:
        self._request_done(params, session, {"bytes": params.get("encodedDataLength")})

    def _failed(self, params: dict[str, Any], session: str | None) -> None:
        self._request_done(params, session, {"error": params.get("errorText")})

    def _request_done(self, params: dict[str, Any], session: str | None, extra: dict[str, Any]) -> None:
        page = self._by_session.get(session or "")
        if page is None or page.network is None:
            return
        entry = page.requests.pop(params.get("requestId", ""), None)
        if entry is None:
            return
        start = entry.pop("start")
        entry["durationMs"] = round((params.get("timestamp", start) - start) * 1000, 1)
        _write(page.network, {**entry, **extra})

    # -- downloads -------------------------------------------------------------------------------

    def downloads_in_flight(self) -> int:
        """Bytes of the quota held by downloads in progress or completed and not saved yet."""
        return sum(self._reserved.values())

    def _download_begins(self, params: dict[str, Any], _session: str | None) -> None:
        self._downloads[params.get("guid", "")] = params
        self._no_downloads.clear()
        self._reserved[params.get("guid", "")] = 0

    def _download_progress(self, params: dict[str, Any], _session: str | None) -> None:
        guid = params.get("guid", "")
        state = params.get("state")
        if state == "canceled":
            self._downloads.pop(guid, None)
            self._reserved.pop(guid, None)
            self._over_quota.discard(guid)
        elif state == "completed" and isinstance(params.get("filePath"), str):
            begun = self._downloads.pop(guid, {})
            landed = self._landed(params["filePath"])
            if landed is None:
                self._reserved.pop(guid, None)
            elif guid in self._over_quota:  # finished before the cancel reached it
                self._over_quota.discard(guid)
                self._reserved.pop(guid, None)
                self._spawn(asyncio.to_thread(landed.unlink, missing_ok=True), f"drop-{guid}")
            else:
                self._spawn(self._save_download(guid, landed, begun), f"save-{guid}")
        elif state == "inProgress" and self.disk_quota is not None and guid not in self._over_quota:
            # The whole size when the server announced it, else what has arrived so far.
            self._reserved[guid] = max(
                int(params.get("receivedBytes") or 0), int(params.get("totalBytes") or 0)
            )
            if stored_bytes(self.files) + self.downloads_in_flight() > self.disk_quota:
                self._over_quota.add(guid)
                self._reserved.pop(guid, None)
                self._spawn(self._cancel_download(guid), f"cancel-{guid}")
        if not self._downloads:
            self._no_downloads.set()

    def _landed(self, file_path: str) -> Path | None:
        """The host path of a finished download, if the browser names one in its downloads folder.

        The path comes from the browser, which may be hostile: it never decides what the server moves
        (the profile's top is the server's, so the folder itself cannot be swapped for a link; what is
        in it is checked when it is taken, see _move_and_hash).
        """
        landed = self.browser.on_host(file_path)
        if landed is None or landed.parent != self.browser.downloads_dir:
            log.warning("session %s: download outside its folder ignored", self.session_id)
            return None
        return landed

    async def _cancel_download(self, guid: str) -> None:
        log.warning("session %s: download %s cancelled: over the session's disk quota", self.session_id, guid)
        if self._cdp is None:
            return
        # Browser.cancelDownload needs the download's browser context (omitted: the default one). The
        # frame that started it is its tab's target when it is a main frame; else try every context.
        frame = str(self._downloads.get(guid, {}).get("frameId", ""))
        contexts: list[str | None] = [self._contexts.get(frame), None]
        with contextlib.suppress(CdpError, OSError, TimeoutError):
            listed = await self._cdp.send("Target.getBrowserContexts")
            contexts.extend(listed.get("browserContextIds", []))
        for context in dict.fromkeys(contexts):  # in order, once each
            params = {"guid": guid} if context is None else {"guid": guid, "browserContextId": context}
            try:
                await self._cdp.send("Browser.cancelDownload", params)
                return
            except (CdpError, OSError, TimeoutError):
                continue
        # Not found in any context: it finished meanwhile, and its completion deletes it.

    async def _save_download(self, guid: str, landed: Path, begun: dict[str, Any]) -> None:
        try:
            async with self._saving:
                await self._save_download_now(landed, begun)
        finally:
            self._reserved.pop(guid, None)

    async def _save_download_now(self, landed: Path, begun: dict[str, Any]) -> None:
        allowed: int | None = None  # the most bytes the saved copy may have
        if self.disk_quota is not None:
            try:
                used, size = await asyncio.to_thread(
                    lambda: (stored_bytes(self.files), landed.lstat().st_size)
                )
            except OSError:
                return
            if used + size > self.disk_quota:
                log.warning(
                    "session %s: download %s deleted: over the session's disk quota",
                    self.session_id,
                    landed.name,
                )
                await asyncio.to_thread(landed.unlink, missing_ok=True)
                return
            allowed = self.disk_quota - used
        name = _safe_name(str(begun.get("suggestedFilename") or landed.name))
        stem, ext = os.path.splitext(name)
        stamp = now_ms()
        while (target := self.files.downloads / f"{stem}-{stamp}{ext}").exists():
            stamp += 1
        try:
            size, checksum = await asyncio.to_thread(_move_and_hash, landed, target, allowed)
        except (OSError, ValueError) as exc:
            log.warning("session %s: download not saved: %s", self.session_id, exc)
            return
        await self.store.add_download(
            Download(
                id=str(uuid.uuid4()),
                session_id=self.session_id,
                filename=name,
                stored_name=target.name,
                mime_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                size=size,
                checksum=checksum,
                url=str(begun.get("url", ""))[:MAX_TEXT],
                created_at=datetime.fromtimestamp(stamp / 1000, UTC),
            )
        )


def stored_bytes(files: SessionFiles, skip: Collection[Path] = ()) -> int:
    """Bytes of the session's saved downloads and uploads (partial uploads included), as the disk quota
    counts them, leaving out the files in `skip`."""
    skipped = {str(path) for path in skip}
    total = 0
    for folder in (files.downloads, files.uploads):
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.path not in skipped and entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
    return total


def _move_and_hash(source: Path, target: Path, limit: int | None = None) -> tuple[int, str]:
    """Copy a regular file the browser wrote out of its profile into `target`, hash it, remove it.

    The browser owns its downloads folder and may still hold the file open, so: the file is opened
    without following links and must be a plain file with one name; its bytes are *copied* (a renamed
    inode could go on growing under the browser's descriptor after the quota check), at most the size
    it had when opened, which must be at most `limit`; the copy is the server's own file.
    """
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise ValueError(f"{source.name} is not a plain file of the browser's own")
        if limit is not None and info.st_size > limit:
            # Grown since the quota check: refused whole, not saved cut short as if it were complete.
            raise ValueError(f"{source.name} is over the session's disk quota")
        left = info.st_size
        digest = hashlib.sha256()
        size = 0
        try:
            with target.open("xb") as out:
                while left > 0 and (chunk := stream.read(min(1 << 20, left))):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    left -= len(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    source.unlink(missing_ok=True)
    return size, digest.hexdigest()


def _safe_name(name: str) -> str:
    name = _UNSAFE_NAME.sub("_", os.path.basename(name)).strip(" .") or "download"
    stem, ext = os.path.splitext(name)
    return stem[:180] + ext[:20]


def _describe(arg: dict[str, Any]) -> str:
    if "value" in arg:
        value = arg["value"]
        return value[:MAX_TEXT] if isinstance(value, str) else json.dumps(value)[:MAX_TEXT]
    return str(arg.get("description") or arg.get("type", ""))[:MAX_TEXT]


def _write(stream: IO[str], entry: dict[str, Any]) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(json.dumps(entry, ensure_ascii=False) + "\n")
