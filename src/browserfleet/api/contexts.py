"""Routes under /v1/contexts: create, retrieve, update (deprecated) and delete. A context is a saved
Chromium profile that sessions start from (`browserSettings.context`); `artifacts/contexts.py` keeps
its archive and the sessions' claims on it.

Names are trimmed, 1-128 characters, and unique in the project among live contexts, compared
case-insensitively (409 on a clash). Another project's context is a 404, like one that never was.

The create (and update) answer's `uploadUrl`, `publicKey`, `cipherAlgorithm` and
`initializationVectorSize` are the legacy fields of client-side encryption, there so that every client
parses the answer. Uploading a profile is not offered, as on the hosted service: `uploadUrl` is a
non-functional sentinel (a host under `.invalid`, which never resolves) and `publicKey` is empty. A
context is filled by a session started with `persist: true`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from browserfleet.api.context import caller, existing_id, owned, services
from browserfleet.api.errors import json_body
from browserfleet.api.openapi import operation
from browserfleet.api.schemas import Timestamp, Uri
from browserfleet.api.sessions import check_project_id
from browserfleet.errors import Conflict, NotFound
from browserfleet.store.models import BrowserContext

routes = web.RouteTableDef()

NAME_MAX = 128
UPLOAD_SENTINEL = "https://context-uploads.invalid/not-supported/{id}"
CIPHER: Literal["AES-256-CBC"] = (
    "AES-256-CBC"  # the only value the contract knows, for the legacy upload nobody can make
)
IV_SIZE = 16


class CreateContext(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields of newer or older SDKs are accepted
    projectId: str | None = None
    name: str | None = Field(default=None, description="Trimmed; 1-128 characters; unique in the project")

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not 1 <= len(value) <= NAME_MAX:
            raise ValueError(f"must be 1 to {NAME_MAX} characters once trimmed (got {len(value)})")
        return value


class UpdateContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    projectId: str | None = None


class ContextKeys(BaseModel):
    """What create and update answer (the legacy upload fields; see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    uploadUrl: Uri = Field(min_length=1, description="Non-functional: uploads are not offered")
    publicKey: str = Field(description="Empty: uploads are not offered")
    cipherAlgorithm: Literal["AES-256-CBC"]
    initializationVectorSize: int = Field(ge=0, le=255)


class ContextOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    createdAt: Timestamp
    updatedAt: Timestamp
    projectId: str
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)


def _keys(context_id: str) -> dict[str, Any]:
    return ContextKeys(
        id=context_id,
        uploadUrl=UPLOAD_SENTINEL.format(id=context_id),
        publicKey="",
        cipherAlgorithm=CIPHER,
        initializationVectorSize=IV_SIZE,
    ).model_dump(mode="json")


@routes.post("/v1/contexts")
@operation("Create a context", {201: ContextKeys}, body=CreateContext)
async def create_context(request: web.Request) -> web.Response:
    project = await caller(request)
    body = CreateContext.model_validate(await json_body(request))
    check_project_id(project, body.projectId)
    now = datetime.now(UTC)
    row = BrowserContext(
        id=str(uuid.uuid4()), project_id=project.id, name=body.name, created_at=now, updated_at=now
    )
    clash = await services(request).store.add_context(row)
    if clash is not None:
        raise Conflict(f"A context named {clash.name!r} already exists in this project ({clash.id})")
    return web.json_response(_keys(row.id), status=201)


@routes.get("/v1/contexts/{id}")
@operation("Get a context", {200: ContextOut})
async def get_context(request: web.Request) -> web.Response:
    project = await caller(request)
    row = await owned(request, BrowserContext, "Context", project.id)
    out = ContextOut(
        id=row.id, createdAt=row.created_at, updatedAt=row.updated_at, projectId=row.project_id, name=row.name
    )
    return web.json_response(out.model_dump(mode="json", exclude_none=True))


@routes.put("/v1/contexts/{id}")
@operation(
    "Update a context (deprecated: it changes nothing)",
    {200: ContextKeys},
    body=UpdateContext,
    description="Answers the legacy upload fields again, as create does. Uploading a profile is not offered.",
)
async def update_context(request: web.Request) -> web.Response:
    project = await caller(request)
    body = UpdateContext.model_validate(await json_body(request))
    check_project_id(project, body.projectId)
    row = await owned(request, BrowserContext, "Context", project.id)
    return web.json_response(_keys(row.id))


@routes.delete("/v1/contexts/{id}")
@operation("Delete a context", {204: None})
async def delete_context(request: web.Request) -> web.Response:
    project = await caller(request)
    context_id = existing_id(request.match_info["id"], "Context")
    svc = services(request)
    deleted, archive = await svc.store.delete_context(context_id, project.id, datetime.now(UTC))
    if not deleted:
        raise NotFound(f"Context {context_id} not found")
    if archive is not None:
        await svc.blobs.delete(archive)
    return web.Response(status=204)
