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
from typing import Annotated, Any

from aiohttp import BodyPartReader, web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from browserfleet.api.context import caller, existing_id, services
from browserfleet.api.errors import BROKE_OFF
from browserfleet.api.openapi import Media, operation
from browserfleet.api.schemas import Timestamp
from browserfleet.artifacts import cdplog
from browserfleet.artifacts.capture import stored_bytes
from browserfleet.artifacts.layout import read_jsonl
from browserfleet.errors import Gone, InvalidRequest, NotFound, TooLarge
from browserfleet.services import Services
from browserfleet.sessions.lifecycle import Status
from browserfleet.store.models import Download, Session

routes = web.RouteTableDef()
CHUNK = 1024 * 1024
# Control characters, path separators, and lone surrogates (bytes of the header that were not UTF-8).
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\\ud800-\udfff]")
MAX_NAME_BYTES = 200  # an upload is written as `.<name>.part` first, and a file name has 255 bytes at most
MAX_EXTENSION = 16  # characters of an extension kept when a long name is shortened
PAGE_INDEX = re.compile(r"[0-9]{1,3}")  # not isdigit(): that takes "²" and "٣"
PAGE_PARAM = {"type": "string", "pattern": "^[0-9]{1,3}$"}
JSON_LINES = list[dict[str, Any]]


async def own_session(request: web.Request, session_id: str | None = None) -> Session:
    project = await caller(request)
    # `is None`, not `or`: `?sessionId=` (empty) is a session id, a malformed one, not "the path's".
    session_id = existing_id(request.match_info["id"] if session_id is None else session_id)
    return await services(request).manager.get(project.id, session_id)


# -- downloads -----------------------------------------------------------------------------------


class DownloadOut(BaseModel):
    id: str
    sessionId: str
    filename: str
    mimeType: str
    size: int = Field(ge=0)
    checksum: str = Field(description="sha256, hex")
    createdAt: Timestamp


class DownloadList(BaseModel):
    downloads: list[DownloadOut]
    total: int = Field(ge=0)
    limit: int
    offset: int


def download_out(row: Download) -> DownloadOut:
    return DownloadOut(
        id=row.id,
        sessionId=row.session_id,
        filename=row.filename,
        mimeType=row.mime_type,
        size=row.size,
        checksum=row.checksum,
        createdAt=row.created_at,
    )


def download_json(row: Download) -> dict[str, Any]:
    return download_out(row).model_dump(mode="json")


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
@operation("The session's downloads, as a zip", {200: Media("application/zip")})
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
@operation("Delete the session's downloads", {204: None})
async def delete_session_downloads(request: web.Request) -> web.Response:
    session = await own_session(request)
    svc = services(request)
    names = await svc.store.delete_downloads(session.id)
    await asyncio.to_thread(_remove, svc.artifacts.root.session(session.id).downloads, names)
    return web.Response(status=204)


def as_utc(when: datetime) -> datetime:
    """Stored times are UTC without an offset (SQLite keeps none): compare in UTC."""
    try:
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:00-14:00 is past the last UTC datetime
        raise ValueError("is out of range in UTC") from exc


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


UtcTime = Annotated[datetime, AfterValidator(as_utc)]
Text = Annotated[str, AfterValidator(_no_nul)]
MAX_BYTES = 2**53  # sizes compared as doubles; bigger than any file
MAX_OFFSET = 2**31 - 1  # fits every integer column type, and far beyond any session's downloads


class DownloadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sessionId: str
    filename: Text | None = Field(default=None, max_length=255)
    mimeType: Text | None = Field(default=None, max_length=255)
    minSize: float | None = Field(default=None, ge=0, le=MAX_BYTES, allow_inf_nan=False)
    maxSize: float | None = Field(default=None, ge=0, le=MAX_BYTES, allow_inf_nan=False)
    createdAfter: UtcTime | None = None
    createdBefore: UtcTime | None = None
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


@routes.get("/v1/downloads")
@operation("List a session's downloads", {200: DownloadList}, query=DownloadQuery)
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
        filters.append(Download.created_at >= query.createdAfter)
    if query.createdBefore is not None:
        filters.append(Download.created_at <= query.createdBefore)
    rows, total = await services(request).store.downloads(session.id, filters, query.limit, query.offset)
    listing = DownloadList(
        downloads=[download_out(row) for row in rows], total=total, limit=query.limit, offset=query.offset
    )
    return web.json_response(listing.model_dump(mode="json"))


async def own_download(request: web.Request) -> Download:
    project = await caller(request)
    svc = services(request)
    row = await svc.store.download(existing_id(request.match_info["id"], "Download"))
    # Another project's download is as unknown as a missing one.
    if row is None or await svc.store.session(row.session_id, project.id) is None:
        raise NotFound(f"Download {request.match_info['id']} not found")
    return row


@routes.get("/v1/downloads/{id}")
@operation(
    "A download: its record, or its bytes with `Accept: application/octet-stream`",
    {200: [DownloadOut, Media("application/octet-stream")]},
)
async def get_download(request: web.Request) -> web.StreamResponse:
    row = await own_download(request)
    if "application/octet-stream" not in request.headers.get("Accept", ""):
        return web.json_response(download_json(row))
    path = services(request).artifacts.root.session(row.session_id).downloads / row.stored_name
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(f"Download {row.id} not found")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{row.stored_name}"',
        },
    )


@routes.delete("/v1/downloads/{id}")
@operation("Delete a download", {204: None})
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


class UploadOut(BaseModel):
    message: str


def upload_name(filename: str | None) -> str:
    """A safe name to store an upload as: no directories or control characters, and short enough for the
    file system (a long name is cut at a character boundary, its extension kept)."""
    name = _UNSAFE_NAME.sub("_", os.path.basename(filename or "upload")).strip(" .") or "upload"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    cut = stem.encode()[: MAX_NAME_BYTES - len(suffix.encode())].decode(errors="ignore").rstrip(" .")
    return (cut or "upload") + suffix


UPLOAD_FORM = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}


@routes.post("/v1/sessions/{id}/uploads")
@operation("Upload a file for the session's browser", {200: UploadOut}, multipart=UPLOAD_FORM)
async def upload(request: web.Request) -> web.Response:
    """A file for the session's browser: `/tmp/.uploads/<name>` in CDP file commands. The kept copy is
    `<data dir>/sessions/<id>/uploads/<name>`; the browser sees it read-only in its own uploads folder."""
    session = await own_session(request)
    if session.status != Status.RUNNING:
        raise Gone(f"Session {session.id} has ended; upload files to a running session")
    svc = services(request)
    limit = svc.settings.max_upload_mb * 1024 * 1024
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise TooLarge(f"File is too large: the limit is {svc.settings.max_upload_mb} MB")
    part = await file_part(request, "the file")
    files = svc.artifacts.root.session(session.id)
    folder = files.uploads
    name = upload_name(part.filename)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    target = folder / name
    partial = folder / f".{name}.part"
    quota = svc.artifacts.disk_quota
    capture = svc.artifacts.capture(session.id)

    async def used() -> int:
        """The session's disk use but for this upload (and the file of the same name it replaces)."""
        in_flight = capture.downloads_in_flight() if capture is not None else 0
        return await asyncio.to_thread(stored_bytes, files, (partial, target)) + in_flight

    def over_quota(in_use: int) -> TooLarge:
        return _over_quota(session.id, quota or 0, in_use)

    if quota is not None and request.content_length is not None:
        in_use = await used()
        if in_use + request.content_length > quota + 64 * 1024:  # multipart framing is not file
            raise over_quota(in_use)
    size = 0
    try:
        with await asyncio.to_thread(partial.open, "wb") as out:
            while chunk := await _read_chunk(part):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"File is too large: the limit is {svc.settings.max_upload_mb} MB")
                # Counted again at every chunk: other uploads and downloads grow meanwhile.
                if quota is not None and (in_use := await used()) + size > quota:
                    raise over_quota(in_use)
                await asyncio.to_thread(out.write, chunk)
        if not part.at_eof():
            # The body ran out before the boundary that closes the part: the file is cut short.
            raise InvalidRequest("Malformed multipart body: it ended before the file part's closing boundary")
        await asyncio.to_thread(_publish, svc, session.id, partial, target)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(partial.unlink, missing_ok=True)
    message = f"Uploaded {name} ({size} bytes): /tmp/.uploads/{name} in the session's browser"
    return web.json_response(UploadOut(message=message).model_dump(mode="json"))


async def file_part(request: web.Request, what: str) -> BodyPartReader:
    """The multipart field `file` of an upload (`what` names the thing sent, for the messages), at the
    start of its bytes; a 400 for a body that is not multipart or has no such field."""
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest(f"Send {what} as multipart/form-data in a field named 'file'")
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise InvalidRequest("Missing the 'file' field")
            if isinstance(part, BodyPartReader) and part.name == "file":
                return part
    except (ValueError, AssertionError, RuntimeError, LookupError) as exc:  # the last two: a bad _charset_
        raise InvalidRequest(f"Malformed multipart body: {exc}") from exc
    except ConnectionResetError as exc:
        raise InvalidRequest(BROKE_OFF) from exc


async def read_file_field(
    request: web.Request, what: str, max_bytes: int, too_large: str
) -> tuple[str, bytes]:
    """(file name as sent, bytes) of the multipart field `file`, read whole into memory: at most
    `max_bytes` (else TooLarge(`too_large`)), and only if the part is complete."""
    part = await file_part(request, what)
    chunks: list[bytes] = []
    size = 0
    while chunk := await _read_chunk(part):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(too_large)
        chunks.append(chunk)
    if not part.at_eof():
        raise InvalidRequest("Malformed multipart body: it ended before the file part's closing boundary")
    return part.filename or "", b"".join(chunks)


def _over_quota(session_id: str, quota: int, in_use: int) -> TooLarge:
    return TooLarge(
        f"File is too large for the session's upload quota: downloads and uploads of session "
        f"{session_id} may take {quota / 2**20:g} MB together, {in_use / 2**20:.1f} MB are in use",
    )


def _publish(svc: Services, session_id: str, partial: Path, target: Path) -> None:
    """A written upload becomes the session's file of its name, shown to its browser (blocking)."""
    partial.replace(target)
    target.chmod(0o644)
    svc.artifacts.offer_upload(session_id, target)


async def store_upload(svc: Services, session_id: str, name: str, content: bytes) -> None:
    """Keep `content` as the running session's upload `name` (made by `upload_name`), as the upload
    route keeps a file: within the upload limit and the session's disk quota."""
    limit = svc.settings.max_upload_mb * 1024 * 1024
    if len(content) > limit:
        raise TooLarge(f"File is too large: the limit is {svc.settings.max_upload_mb} MB")
    files = svc.artifacts.root.session(session_id)
    folder = files.uploads
    target, partial = folder / name, folder / f".{name}.part"
    quota = svc.artifacts.disk_quota
    if quota is not None:
        capture = svc.artifacts.capture(session_id)
        in_flight = capture.downloads_in_flight() if capture is not None else 0
        in_use = await asyncio.to_thread(stored_bytes, files, (partial, target)) + in_flight
        if in_use + len(content) > quota:
            raise _over_quota(session_id, quota, in_use)

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            partial.write_bytes(content)
            _publish(svc, session_id, partial, target)
        finally:
            partial.unlink(missing_ok=True)

    await asyncio.to_thread(write)


async def _read_chunk(part: BodyPartReader) -> bytes:
    # A body cut short on the wire raises aiohttp's HttpProcessingError, answered 400 by the middleware.
    try:
        return await part.read_chunk(CHUNK)
    except (ValueError, AssertionError) as exc:
        raise InvalidRequest(f"Malformed multipart body: {exc}") from exc
    except ConnectionResetError as exc:  # the client closed the connection mid-body
        raise InvalidRequest(BROKE_OFF) from exc


# -- CDP log, console, network, samples ----------------------------------------------------------


@routes.get("/v1/sessions/{id}/logs")
@operation("The session's CDP log", {200: JSON_LINES})
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


class PageOut(BaseModel):
    pageId: int = Field(ge=0)
    targetId: str
    url: str
    title: str
    openedAt: Timestamp
    closedAt: Timestamp | None
    recording: str
    frames: int = Field(ge=0)


class SampleOut(BaseModel):
    at: Timestamp
    cpuPercent: float
    memoryBytes: int


class MetricsOut(BaseModel):
    avgCpuUsage: int | None
    memoryUsage: int | None
    samples: list[SampleOut]


@routes.get("/v1/sessions/{id}/pages")
@operation("The tabs the session opened", {200: list[PageOut]})
async def pages(request: web.Request) -> web.Response:
    """The tabs the session opened, in order (their index is the pageId of logs and replays)."""
    session = await own_session(request)
    rows = await services(request).store.pages(session.id)
    tabs = [
        PageOut(
            pageId=row.page_index,
            targetId=row.target_id,
            url=row.url,
            title=row.title,
            openedAt=row.opened_at,
            closedAt=row.closed_at,
            recording=row.recording,
            frames=row.frame_count,
        ).model_dump(mode="json")
        for row in rows
    ]
    return web.json_response(tabs)


@routes.get("/v1/sessions/{id}/pages/{page}/{kind:console|network}")
@operation(
    "A tab's console or network log",
    {200: JSON_LINES},
    path={"page": PAGE_PARAM, "kind": {"type": "string", "enum": ["console", "network"]}},
)
async def page_log(request: web.Request) -> web.Response:
    session = await own_session(request)
    page = request.match_info["page"]
    if not PAGE_INDEX.fullmatch(page):
        raise NotFound(f"Page {page[:100]} not found")
    files = services(request).artifacts.root.session(session.id)
    kind = request.match_info["kind"]
    path = files.console_log(int(page)) if kind == "console" else files.network_log(int(page))
    entries = await asyncio.to_thread(read_jsonl, path)
    return web.json_response(entries, dumps=_dumps)


@routes.get("/v1/sessions/{id}/metrics")
@operation("CPU and memory samples of the session's browser", {200: MetricsOut})
async def metrics(request: web.Request) -> web.Response:
    """CPU (% of one core) and memory (PSS bytes) of the session's browser, sampled every few seconds."""
    session = await own_session(request)
    samples = await services(request).store.samples(session.id)
    out = MetricsOut(
        avgCpuUsage=session.avg_cpu_usage,
        memoryUsage=session.memory_usage,
        samples=[
            SampleOut(at=s.at, cpuPercent=round(s.cpu_percent, 1), memoryBytes=s.memory_bytes)
            for s in samples
        ],
    )
    return web.json_response(out.model_dump(mode="json"))
