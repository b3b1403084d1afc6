"""API keys: generated as random tokens, stored as sha256 hashes, checked on every request and socket."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from browserfleet.store.models import ApiKey, Project
from browserfleet.store.repo import Store

KEY_PREFIX = "bf_"
MAX_KEY_LENGTH = 256  # longer is no key of ours: not worth a hash or a lookup


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def add_key(store: Store, project_id: str, key: str, name: str = "") -> ApiKey:
    row = ApiKey(
        key_hash=hash_key(key),
        prefix=key[:12],
        project_id=project_id,
        name=name,
        created_at=datetime.now(UTC),
    )
    await store.add_key(row)
    return row


async def project_for_key(store: Store, key: str | None) -> Project | None:
    """The project a key belongs to, or None for a missing, unknown or revoked key.

    A header that is not UTF-8 arrives with lone surrogates in it (aiohttp decodes it with
    surrogateescape): that cannot be hashed, and is no key either."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    try:
        key.encode()
    except UnicodeEncodeError:
        return None
    row = await store.key(hash_key(key))
    if row is None or row.revoked_at is not None:
        return None
    return await store.project(row.project_id)
