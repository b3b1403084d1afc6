"""A session's CDP log: each command a client sent with the browser's answer, and the tabs' events, in
the contract's `SessionLog` shape, one JSON object per line in the session's artifacts.

The gateway's links hand over raw message bytes (at most `BODY_LIMIT` of each, with its full size) and
a timestamp: an append to a list, nothing more, on the relay's path. Parsing, pairing answers with
commands and writing happen in a task a few times a second, started by `start()` and ended by `close()`
(which writes what is left); the artifacts service, which makes each log, closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from browserfleet.aio import Tasks
from browserfleet.artifacts.layout import read_jsonl

log = logging.getLogger(__name__)

BODY_LIMIT = 16 * 1024  # bytes of one message kept: a screenshot's answer is logged by its size
MAX_ENTRIES = 50_000  # per session; beyond it entries are counted, not kept
MAX_BACKLOG = 100_000  # raw messages waiting to be processed; beyond it they are dropped and counted
FLUSH_INTERVAL = 0.25
# Events kept: what happens to pages. Network and DOM events are many and have their own views.
_EVENT_PREFIXES = (
    "Page.",
    "Target.",
    "Inspector.",
    "Log.entryAdded",
    "Runtime.consoleAPICalled",
    "Runtime.exceptionThrown",
)
_SKIPPED_EVENTS = frozenset({"Page.screencastFrame", "Page.screencastVisibilityChanged"})
_ID = re.compile(rb'"id"\s*:\s*(\d+)')
_METHOD = re.compile(rb'"method"\s*:\s*"([^"\\]{1,200})"')
_SESSION = re.compile(rb'"sessionId"\s*:\s*"([0-9A-Fa-f]{8,64})"')

Raw = tuple[int, int, bool, bytes, int]  # (unix ms, link, from client, bytes kept, full size)


class LinkTap:
    """What one gateway link calls: cheap appends."""

    __slots__ = ("_link", "_owner", "_raw")

    def __init__(self, owner: CdpLog, link: int) -> None:
        self._owner = owner
        self._raw = owner._raw
        self._link = link

    def command(self, payload: bytes) -> None:
        if len(self._raw) < MAX_BACKLOG:
            self._raw.append((int(time.time() * 1000), self._link, True, payload[:BODY_LIMIT], len(payload)))
        else:
            self._owner.dropped += 1

    def message(self, kept: bytes, size: int) -> None:
        if len(self._raw) < MAX_BACKLOG:
            self._raw.append((int(time.time() * 1000), self._link, False, kept, size))
        else:
            self._owner.dropped += 1


class CdpLog:
    def __init__(self, session_id: str, path: Path, page_index: Callable[[str], int | None]) -> None:
        self.session_id = session_id
        self.path = path
        self._page_index = page_index
        self._raw: list[Raw] = []
        self._links = itertools.count(1)
        self._pending: dict[tuple[int, int], dict[str, Any]] = {}  # (link, id) → entry awaiting its answer
        self._targets: dict[str, str] = {}  # CDP session id → target id
        self._link_targets: dict[int, str] = {}  # link → target id, for links to one tab's socket
        self._out: IO[str] | None = None
        self.written = 0
        self.dropped = 0
        self._tasks = Tasks(f"cdp-log-{session_id}")
        self._closed = False

    def start(self) -> None:
        """Process and write what the links hand over every FLUSH_INTERVAL, until `close()`."""
        self._tasks.spawn(self._flush_forever(), "flusher")

    def tap(self, target_id: str | None = None) -> LinkTap:
        """For one client connection; `target_id` when it is a tab's own socket (DevTools on a page)."""
        link = next(self._links)
        if target_id is not None:
            self._link_targets[link] = target_id
        return LinkTap(self, link)

    async def close(self) -> None:
        """Write what is left and close the file. Safe to call twice."""
        await self._tasks.close()
        if self._closed:
            return
        self._closed = True
        self.flush()
        for entry in self._pending.values():  # commands the browser never answered
            self._emit(entry)
        self._pending.clear()
        if self.dropped:
            self._emit(
                {
                    "method": "browserfleet.logTruncated",
                    "pageId": 0,
                    "sessionId": self.session_id,
                    "timestamp": int(time.time() * 1000),
                    "response": {"result": {"droppedEntries": self.dropped}, "rawBody": ""},
                },
                force=True,
            )
        if self._out is not None:
            self._out.close()
            self._out = None

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                self.flush()
            except Exception:
                log.exception("session %s: CDP log processing failed", self.session_id)

    # -- processing, off the relay's path --------------------------------------------------------

    def flush(self) -> None:
        """Process and write what the links handed over so far."""
        batch, self._raw[:] = list(self._raw), []
        for stamp, link, from_client, kept, size in batch:
            if not from_client and not _wanted(kept):
                continue  # an event the log does not keep (Network.*, DOM.*, …): not even parsed
            message = _parse(kept, size)
            if from_client:
                self._command(stamp, link, kept, size, message)
            else:
                self._from_browser(stamp, link, kept, size, message)
        if self._out is not None:
            self._out.flush()

    def _command(self, stamp: int, link: int, kept: bytes, size: int, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if not isinstance(message_id, int):
            return
        params = message.get("params") if size <= BODY_LIMIT else {"truncated": True, "size": size}
        entry: dict[str, Any] = {
            "method": str(message.get("method", "")),
            "pageId": self._page_of(message.get("sessionId"), link),
            "sessionId": self.session_id,
            "timestamp": stamp,
            "request": {
                "params": params if isinstance(params, dict) else {},
                "rawBody": _raw_body(kept, size),
                "timestamp": stamp,
            },
        }
        if isinstance(params, dict) and entry["method"] == "Target.attachToTarget":
            entry["_target"] = params.get("targetId")
        if isinstance(params, dict) and isinstance(params.get("frameId"), str):
            entry["frameId"] = params["frameId"]
        self._pending[(link, message_id)] = entry

    def _from_browser(self, stamp: int, link: int, kept: bytes, size: int, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if isinstance(message_id, int):
            entry = self._pending.pop((link, message_id), None)
            if entry is None:
                return
            if size > BODY_LIMIT:
                result: Any = {"truncated": True, "size": size}
            elif "error" in message:
                result = {"error": message["error"]}
            else:
                result = message.get("result", {})
            result = result if isinstance(result, dict) else {}
            target = entry.pop("_target", None)
            if isinstance(target, str) and isinstance(result.get("sessionId"), str):
                self._targets[result["sessionId"]] = target
            for key in ("frameId", "loaderId"):
                if isinstance(result.get(key), str):
                    entry[key] = result[key]
            if entry["pageId"] == 0 and message.get("sessionId"):
                entry["pageId"] = self._page_of(message.get("sessionId"), link)
            entry["response"] = {"result": result, "rawBody": _raw_body(kept, size), "timestamp": stamp}
            self._emit(entry)
            return
        method = message.get("method")
        if not isinstance(method, str):
            return
        params = message.get("params") if size <= BODY_LIMIT else {"truncated": True, "size": size}
        params = params if isinstance(params, dict) else {}
        if method == "Target.attachedToTarget":
            info = params.get("targetInfo", {})
            if isinstance(params.get("sessionId"), str) and isinstance(info, dict):
                self._targets[params["sessionId"]] = str(info.get("targetId", ""))
        if not method.startswith(_EVENT_PREFIXES) or method in _SKIPPED_EVENTS:
            return
        entry = {
            "method": method,
            "pageId": self._page_of(message.get("sessionId"), link),
            "sessionId": self.session_id,
            "timestamp": stamp,
            "response": {"result": params, "rawBody": _raw_body(kept, size), "timestamp": stamp},
        }
        frame = params.get("frame")
        frame_id = params.get("frameId") or (frame.get("id") if isinstance(frame, dict) else None)
        if isinstance(frame_id, str):
            entry["frameId"] = frame_id
        self._emit(entry)

    def _page_of(self, cdp_session: Any, link: int) -> int:
        """The tab a CDP session is attached to (or the link's own tab); the browser itself is tab 0."""
        if isinstance(cdp_session, str):
            target = self._targets.get(cdp_session, "")
        else:
            target = self._link_targets.get(link, "")
        index = self._page_index(target)
        return 0 if index is None else index

    def _emit(self, entry: dict[str, Any], force: bool = False) -> None:
        entry.pop("_target", None)
        if self.written >= MAX_ENTRIES and not force:
            self.dropped += 1
            return
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A lone surrogate (a page can log one) is written as its JSON escape, so the line stays
            # valid JSON with the same meaning instead of failing the whole flush.
            self._out = self.path.open("a", encoding="utf-8", errors="backslashreplace")
        self._out.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.written += 1


_EVENT_HEAD = re.compile(rb'^\{"method":"([^"]{1,200})"')


def _wanted(kept: bytes) -> bool:
    """Whether a message from the browser may be logged: answers, and the events the log keeps.
    Chromium writes an event's method first, so a look at the head decides without parsing."""
    head = _EVENT_HEAD.match(kept)
    if head is None:
        return True
    method = head.group(1).decode()
    return method == "Target.attachedToTarget" or (
        method.startswith(_EVENT_PREFIXES) and method not in _SKIPPED_EVENTS
    )


def _parse(kept: bytes, size: int) -> dict[str, Any]:
    if size <= BODY_LIMIT:
        with contextlib.suppress(ValueError):
            message = json.loads(kept)
            if isinstance(message, dict):
                return message
    # Cut short: what the head of the message says (Chromium and the clients put id and method first).
    head: dict[str, Any] = {}
    if (match := _ID.search(kept[:64])) is not None:
        head["id"] = int(match.group(1))
    if (match := _METHOD.search(kept[:512])) is not None:
        head["method"] = match.group(1).decode()
    if (match := _SESSION.search(kept)) is not None:
        head["sessionId"] = match.group(1).decode()
    return head


def _raw_body(kept: bytes, size: int) -> str:
    text = kept.decode("utf-8", errors="replace")
    if size > len(kept):
        text += f"…[truncated: {size} bytes]"
    return text


def read(path: Path) -> list[dict[str, Any]]:
    """The log's entries in the order commands were sent and events arrived."""
    return sorted(read_jsonl(path), key=lambda entry: entry.get("timestamp", 0))
