"""Routes for what a session leaves behind as files and records: downloads, uploads, CDP logs, console
and network per tab, CPU/memory samples."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field

from browserfleet.api.context import caller, services
from browserfleet.api.errors import ApiError
from browserfleet.api.schemas import timestamp
from browserfleet.artifacts import cdplog
from browserfleet.artifacts.capture import stored_bytes
from browserfleet.artifacts.layout import read_jsonl
from browserfleet.sessions.manager import RUNNING
from browserfleet.store.models import Download, Session

routes = web.RouteTableDef()
CHUNK = 1024 * 1024
_UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\]")


async def own_session(request: web.Request, session_id: str | None = None) -> Session:
    project = await caller(request)
    return await services(request).manager.get(project.id, session_id or request.match_info["id"])


# -- downloads -----------------------------------------------------------------------------------


def download_json(row: Download) -> dict[str, Any]:
    return {
        "id": row.id,
        "sessionId": row.session_id,
        "filename": row.filename,
        "mimeType": row.mime_type,
        "size": row.size,
        "checksum": row.checksum,
        "createdAt": timestamp(row.created_at),
    }


class _ZipSink(io.RawIOBase):
    """Where zipfile writes: bytes are collected and sent on by the route between chunks."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.offset = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


@routes.get("/v1/sessions/{id}/downloads")
async def session_downloads(request: web.Request) -> web.StreamResponse:
    """Every file downloaded so far, as a zip streamed file by file (an empty zip when there are none)."""
    session = await own_session(request)
    svc = services(request)
    rows, _total = await svc.store.downloads(session.id)
    folder = svc.artifacts.root.session(session.id).downloads
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{session.id}-downloads.zip"',
        }
    )
    await response.prepare(request)
    sink = _ZipSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for row in rows:
            path = folder / row.stored_name
            try:
                source = await asyncio.to_thread(path.open, "rb")
            except OSError:
                continue  # deleted meanwhile
            with source, archive.open(row.stored_name, "w", force_zip64=row.size > 2**31) as entry:
                while chunk := await asyncio.to_thread(source.read, CHUNK):
                    await asyncio.to_thread(entry.write, chunk)
                    await response.write(sink.take())
    await response.write(sink.take())
    await response.write_eof()
    return response


@routes.delete("/v1/sessions/{id}/downloads")
async def delete_session_downloads(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    names = await svc.store.delete_downloads(session.id)
    await asyncio.to_thread(_remove, svc.artifacts.root.session(session.id).downloads, names)
    return web.Response(status=204)


class DownloadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sessionId: str
    filename: str | None = Field(default=None, max_length=255)
    mimeType: str | None = Field(default=None, max_length=255)
    minSize: float | None = Field(default=None, ge=0)
    maxSize: float | None = Field(default=None, ge=0)
    createdAfter: datetime | None = None
    createdBefore: datetime | None = None
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0)


@routes.get("/v1/downloads")
async def list_downloads(request: web.Request) -> web.Response:
    query = DownloadQuery.model_validate(dict(request.query))
    session = await own_session(request, query.sessionId)
    filters: list[Any] = []
    if query.filename is not None:
        filters.append(Download.filename == query.filename)
    if query.mimeType is not None:
        filters.append(Download.mime_type == query.mimeType)
    if query.minSize is not None:
        filters.append(Download.size >= query.minSize)
    if query.maxSize is not None:
        filters.append(Download.size <= query.maxSize)
    if query.createdAfter is not None:
        filters.append(Download.created_at >= as_utc(query.createdAfter))
    if query.createdBefore is not None:
        filters.append(Download.created_at <= as_utc(query.createdBefore))
    rows, total = await services(request).store.downloads(session.id, filters, query.limit, query.offset)
    return web.json_response(
        {
            "downloads": [download_json(row) for row in rows],
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
        }
    )


def as_utc(when: datetime) -> datetime:
    """Stored times are UTC without an offset (SQLite keeps none): compare in UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


async def own_download(request: web.Request) -> Download:
    project = await caller(request)
    svc = services(request)
    row = await svc.store.download(request.match_info["id"])
    # Another project's download is as unknown as a missing one.
    if row is None or await svc.store.session(row.session_id, project.id) is None:
        raise ApiError(404, f"Download {request.match_info['id']} not found")
    return row


@routes.get("/v1/downloads/{id}")
async def get_download(request: web.Request) -> web.StreamResponse:
    row = await own_download(request)
    if "application/octet-stream" not in request.headers.get("Accept", ""):
        return web.json_response(download_json(row))
    path = services(request).artifacts.root.session(row.session_id).downloads / row.stored_name
    if not await asyncio.to_thread(path.is_file):
        raise ApiError(404, f"Download {row.id} not found")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{row.stored_name}"',
        },
    )


@routes.delete("/v1/downloads/{id}")
async def delete_download(request: web.Request) -> web.Response:
    row = await own_download(request)
    svc = services(request)
    names = await svc.store.delete_downloads(row.session_id, row.id)
    await asyncio.to_thread(_remove, svc.artifacts.root.session(row.session_id).downloads, names)
    return web.Response(status=204)


def _remove(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).unlink(missing_ok=True)


# -- uploads -------------------------------------------------------------------------------------


@routes.post("/v1/sessions/{id}/uploads")
async def upload(request: web.Request) -> web.Response:
    """A file for the session's browser: `/tmp/.uploads/<name>` in CDP file commands. The kept copy is
    `<data dir>/sessions/<id>/uploads/<name>`; the browser sees it read-only in its own uploads folder."""
    session = await own_session(request)
    if session.status != RUNNING:
        raise ApiError(410, f"Session {session.id} has ended; upload files to a running session")
    svc = services(request)
    limit = svc.settings.max_upload_mb * 1024 * 1024
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise ApiError(413, f"File is too large: the limit is {svc.settings.max_upload_mb} MB")
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(400, "Send the file as multipart/form-data in a field named 'file'")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise ApiError(400, f"Malformed multipart body: {exc}") from exc
    files = svc.artifacts.root.session(session.id)
    folder = files.uploads
    while True:
        try:
            part = await reader.next()
        except ValueError as exc:
            raise ApiError(400, f"Malformed multipart body: {exc}") from exc
        if part is None:
            raise ApiError(400, "Missing the 'file' field")
        if isinstance(part, BodyPartReader) and part.name == "file":
            break
    name = _UNSAFE_NAME.sub("_", os.path.basename(part.filename or "upload")).strip(" .") or "upload"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    target = folder / name
    partial = folder / f".{name}.part"
    quota = svc.artifacts.disk_quota
    capture = svc.artifacts.capture(session.id)

    async def used() -> int:
        """The session's disk use but for this upload (and the file of the same name it replaces)."""
        in_flight = capture.downloads_in_flight() if capture is not None else 0
        return await asyncio.to_thread(stored_bytes, files, (partial, target)) + in_flight

    def over_quota(in_use: int) -> ApiError:
        return ApiError(
            413,
            f"File is too large for the session's upload quota: downloads and uploads of session "
            f"{session.id} may take {(quota or 0) / 2**20:g} MB together, {in_use / 2**20:.1f} MB are in use",
        )

    if quota is not None and request.content_length is not None:
        in_use = await used()
        if in_use + request.content_length > quota + 64 * 1024:  # multipart framing is not file
            raise over_quota(in_use)
    size = 0
    try:
        with await asyncio.to_thread(partial.open, "wb") as out:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"File is too large: the limit is {svc.settings.max_upload_mb} MB")
                # Counted again at every chunk: other uploads and downloads grow meanwhile.
                if quota is not None and (in_use := await used()) + size > quota:
                    raise over_quota(in_use)
                await asyncio.to_thread(out.write, chunk)
        await asyncio.to_thread(partial.replace, target)
        await asyncio.to_thread(target.chmod, 0o644)
        await asyncio.to_thread(svc.artifacts.offer_upload, session.id, target)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(partial.unlink, missing_ok=True)
    return web.json_response(
        {"message": f"Uploaded {name} ({size} bytes): /tmp/.uploads/{name} in the session's browser"}
    )


# -- CDP log, console, network, samples ----------------------------------------------------------


@routes.get("/v1/sessions/{id}/logs")
async def logs(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    live_log = svc.artifacts.cdp_log(session.id)
    if live_log is not None:
        live_log.flush()
    path = svc.artifacts.root.session(session.id).cdp_log
    entries = await asyncio.to_thread(cdplog.read, path)
    return web.json_response(entries, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@routes.get("/v1/sessions/{id}/pages")
async def pages(request: web.Request) -> web.Response:
    """The tabs the session opened, in order (their index is the pageId of logs and replays)."""
    session = await own_session(request)
    rows = await services(request).store.pages(session.id)
    return web.json_response(
        [
            {
                "pageId": row.page_index,
                "targetId": row.target_id,
                "url": row.url,
                "title": row.title,
                "openedAt": timestamp(row.opened_at),
                "closedAt": timestamp(row.closed_at),
                "recording": row.recording,
                "frames": row.frame_count,
            }
            for row in rows
        ]
    )


@routes.get("/v1/sessions/{id}/pages/{page}/{kind:console|network}")
async def page_log(request: web.Request) -> web.Response:
    session = await own_session(request)
    page = request.match_info["page"]
    if not page.isdigit() or len(page) > 3:
        raise ApiError(404, f"Page {page} not found")
    files = services(request).artifacts.root.session(session.id)
    kind = request.match_info["kind"]
    path = files.console_log(int(page)) if kind == "console" else files.network_log(int(page))
    entries = await asyncio.to_thread(read_jsonl, path)
    return web.json_response(entries, dumps=_dumps)


@routes.get("/v1/sessions/{id}/metrics")
async def metrics(request: web.Request) -> web.Response:
    """CPU (% of one core) and memory (PSS bytes) of the session's browser, sampled every few seconds."""
    session = await own_session(request)
    samples = await services(request).store.samples(session.id)
    return web.json_response(
        {
            "avgCpuUsage": session.avg_cpu_usage,
            "memoryUsage": session.memory_usage,
            "samples": [
                {"at": timestamp(s.at), "cpuPercent": round(s.cpu_percent, 1), "memoryBytes": s.memory_bytes}
                for s in samples
            ],
        }
    )
