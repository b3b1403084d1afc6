"""Routes for watching a session: live URLs (`/debug`), its video replays (HLS) and their MP4 export, and
the deprecated rrweb recording."""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from browserfleet.api.context import API_KEY_HEADER, caller, existing_id, services
from browserfleet.api.files import JSON_LINES, PAGE_INDEX, PAGE_PARAM, own_session
from browserfleet.api.openapi import Media, operation
from browserfleet.api.schemas import Uri, timestamp
from browserfleet.errors import CdpError, Conflict, Inapplicable, InvalidRequest, NotFound, Unauthenticated
from browserfleet.services import Services
from browserfleet.sessions.lifecycle import Status
from browserfleet.sessions.manager import stored_setting
from browserfleet.store.models import Session, SessionPage

routes = web.RouteTableDef()
MAX_EXPIRES_IN = 21600
MEDIA_TOKEN_SECONDS = 3600  # segment and MP4 URLs: short-lived, like a signed CDN URL
_SEGMENT = re.compile(r"^(init\.mp4|seg-[0-9]{1,6}\.m4s)$")  # [0-9]: \d takes every script's digits


class DebugQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    expiresIn: int | None = Field(
        default=None, ge=1, le=MAX_EXPIRES_IN, description="Seconds the URLs work (default: as the session)"
    )
    readOnly: str | None = Field(default=None, description="`true`: URLs of a view that cannot be driven")


class PageLiveUrls(BaseModel):
    id: str
    url: str
    title: str
    faviconUrl: str
    debuggerFullscreenUrl: Uri
    debuggerUrl: Uri


class LiveUrls(BaseModel):
    debuggerFullscreenUrl: Uri
    debuggerUrl: Uri
    wsUrl: Uri
    pages: list[PageLiveUrls]


class ReplayPage(BaseModel):
    pageId: str
    url: str
    startTimeMs: int
    endTimeMs: int


class Replays(BaseModel):
    pageCount: int = Field(ge=0)
    pages: list[ReplayPage]


class RecordingDownload(BaseModel):
    pageId: str
    status: str
    downloadUrl: str | None = None
    completedAt: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class RecordingDownloads(BaseModel):
    downloads: list[RecordingDownload]


# -- live URLs -----------------------------------------------------------------------------------


def live_urls(base: str, token: str, target_id: str) -> dict[str, str]:
    """The viewer (fullscreen: our live view page) and Chromium's DevTools frontend for one tab."""
    parts = urlsplit(base)
    ws_param = "wss" if parts.scheme == "https" else "ws"
    socket = f"{parts.netloc}{parts.path}/debug/{token}/devtools/page/{target_id}"
    return {
        "debuggerFullscreenUrl": f"{base}/live/view?t={token}&page={target_id}",
        "debuggerUrl": f"{base}/debug/{token}/devtools/inspector.html?{ws_param}={quote(socket, safe='/:')}",
    }


@routes.get("/v1/sessions/{id}/debug")
@operation("Live URLs of the session's tabs", {200: LiveUrls}, query=DebugQuery)
async def debug(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    expires = _expiry(request, session)
    read_only = request.query.get("readOnly", "false").lower() == "true"
    token = svc.view_tokens.mint(session.id, expires, read_only)
    base = svc.public_base(request)
    tabs: list[dict[str, Any]] = []
    capture = svc.artifacts.capture(session.id) if session.status == Status.RUNNING else None
    if capture is not None:
        try:
            tabs = await asyncio.wait_for(capture.open_tabs(), 5)
        except (CdpError, TimeoutError):
            tabs = []
    pages = [
        {
            "id": tab["targetId"],
            "url": tab.get("url", ""),
            "title": tab.get("title", ""),
            "faviconUrl": _favicon(tab.get("url", "")),
        }
        | live_urls(base, token, tab["targetId"])
        for tab in tabs
    ]
    first = pages[0] if pages else live_urls(base, token, "")
    live = svc.manager.find(session.id)
    browser_path = urlsplit(live.browser.ws_url).path if live is not None else "/devtools/browser"
    ws_base = "ws" + base[4:] if base.startswith("http") else base
    urls = LiveUrls(
        debuggerFullscreenUrl=first["debuggerFullscreenUrl"],
        debuggerUrl=first["debuggerUrl"],
        wsUrl=f"{ws_base}/debug/{token}{browser_path}",
        pages=[PageLiveUrls(**page) for page in pages],
    )
    return web.json_response(urls.model_dump(mode="json"))


def _expiry(request: web.Request, session: Session) -> int:
    """Unix seconds the URLs stop working: `expiresIn` from now, else when the session expires."""
    raw = request.query.get("expiresIn")
    if raw is None:
        return math.ceil(session.expires_at.timestamp())
    # isascii(): isdigit() alone takes "²" (which int() refuses) and "٣" (which int() reads as 3).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5) or not 1 <= int(raw) <= MAX_EXPIRES_IN:
        raise InvalidRequest(f"expiresIn must be a whole number of seconds from 1 to {MAX_EXPIRES_IN}")
    return math.ceil(time.time()) + int(raw)


def _favicon(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/favicon.ico" if parts.scheme in ("http", "https") else ""


# -- recording -----------------------------------------------------------------------------------


@routes.get("/v1/sessions/{id}/recording")
@operation("Deprecated rrweb events (always empty: sessions are recorded as video)", {200: JSON_LINES})
async def rrweb_recording(request: web.Request) -> web.Response:
    """Deprecated rrweb events: browserfleet records video instead, so this is always empty."""
    await own_session(request)
    return web.json_response([])


@routes.get("/v1/sessions/{id}/replays")
@operation("The session's recorded tabs", {200: Replays})
async def replays(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    base = svc.public_base(request)
    ready = [page for page in await svc.store.pages(session.id) if page.recording == "READY"]
    out = Replays(
        pageCount=len(ready),
        pages=[
            ReplayPage(
                pageId=str(page.page_index),
                url=f"{base}/v1/sessions/{session.id}/replays/{page.page_index}",
                startTimeMs=page.start_ms or 0,
                endTimeMs=page.end_ms or 0,
            )
            for page in ready
        ],
    )
    return web.json_response(out.model_dump(mode="json"))


async def _page(svc: Services, session: Session, page_id: str) -> SessionPage:
    if not PAGE_INDEX.fullmatch(page_id):
        raise NotFound(f"Page {page_id[:100]} not found")
    page = await svc.store.page(session.id, int(page_id))
    if page is None or page.recording in ("OFF", "EMPTY", "FAILED"):
        raise NotFound(f"No recording of page {page_id} in session {session.id}")
    if page.recording != "READY":
        raise Conflict(
            f"The recording of page {page_id} is not ready yet: it is encoded after the session ends"
        )
    return page


@routes.get("/v1/sessions/{id}/replays/{page}")
@operation(
    "A tab's HLS playlist",
    {200: Media("application/vnd.apple.mpegurl", {"type": "string"})},
    path={"page": PAGE_PARAM},
)
async def replay_playlist(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    page = await _page(svc, session, request.match_info["page"])
    playlist = svc.artifacts.root.session(session.id).hls(page.page_index) / "index.m3u8"
    try:
        text = await asyncio.to_thread(playlist.read_text)
    except OSError as exc:
        raise NotFound(f"No recording of page {page.page_index} in session {session.id}") from exc
    # Segments are fetched by players that cannot send headers: their URLs carry a short-lived token.
    token = svc.media_tokens.mint(session.id, math.ceil(time.time()) + MEDIA_TOKEN_SECONDS, read_only=True)
    prefix = f"{svc.public_base(request)}/v1/sessions/{session.id}/replays/{page.page_index}"

    def absolute(name: str) -> str:
        return f"{prefix}/{name}?t={token}"

    lines = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            line = re.sub(r'URI="([^"]+)"', lambda m: f'URI="{absolute(m.group(1))}"', line)
        elif line and not line.startswith("#"):
            line = absolute(line)
        lines.append(line)
    return web.Response(text="\n".join(lines) + "\n", content_type="application/vnd.apple.mpegurl")


async def _media_session(request: web.Request) -> tuple[Services, Session]:
    """The session of a media URL: by API key, or by the token the playlist or the export put in it."""
    svc = services(request)
    session_id = request.match_info["id"]
    token = request.query.get("t")
    if token is not None and API_KEY_HEADER not in request.headers:
        verified = svc.media_tokens.verify(token, time.time())
        if verified is None or verified[0] != session_id:
            raise Unauthenticated("Invalid or expired token")
        row = await svc.store.session(existing_id(session_id))
        if row is None:
            raise NotFound(f"Session {session_id} not found")
        return svc, row
    project = await caller(request)
    return svc, await svc.manager.get(project.id, existing_id(session_id))


class MediaQuery(BaseModel):
    t: str | None = Field(default=None, description="The media token of a playlist or downloadUrl")


@routes.get("/v1/sessions/{id}/replays/{page}/{name}")
@operation(
    "A segment of a tab's video (by API key, or by the token the playlist put in its URL)",
    {200: Media("video/mp4")},
    query=MediaQuery,
    path={"page": PAGE_PARAM, "name": {"type": "string", "pattern": _SEGMENT.pattern}},
)
async def replay_segment(request: web.Request) -> web.StreamResponse:
    svc, session = await _media_session(request)
    page = await _page(svc, session, request.match_info["page"])
    name = request.match_info["name"]
    path = svc.artifacts.root.session(session.id).hls(page.page_index) / name
    if not _SEGMENT.match(name) or not await asyncio.to_thread(path.is_file):
        raise NotFound(f"Segment {name} not found")
    return web.FileResponse(
        path, headers={"Content-Type": "video/mp4", "Cache-Control": "private, max-age=3600"}
    )


def _download_json(
    request: web.Request, svc: Services, session: Session, page: SessionPage
) -> dict[str, Any]:
    return RecordingDownload(**_download_fields(request, svc, session, page)).model_dump(
        mode="json", exclude_none=True
    )


def _download_fields(
    request: web.Request, svc: Services, session: Session, page: SessionPage
) -> dict[str, Any]:
    entry: dict[str, Any] = {"pageId": str(page.page_index), "status": page.mp4_status}
    if page.mp4_status == "COMPLETED":
        token = svc.media_tokens.mint(
            session.id, math.ceil(time.time()) + MEDIA_TOKEN_SECONDS, read_only=True
        )
        base = svc.public_base(request)
        entry["downloadUrl"] = (
            f"{base}/v1/sessions/{session.id}/recording/downloads/{page.page_index}.mp4?t={token}"
        )
        entry["completedAt"] = timestamp(page.mp4_completed_at or datetime.now(UTC))
    return entry


async def _recorded_pages(svc: Services, session: Session) -> list[SessionPage]:
    if session.status == Status.RUNNING:
        raise Conflict(f"Session {session.id} is still running: its recording can be exported once it ends")
    if not stored_setting(session.create_params, "recordSession"):
        raise Inapplicable(f"Session {session.id} was not recorded (recordSession: false)")
    # Tabs that never showed a frame have no video to export: they are not listed.
    return [page for page in await svc.store.pages(session.id) if page.recording not in ("OFF", "EMPTY")]


@routes.post("/v1/sessions/{id}/recording/downloads")
@operation("Export the session's recording as MP4 files", {202: RecordingDownloads})
async def export_recording(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    pages = await _recorded_pages(svc, session)
    for page in pages:
        if page.mp4_status not in ("COMPLETED", "PENDING"):
            await svc.store.update_page(session.id, page.page_index, mp4_status="PENDING")
            page.mp4_status = "PENDING"
            svc.artifacts.recordings.export_later(session.id, page.page_index)
    return web.json_response(
        {"downloads": [_download_json(request, svc, session, page) for page in pages]}, status=202
    )


@routes.get("/v1/sessions/{id}/recording/downloads")
@operation("The MP4 exports of the session's recording", {200: RecordingDownloads})
async def recording_downloads(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    pages = await _recorded_pages(svc, session)
    return web.json_response({"downloads": [_download_json(request, svc, session, page) for page in pages]})


@routes.get("/v1/sessions/{id}/recording/downloads/{page:[0-9]{1,3}}.mp4")
@operation(
    "A tab's MP4 (by API key, or by the token its downloadUrl carries)",
    {200: Media("video/mp4")},
    query=MediaQuery,
    path={"page": PAGE_PARAM},
)
async def recording_mp4(request: web.Request) -> web.StreamResponse:
    svc, session = await _media_session(request)
    page = await svc.store.page(session.id, int(request.match_info["page"]))
    path = svc.artifacts.root.session(session.id).mp4(page.page_index) if page is not None else None
    if (
        page is None
        or page.mp4_status != "COMPLETED"
        or path is None
        or not await asyncio.to_thread(path.is_file)
    ):
        raise NotFound("No MP4 of this page: POST /recording/downloads first")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "video/mp4",
            "Content-Disposition": f'attachment; filename="{session.id}-page-{page.page_index}.mp4"',
        },
    )
