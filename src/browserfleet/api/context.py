"""Per-request helpers: the caller's project, the shared services, and the form of ids in paths."""

from __future__ import annotations

import re

from aiohttp import web

from browserfleet.api.auth import project_for_key
from browserfleet.errors import NotFound, Unauthenticated
from browserfleet.services import SERVICES, Services
from browserfleet.store.models import Project
from browserfleet.store.repo import R

API_KEY_HEADER = "X-BB-API-Key"  # aiohttp header lookups ignore case
# Sessions and downloads are named by UUIDs. Anything else is looked up nowhere: a database whose id
# column is a UUID type would refuse it with an error, not answer "no such row".
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def well_formed_id(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def existing_id(value: str, kind: str = "Session") -> str:
    """`value` if it can name a session (or download); else the 404 an unknown one gets."""
    if not well_formed_id(value):
        raise NotFound(f"{kind} {value[:100]} not found")
    return value


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def caller(request: web.Request) -> Project:
    key = request.headers.get(API_KEY_HEADER)
    if not key:
        raise Unauthenticated("Missing X-BB-API-Key header")
    project = await project_for_key(services(request).store, key)
    if project is None:
        raise Unauthenticated("Invalid API key")
    return project


async def owned(request: web.Request, kind: type[R], label: str, project_id: str | None = None) -> R:
    """The live resource the path's `{id}` names, in the caller's project (`project_id` if the caller
    is known already); else the 404 an unknown one gets, whoever owns it."""
    if project_id is None:
        project_id = (await caller(request)).id
    resource_id = existing_id(request.match_info["id"], label)
    row = await services(request).store.resource(kind, resource_id, project_id)
    if row is None:
        raise NotFound(f"{label} {resource_id} not found")
    return row
