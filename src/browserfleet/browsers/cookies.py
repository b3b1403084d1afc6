"""Cookies a fresh profile must start with, carried over CDP: Chromium may keep session cookies in
memory only, so a saved profile carries its cookies beside its files (`Storage.getCookies` when it is
saved) and they are set again (`Storage.setCookies`) once the new browser is up, before any client
sees it.

A provisioner leaves them in `<profile>/cookies.json`, root's and 0600: the browser's uid cannot read
it; `restore` reads it, removes it and sets them. Pooled browsers have no such file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from browserfleet.browsers.cdp import CdpConnection
from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.provision import FreshProfile
from browserfleet.errors import CdpError, LaunchFailed

log = logging.getLogger(__name__)

FILE = "cookies.json"
# What Storage.setCookies takes of what Storage.getCookies gives (CookieParam ⊂ Cookie).
_PARAMS = (
    "name",
    "value",
    "domain",
    "path",
    "secure",
    "httpOnly",
    "sameSite",
    "priority",
    "sameParty",
    "sourceScheme",
    "sourcePort",
    "partitionKey",
)


def offer(profile: FreshProfile, cookies: list[dict[str, Any]]) -> None:
    """Leave `cookies` for `restore` to set once the browser of `profile` is up."""
    fd = os.open(profile.root / FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(cookies, out)


def _param(cookie: dict[str, Any]) -> dict[str, Any]:
    param = {key: cookie[key] for key in _PARAMS if key in cookie}
    if not cookie.get("session") and isinstance(cookie.get("expires"), (int, float)):
        param["expires"] = cookie["expires"]  # a session cookie has none (-1 in getCookies)
    return param


def _take(path: Path) -> list[Any]:
    """The cookies left at `path` (none if there is no file), and the file gone."""
    try:
        cookies = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    finally:
        path.unlink(missing_ok=True)
    return cookies if isinstance(cookies, list) else []


async def restore(browser: Browser) -> None:
    """Set the cookies the provisioner left, if any. `LaunchFailed` if the browser refuses them all."""
    cookies = await asyncio.to_thread(_take, browser.profile_dir / FILE)
    params = [_param(c) for c in cookies if isinstance(c, dict)]
    if not params:
        return
    try:
        cdp = await CdpConnection.open(browser)
    except Exception as exc:  # a socket error, a timeout, a refused handshake
        raise LaunchFailed("the context's saved cookies could not be restored", str(exc)) from exc
    try:
        try:
            await cdp.send("Storage.setCookies", {"cookies": params})
            return
        except CdpError as exc:
            log.warning("browser %s: %d saved cookies refused together (%s)", browser.pid, len(params), exc)
        # One refused cookie (a rule newer Chromium enforces) must not lose the others.
        taken = 0
        for param in params:
            try:
                await cdp.send("Storage.setCookies", {"cookies": [param]})
                taken += 1
            except CdpError as exc:
                log.warning("browser %s: saved cookie %r refused: %s", browser.pid, param.get("name"), exc)
        if not taken:
            raise LaunchFailed("the context's saved cookies could not be restored")
    finally:
        await cdp.close()


async def collect(cdp: CdpConnection) -> list[dict[str, Any]]:
    """Every cookie of the browser's default context, session cookies included."""
    cookies = (await cdp.send("Storage.getCookies")).get("cookies", [])
    return [c for c in cookies if isinstance(c, dict)]
