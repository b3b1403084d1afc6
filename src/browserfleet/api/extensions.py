"""Routes under /v1/extensions: upload (multipart `file`, a zip checked by `artifacts.extensions`),
retrieve and delete. There is no list, as in the contract.

An extension is its project's alone: another project's id is a 404, like an unknown or deleted one.
Deleting one removes its zip and marks the row deleted; sessions already running with it keep their
unpacked copy, and new creates naming it get a 404.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from aiohttp import web
from pydantic import Field

from browserfleet.api.context import caller, owned, services, well_formed_id
from browserfleet.api.files import read_file_field
from browserfleet.api.openapi import operation
from browserfleet.api.schemas import Timestamp, _Out
from browserfleet.artifacts import extensions
from browserfleet.errors import NotFound, TooLarge
from browserfleet.store.models import Extension

routes = web.RouteTableDef()
CHUNK = 256 * 1024
TOO_LARGE = f"Extension is too large: the limit is {extensions.MAX_BYTES // 2**20} MB"
UPLOAD_FORM = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "a zip, manifest.json at its root"}
    },
    "required": ["file"],
}


class ExtensionOut(_Out):
    id: str
    createdAt: Timestamp
    updatedAt: Timestamp
    fileName: str = Field(min_length=1)
    projectId: str


def extension_json(row: Extension) -> dict[str, object]:
    return ExtensionOut(
        id=row.id,
        createdAt=row.created_at,
        updatedAt=row.updated_at,
        fileName=row.file_name,
        projectId=row.project_id,
    ).model_dump(mode="json")


async def _file_part(request: web.Request) -> tuple[str, bytes]:
    """(file name, bytes) of the multipart field `file`, at most `extensions.MAX_BYTES` of them."""
    if request.content_length is not None and request.content_length > extensions.MAX_BYTES + 64 * 1024:
        raise TooLarge(TOO_LARGE)
    sent, data = await read_file_field(request, "the extension (a zip)", extensions.MAX_BYTES, TOO_LARGE)
    name = sent.replace("\x00", "").strip()[:255] or "extension.zip"
    return name, data


@routes.post("/v1/extensions")
@operation("Upload an extension", {200: ExtensionOut}, multipart=UPLOAD_FORM)
async def create_extension(request: web.Request) -> web.Response:
    project = await caller(request)
    svc = services(request)
    file_name, data = await _file_part(request)
    manifest = extensions.manifest_of(data)  # 400 naming what is wrong, before anything is stored
    key = await svc.blobs.put("extensions", data)
    now = datetime.now(UTC)
    row = Extension(
        id=str(uuid.uuid4()),
        project_id=project.id,
        file_name=file_name,
        name=manifest.name,
        version=manifest.version,
        archive_key=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=now,
        updated_at=now,
    )
    try:
        await svc.store.add_resource(row)
    except BaseException:
        await svc.blobs.delete(key)
        raise
    return web.json_response(extension_json(row))


@routes.get("/v1/extensions/{id}")
@operation("Get an extension", {200: ExtensionOut})
async def get_extension(request: web.Request) -> web.Response:
    return web.json_response(extension_json(await owned(request, Extension, "Extension")))


@routes.delete("/v1/extensions/{id}")
@operation("Delete an extension", {204: None})
async def delete_extension(request: web.Request) -> web.Response:
    row = await owned(request, Extension, "Extension")
    svc = services(request)
    if not await svc.store.delete_resource(Extension, row.id, row.project_id, datetime.now(UTC)):
        raise NotFound(f"Extension {row.id} not found")  # deleted meanwhile by another request
    await svc.blobs.delete(row.archive_key)
    return web.Response(status=204)


async def check_usable(request: web.Request, extension_id: str | None, project_id: str) -> None:
    """At session create: the extension it names must be the project's and not deleted (else 404)."""
    if extension_id is None:
        return
    # Not a UUID, so no extension's: not looked up.
    if (
        not well_formed_id(extension_id)
        or await services(request).store.resource(Extension, extension_id, project_id) is None
    ):
        raise NotFound(f"Extension {extension_id[:100]} not found")
