"""Extensions: what an uploaded zip must be, and unpacking one into a fresh profile for Chromium.

`manifest_of(data)` checks an upload (a safe zip, `artifacts.zips`, with a `manifest.json` at its root
that Chromium 156 would load: a JSON object, manifest version 3, a name, a version, and the files its
background service worker and content scripts name) and returns what the row keeps; each refusal is a
400 that says which rule. `provision(...)` is the provisioner's extension step: the stored zip unpacked
into the profile's root-owned `provisioned/` directory (the browser can read it, never change it), and
the Chromium arguments that load it and no other extension. The unpacked copy belongs to the profile,
so deleting the extension later changes nothing for a browser that already runs with it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import shutil
from dataclasses import dataclass
from typing import Any

from browserfleet.artifacts import zips
from browserfleet.artifacts.storage import Blobs
from browserfleet.browsers.provision import FreshProfile
from browserfleet.errors import InvalidRequest, LaunchFailed, NotFound
from browserfleet.store.models import Extension
from browserfleet.store.repo import Store

MAX_BYTES = 100 * 1024 * 1024  # the contract's limit on an upload
MANIFEST = "manifest.json"
MAX_MANIFEST = 1024 * 1024


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    key: str | None  # the public key that fixes the extension's id, if the manifest has one


def _refuse(reason: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid extension: {reason}")


def manifest_of(data: bytes) -> Manifest:
    """The manifest of an uploaded extension zip, once the zip and the manifest pass every check."""
    members = zips.check(data)
    names = {m.filename for m in members}
    raw = zips.read(data, MANIFEST, MAX_MANIFEST)
    if raw is None:
        nested = sorted(n for n in names if n.endswith("/" + MANIFEST))
        where = (
            f" (there is one at {nested[0]!r}: zip the folder's contents, not the folder)" if nested else ""
        )
        raise _refuse(f"the zip has no manifest.json at its root{where}")
    try:
        manifest = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _refuse(f"manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise _refuse("manifest.json must hold a JSON object")
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not name.strip():
        raise _refuse("manifest.json has no name")
    if not isinstance(version, str) or not version.strip():
        raise _refuse("manifest.json has no version")
    if manifest.get("manifest_version") != 3:
        raise _refuse(
            f"manifest_version is {manifest.get('manifest_version')!r}; this server's Chromium loads "
            "manifest version 3 extensions only"
        )
    for path in _named_files(manifest):
        if path.lstrip("/") not in names:
            raise _refuse(f"manifest.json names {path!r}, which is not in the zip")
    key = manifest.get("key")
    if key is not None and (not isinstance(key, str) or _key_bytes(key) is None):
        raise _refuse("manifest.json's key is not a base64 public key")
    return Manifest(name.strip(), version.strip(), key)


def _named_files(manifest: dict[str, Any]) -> list[str]:
    """The files Chromium refuses to load an extension without: its service worker, its content
    scripts' scripts and style sheets."""
    paths: list[str] = []
    background = manifest.get("background")
    if isinstance(background, dict) and isinstance(background.get("service_worker"), str):
        paths.append(background["service_worker"])
    scripts = manifest.get("content_scripts")
    for entry in scripts if isinstance(scripts, list) else ():
        if isinstance(entry, dict):
            for kind in ("js", "css"):
                files = entry.get(kind)
                paths.extend(f for f in (files if isinstance(files, list) else ()) if isinstance(f, str))
    return paths


def _key_bytes(key: str) -> bytes | None:
    try:
        return base64.b64decode(key, validate=True) or None
    except (binascii.Error, ValueError):
        return None


def chromium_id(seen_path: str, key: str | None = None) -> str:
    """The id Chromium gives an unpacked extension: from its manifest's key if it has one, else from its
    path as the browser sees it. 32 letters a-p, one per hex digit of a SHA-256."""
    source = _key_bytes(key) if key is not None else None
    digest = hashlib.sha256(source if source is not None else seen_path.encode()).hexdigest()[:32]
    return "".join(chr(ord("a") + int(digit, 16)) for digit in digest)


async def provision(
    store: Store, blobs: Blobs, extension_id: str, project_id: str | None, profile: FreshProfile
) -> list[str]:
    """Unpack the extension into `profile`; the Chromium arguments that load it (and only it)."""
    row = await store.resource(Extension, extension_id, project_id)
    if row is None:
        raise NotFound(f"Extension {extension_id} not found")
    try:
        data = await blobs.get(row.archive_key)
    except KeyError:
        raise NotFound(f"Extension {extension_id} not found (it was deleted)") from None
    manifest = manifest_of(data)  # checked at upload; checked again before anything is written
    dest = profile.readonly / "extensions" / row.id

    def unpack() -> None:
        dest.parent.mkdir(mode=0o755, exist_ok=True)
        try:
            zips.extract(data, dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise

    try:
        await asyncio.to_thread(unpack)
    except OSError as exc:
        raise LaunchFailed("cannot unpack the session's extension", str(exc)) from exc
    seen = profile.seen(dest)
    profile.extension_ids.append(chromium_id(seen, manifest.key))
    # --disable-extensions-except: nothing else loads (no component or policy-installed extension).
    return [f"--load-extension={seen}", f"--disable-extensions-except={seen}"]
