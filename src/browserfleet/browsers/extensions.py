"""Whether a browser launched with extensions runs them: Chromium skips an unpacked extension it cannot
load (a bad match pattern, a manifest key it refuses) with no more than a line on its stderr, so a
session would silently start without it. `check_loaded` asks the browser (CDP `Extensions.getExtensions`)
until every extension it was launched with is listed and enabled.
"""

from __future__ import annotations

import asyncio

from browserfleet.browsers.cdp import CdpConnection
from browserfleet.browsers.launcher import Browser
from browserfleet.errors import CdpError, InvalidRequest

LOAD_WAIT = 10.0  # seconds Chromium gets to register its extensions after its endpoint opened (a loaded host)
_POLL = 0.05


async def check_loaded(browser: Browser) -> None:
    """Return once every one of `browser.extension_ids` is loaded and enabled; `InvalidRequest` (the
    extension's fault) if one is not within `LOAD_WAIT`, `CdpError` if the browser does not answer."""
    if not browser.extension_ids:
        return
    cdp = await CdpConnection.open(browser)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOAD_WAIT
        while True:
            listed = (await cdp.send("Extensions.getExtensions")).get("extensions", [])
            enabled = {e.get("id") for e in listed if isinstance(e, dict) and e.get("enabled")}
            missing = set(browser.extension_ids) - enabled
            if not missing:
                return
            if loop.time() >= deadline:
                raise InvalidRequest(
                    "Chromium did not load the session's extension: check its manifest.json (match "
                    "patterns, permissions, file names) by loading it unpacked in Chromium"
                )
            await asyncio.sleep(_POLL)
    except OSError as exc:
        raise CdpError(f"cannot ask the browser for its extensions: {exc}") from exc
    finally:
        await cdp.close()
