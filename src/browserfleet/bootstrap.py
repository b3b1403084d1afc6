"""First-start set-up: the bootstrap project and its API key, and limits from the environment
(concurrency, default timeout, creations per minute)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from browserfleet.api import auth
from browserfleet.config import Settings
from browserfleet.store.models import Project
from browserfleet.store.repo import Store

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 25  # Browserbase's Developer plan
DEFAULT_TIMEOUT = 300  # seconds, as on Browserbase


async def create_project(
    store: Store,
    name: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    default_timeout: int = DEFAULT_TIMEOUT,
    creations_per_minute: int | None = None,
) -> Project:
    now = datetime.now(UTC)
    project = Project(
        id=str(uuid.uuid4()),
        name=name,
        owner_id="local",
        default_timeout=default_timeout,
        concurrency=concurrency,
        creations_per_minute=creations_per_minute,
        created_at=now,
        updated_at=now,
    )
    return await store.add_project(project)


async def bootstrap(store: Store, settings: Settings) -> tuple[Project, str | None]:
    """The bootstrap project, and a newly generated key when one had to be made (shown once)."""
    projects = await store.projects()
    project = projects[0] if projects else await create_project(store, "default")
    limits: dict[str, int | None] = {
        name: value
        for name, value in (
            ("concurrency", settings.concurrency),
            ("default_timeout", settings.default_timeout),
        )
        if value is not None and getattr(project, name) != value
    }
    if settings.creations_per_minute is not None:  # set, 0 included: it turns the limit off
        rate = settings.creations_per_minute or None
        if project.creations_per_minute != rate:
            limits["creations_per_minute"] = rate
    if limits:
        project = await store.update_project(project.id, updated_at=datetime.now(UTC), **limits) or project
    if settings.api_key:
        existing = await store.key(auth.hash_key(settings.api_key))
        if existing is None:
            await auth.add_key(store, project.id, settings.api_key, "bootstrap (BROWSERFLEET_API_KEY)")
        elif existing.revoked_at is not None:
            log.warning("BROWSERFLEET_API_KEY was revoked (%s) and stays revoked", existing.revoked_at)
        return project, None
    if not await store.keys(project.id):
        key = auth.new_key()
        await auth.add_key(store, project.id, key, "bootstrap (generated)")
        return project, key
    return project, None
