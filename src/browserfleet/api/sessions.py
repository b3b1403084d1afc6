"""Routes under /v1/sessions."""

from __future__ import annotations

from aiohttp import web

from browserfleet.api import schemas
from browserfleet.api.context import caller, existing_id, services
from browserfleet.api.errors import json_body, rate_limit_headers
from browserfleet.api.openapi import operation
from browserfleet.errors import NotFound
from browserfleet.sessions.manager import RUNNING, SessionSpec
from browserfleet.store.models import Project

routes = web.RouteTableDef()


def check_project_id(project: Project, project_id: str | None) -> None:
    # Older SDKs always send projectId; it must be the key's own project.
    if project_id is not None and project_id != project.id:
        raise NotFound(f"Project {project_id} not found")


@routes.post("/v1/sessions")
@operation("Create a session", {201: schemas.CreatedSession}, body=schemas.CreateSession)
async def create_session(request: web.Request) -> web.Response:
    project = await caller(request)
    raw = await json_body(request)
    # Everything is validated here, before a browser is taken from the pool.
    body = schemas.CreateSession.model_validate(raw)
    check_project_id(project, body.projectId)
    settings = body.browserSettings
    spec = SessionSpec(
        timeout=body.timeout,
        keep_alive=bool(body.keepAlive),
        region=body.region or "us-west-2",
        user_metadata=body.userMetadata,
        context_id=settings.context.id if settings and settings.context else None,
        params=raw,
    )
    svc = services(request)
    row = await svc.manager.create(project, spec)
    payload = schemas.CreatedSession(
        **schemas.session_fields(row),
        connectUrl=svc.connect_url(request, row.id),
        seleniumRemoteUrl=svc.selenium_url(request),
        signingKey=svc.signing_keys.mint(row.id),
    ).model_dump(mode="json")
    remaining, reset = svc.manager.usage(project)
    headers = rate_limit_headers(project.concurrency, remaining, reset)
    return web.json_response(payload, status=201, headers=headers)


@routes.get("/v1/sessions")
@operation("List sessions", {200: list[schemas.SessionOut]}, query=schemas.ListSessions)
async def list_sessions(request: web.Request) -> web.Response:
    project = await caller(request)
    params = schemas.ListSessions.model_validate(dict(request.query))
    rows = await services(request).manager.list(project.id, params.status, params.q)
    return web.json_response([schemas.session_json(row) for row in rows])


@routes.get("/v1/sessions/{id}")
@operation("Get a session", {200: schemas.RunningSession})
async def get_session(request: web.Request) -> web.Response:
    project = await caller(request)
    svc = services(request)
    row = await svc.manager.get(project.id, existing_id(request.match_info["id"]))
    fields = schemas.session_fields(row)
    if row.status == RUNNING:
        fields |= {
            "connectUrl": svc.connect_url(request, row.id),
            "seleniumRemoteUrl": svc.selenium_url(request),
            "signingKey": svc.signing_keys.mint(row.id),
        }
    # Unset: an ended session's answer has no connect fields at all.
    return web.json_response(schemas.RunningSession(**fields).model_dump(mode="json", exclude_unset=True))


@routes.post("/v1/sessions/{id}")
@operation("Release a session", {200: schemas.SessionOut}, body=schemas.UpdateSession)
async def update_session(request: web.Request) -> web.Response:
    project = await caller(request)
    session_id = existing_id(request.match_info["id"])
    body = schemas.UpdateSession.model_validate(await json_body(request))
    check_project_id(project, body.projectId)
    row = await services(request).manager.release(project.id, session_id)
    return web.json_response(schemas.session_json(row))
