"""The CDP policy: what a client may ask of a session's browser, which runs on our host.

Applied to client → browser messages only (commands: few and small); the browser → client stream,
where the volume is, is never parsed. A regex on the raw text picks out the few methods that can
reach the host's files; everything else passes without being parsed.

- Navigation (`Page.navigate`, `Target.createTarget`, `Network.loadNetworkResource`) only to web
  schemes: `file:` and friends would read the host's disk.
- `DOM.setFileInputFiles`, `Page.handleFileChooser`, `Input.dispatchDragEvent` only with files under
  the session's uploads directory; `/tmp/.uploads/<name>` (Browserbase's path for uploaded files) is
  rewritten to it.
- `Browser/Page.setDownloadBehavior`: the download path is always the session's own directory,
  whatever the client asked (Playwright and Stagehand send relative or client-side paths).
- `Extensions.loadUnpacked` is refused: it would load any directory on the host as an extension;
  `PWA.*` (installs from and launches with host files) and `Tethering.*` (binds ports) too.
- A message with a JSON escape is always parsed (an escape could spell a method name), and one with a
  duplicate key is refused whole (which duplicate wins differs between parsers).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WATCHED = re.compile(
    rb'"method"\s*:\s*"(?:Page\.navigate|Target\.createTarget|Network\.loadNetworkResource|DOM\.setFileInputFiles'
    rb"|Browser\.setDownloadBehavior|Page\.setDownloadBehavior|Extensions\.loadUnpacked|Input\.dispatchDragEvent"
    rb"|Page\.handleFileChooser|PWA\.|Tethering\.)"
    # A JSON escape anywhere could spell a method name the pattern above cannot see: parse those too.
    rb"|\\u"
)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
WEB_SCHEMES = frozenset({"http", "https", "about", "data", "blob", "javascript"})
# What URL parsers drop before reading a scheme: leading C0 controls and spaces, and tabs/newlines anywhere.
_IGNORED = re.compile(r"^[\x00-\x20]+|[\t\n\r]")
UPLOADS_ALIAS = "/tmp/.uploads/"  # where Browserbase documents uploaded files; each session has its own
FILE_METHODS = ("DOM.setFileInputFiles", "Page.handleFileChooser", "Input.dispatchDragEvent")


def web_url(url: str) -> bool:
    """True for an empty URL (a blank tab) or one whose scheme is a web scheme."""
    url = _IGNORED.sub("", url)
    if not url:
        return True
    match = _SCHEME.match(url)
    if match is None:
        return False
    scheme = match.group(1).lower()
    if scheme == "view-source":
        return web_url(url[match.end() :])
    return scheme in WEB_SCHEMES


@dataclass(frozen=True)
class Policy:
    downloads_dir: Path
    uploads_dir: Path

    def apply(self, payload: bytes) -> bytes | None:
        """The message to send the browser instead of `payload`, or None to send it unchanged.

        A refused command is sent on as a method Chromium does not have, named with the reason, so
        Chromium itself answers it with an error (`'browserfleet: …' wasn't found`) in the right place
        of the stream and on the right session; the relay never has to inject frames of its own.
        """
        if _WATCHED.search(payload) is None:
            return None
        try:
            message = json.loads(payload, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            # Parsers disagree on which duplicate wins: never let the one we check differ from Chromium's.
            return json.dumps(
                {"id": _id_of(payload), "method": f"browserfleet: duplicate key {exc}"}
            ).encode()
        except ValueError:
            return None  # Chromium answers malformed JSON itself
        if not isinstance(message, dict):
            return None
        params = message.get("params")
        if not isinstance(params, dict):
            params = {}
        method = str(message.get("method"))
        rewritten = method in FILE_METHODS and self._resolve_aliases(method, params)
        refusal = self._refusal(method, params)
        if refusal is not None:
            message["method"] = f"browserfleet: {refusal}"
            message["params"] = {}
            return json.dumps(message).encode()
        if method in ("Browser.setDownloadBehavior", "Page.setDownloadBehavior"):
            if params.get("behavior") in ("allow", "allowAndName") or "downloadPath" in params:
                params["downloadPath"] = str(self.downloads_dir)
                message["params"] = params
                return json.dumps(message).encode()
        if rewritten:
            message["params"] = params
            return json.dumps(message).encode()
        return None

    def _resolve_aliases(self, method: str, params: dict[str, Any]) -> bool:
        """Turn `/tmp/.uploads/<name>` into this session's upload; True if any path changed."""
        holder = params.get("data") if method == "Input.dispatchDragEvent" else params
        files = holder.get("files") if isinstance(holder, dict) else None
        if not isinstance(files, list):
            return False
        changed = False
        for i, path in enumerate(files):
            if isinstance(path, str) and path.startswith(UPLOADS_ALIAS):
                files[i] = str(self.uploads_dir / path.removeprefix(UPLOADS_ALIAS))
                changed = True
        return changed

    def _refusal(self, method: str, params: dict[str, Any]) -> str | None:
        if method in ("Page.navigate", "Target.createTarget", "Network.loadNetworkResource"):
            url = params.get("url", "")
            if not isinstance(url, str) or not web_url(url):
                return f"{method}: only http(s), about, data, blob and javascript URLs are allowed"
        elif method in FILE_METHODS:
            data = params.get("data")
            files = (
                data.get("files", [])
                if method == "Input.dispatchDragEvent" and isinstance(data, dict)
                else None
            )
            files = params.get("files", []) if files is None else files
            if not isinstance(files, list) or not all(
                isinstance(f, str) and self._uploaded(f) for f in files
            ):
                return f"{method}: files must be this session's uploads"
        elif method == "Extensions.loadUnpacked":
            return f"{method}: loading extensions from the server's disk is not allowed"
        elif method.startswith(("PWA.", "Tethering.")):
            return f"{method}: not available (it opens files or ports on the server)"
        return None

    def _uploaded(self, path: str) -> bool:
        real = os.path.realpath(path)
        root = os.path.realpath(self.uploads_dir)
        return real.startswith(root + os.sep)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(repr(key))
        result[key] = value
    return result


def _id_of(payload: bytes) -> int | None:
    match = re.search(rb'"id"\s*:\s*(\d+)', payload)
    return int(match.group(1)) if match else None
