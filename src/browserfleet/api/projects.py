"""Routes under /v1/projects. A key sees only its own project."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from browserfleet.api import schemas
from browserfleet.api.context import caller, services
from browserfleet.api.openapi import operation
from browserfleet.errors import NotFound
from browserfleet.store.models import Project

routes = web.RouteTableDef()
PROJECT_ID = {"id": {"type": "string"}}


async def own_project(request: web.Request) -> Project:
    project = await caller(request)
    if request.match_info["id"] != project.id:
        raise NotFound(f"Project {request.match_info['id'][:100]} not found")
    return project


@routes.get("/v1/projects")
@operation("List projects (the key's own)", {200: list[schemas.ProjectOut]})
async def list_projects(request: web.Request) -> web.Response:
    return web.json_response([schemas.project_json(await caller(request))])


@routes.get("/v1/projects/{id}")
@operation("Get a project", {200: schemas.ProjectOut}, path=PROJECT_ID)
async def get_project(request: web.Request) -> web.Response:
    return web.json_response(schemas.project_json(await own_project(request)))


@routes.get("/v1/projects/{id}/usage")
@operation("A project's usage", {200: schemas.ProjectUsage}, path=PROJECT_ID)
async def project_usage(request: web.Request) -> web.Response:
    project = await own_project(request)
    store = services(request).store
    minutes = await store.browser_minutes(project.id, datetime.now(UTC))
    usage = schemas.ProjectUsage(browserMinutes=minutes, proxyBytes=await store.proxy_bytes(project.id))
    return web.json_response(usage.model_dump(mode="json"))
