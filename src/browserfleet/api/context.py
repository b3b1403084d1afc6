"""Per-request helpers: the caller's project and the shared services."""

from __future__ import annotations

from aiohttp import web

from browserfleet.api.auth import project_for_key
from browserfleet.api.errors import ApiError
from browserfleet.services import SERVICES, Services
from browserfleet.store.models import Project

API_KEY_HEADER = "X-BB-API-Key"  # aiohttp header lookups ignore case


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def caller(request: web.Request) -> Project:
    key = request.headers.get(API_KEY_HEADER)
    if not key:
        raise ApiError(401, "Missing X-BB-API-Key header")
    project = await project_for_key(services(request).store, key)
    if project is None:
        raise ApiError(401, "Invalid API key")
    return project
