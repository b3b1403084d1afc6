"""The CDP policy: what a client may ask of a session's browser, which runs on our host.

Applied to every client → browser text message (commands: few and small); the browser → client
stream is never parsed. What it guarantees:

- **What is checked is what Chromium runs.** Each message is parsed as strict JSON: UTF-8, no
  duplicate keys, no NaN or Infinity, no raw control characters, no escapes beyond JSON's; a message
  that does not parse, or has no integer `id`, cannot be answered and raises `Unanswerable` (the relay
  closes the connection with 1008). The checked bytes are what goes on, or the policy's own
  re-serialisation of what it parsed. Lone surrogates, nesting deeper than Chromium accepts, keys
  Chromium does not know at the top level and non-object `params` are refused.
- **Methods are allow-listed**: a domain in `DOMAINS` passes whole, except the methods in `REFUSED`;
  in the domains that act on the browser process itself (`Browser`, `Target`, `Memory`, `Tracing`,
  `IO`, `Extensions`, `SystemInfo`) only the methods in `METHODS` pass. Everything else is refused.
  The reasons are with the lists; `tests/test_policy.py` holds the matrix.
- **Parameters** of the few methods that name URLs, files or directories: navigation only to web
  schemes (and `Target.createTarget` also to the pages of the session's own extensions, by their ids,
  `chrome-extension://<id>/...`: nothing else of chrome-extension://, chrome:// or devtools://); files
  only from the session's uploads; downloads only to the session's own directory; no
  remote debugging locations.
  Paths are as the browser sees them and are checked lexically (`..` resolved, nothing read from disk);
  the path checked is the path sent. `/tmp/.uploads/<name>` (Browserbase's path for uploaded files) is
  rewritten to the uploads directory when that is somewhere else.
- `Target.sendMessageToTarget` carries a whole message for another target: it is checked as one, and a
  refused inner command is answered by that target, in its own stream.

A refused command goes on to Chromium renamed `browserfleet: <reason>` (with its `id` and `sessionId`,
no params), so Chromium answers it with an error in the right place: the relay never injects frames.
Reasons name the method, never a host path.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

log = logging.getLogger(__name__)

MAX_DEPTH = 300  # Chromium refuses messages nested deeper ("stack limit exceeded"); Python parses ~900
_SCAN_LIMIT = 64 * 1024  # bytes; see _shape_problem
MAX_NESTED = 4  # Target.sendMessageToTarget inside Target.sendMessageToTarget, at most this deep
_INT32 = range(-(1 << 31), 1 << 31)
_TOP_LEVEL = frozenset({"id", "method", "params", "sessionId"})  # Chromium refuses any other key

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
WEB_SCHEMES = frozenset({"http", "https", "about", "data", "blob", "javascript"})
# What URL parsers drop before reading a scheme: leading C0 controls and spaces, and tabs/newlines anywhere.
_IGNORED = re.compile(r"^[\x00-\x20]+|[\t\n\r]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A page of one extension: its id (32 letters a-p, as Chromium writes it) and then the path, or nothing.
_EXTENSION_PAGE = re.compile(r"chrome-extension://([a-p]{32})(?:[/?#]|$)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UPLOADS_ALIAS = "/tmp/.uploads"  # where Browserbase documents uploaded files; each session has its own

# Domains whose every method passes, unless it is in REFUSED. They act on the session's own pages,
# contexts and storage, or emulate devices; none names a file or a host on the server.
DOMAINS = frozenset(
    {
        "Accessibility", "Ads", "Animation", "Audits", "Autofill", "BackgroundService", "BluetoothEmulation",
        "CSS", "CacheStorage", "Console", "CrashReportContext", "DOM", "DOMDebugger", "DOMSnapshot",
        "DOMStorage", "Debugger", "DeviceOrientation", "DigitalCredentials", "Emulation", "EventBreakpoints",
        "FedCm", "Fetch", "FileSystem", "FindInPage", "HeadlessExperimental", "HeapProfiler", "IndexedDB",
        "Input", "Inspector", "LayerTree", "Log", "Media", "Network", "Overlay", "Page", "Performance",
        "PerformanceTimeline", "Preload", "Profiler", "Runtime", "Schema", "Security", "ServiceWorker",
        "SmartCardEmulation", "Storage", "WebAudio", "WebAuthn", "WebMCP",
    }
)  # fmt: skip
# Domains that act on the browser process: only these of their methods pass.
METHODS = frozenset(
    {
        # Browser: permissions, downloads (rewritten below), windows, version, closing it.
        "Browser.setPermission", "Browser.grantPermissions", "Browser.resetPermissions",
        "Browser.setDownloadBehavior", "Browser.cancelDownload", "Browser.close", "Browser.getVersion",
        "Browser.addMockCamera", "Browser.getWindowBounds", "Browser.getWindowForTarget",
        "Browser.setWindowBounds", "Browser.setContentsSize", "Browser.setDockTile",
        "Browser.executeBrowserCommand", "Browser.addPrivacySandboxEnrollmentOverride",
        "Browser.getGlobalPrivacyControl", "Browser.setGlobalPrivacyControl",
        # Target: tabs, contexts and sessions of this browser (createTarget's URL and
        # sendMessageToTarget's message are checked below).
        "Target.activateTarget", "Target.attachToTarget", "Target.attachToBrowserTarget",
        "Target.closeTarget", "Target.createBrowserContext", "Target.getBrowserContexts",
        "Target.createTarget", "Target.detachFromTarget", "Target.disposeBrowserContext",
        "Target.getTargetInfo", "Target.getTargets", "Target.sendMessageToTarget",
        "Target.setAutoAttach", "Target.autoAttachRelated", "Target.setDiscoverTargets",
        "Target.getDevToolsTarget", "Target.setRemoteLocations",
        # Memory: DOM counters, leak detection, pressure; not the native heap profiles.
        "Memory.getDOMCounters", "Memory.getDOMCountersForLeakDetection", "Memory.prepareForLeakDetection",
        "Memory.forciblyPurgeJavaScriptMemory", "Memory.setPressureNotificationsSuppressed",
        "Memory.simulatePressureNotification",
        # Tracing (start's parameters are checked below); traces are streamed back, never written here.
        "Tracing.start", "Tracing.end", "Tracing.getCategories", "Tracing.getTrackEventDescriptor",
        "Tracing.recordClockSyncMarker", "Tracing.requestMemoryDump",
        # IO: the streams other commands return (traces, PDFs, response bodies, blobs), by handle.
        "IO.read", "IO.close", "IO.resolveBlob",
        # Extensions: only the read-only listing (Stagehand needs it). Loading one from disk is refused,
        # and so is acting for or on an installed one (triggering, uninstalling, its storage).
        "Extensions.getExtensions",
        "SystemInfo.getFeatureState",
    }
)  # fmt: skip
_SERVER_FILES = "it reads or installs files on the server"
_HOST_DETAILS = "it reveals the server's paths, processes and hardware"
REFUSED: dict[str, str] = {
    "Extensions.loadUnpacked": "loading extensions from the server's disk is not allowed",
    "PWA.*": f"not available ({_SERVER_FILES})",
    "Tethering.*": "not available (it opens ports on the server)",
    "Cast.*": "not available (it reaches devices on the server's network, and mirrors its desktop)",
    "DeviceAccess.*": "not available (it hands pages the server's Bluetooth and USB devices)",
    "SystemInfo.getInfo": f"not available ({_HOST_DETAILS})",
    "SystemInfo.getProcessInfo": f"not available ({_HOST_DETAILS})",
    "Browser.getBrowserCommandLine": f"not available ({_HOST_DETAILS})",
    "Browser.getHistogram": f"not available ({_HOST_DETAILS})",
    "Browser.getHistograms": f"not available ({_HOST_DETAILS})",
    "Memory.startSampling": "not available (native heap profiles list the server's libraries)",
    "Memory.stopSampling": "not available (native heap profiles list the server's libraries)",
    "Memory.getSamplingProfile": "not available (native heap profiles list the server's libraries)",
    "Memory.getAllTimeSamplingProfile": "not available (native heap profiles list the server's libraries)",
    "Memory.getBrowserSamplingProfile": "not available (native heap profiles list the server's libraries)",
    "Browser.crash": "not available (a crash can leave a core dump on the server)",
    "Browser.crashGpuProcess": "not available (a crash can leave a core dump on the server)",
    # A page given the protocol, or a DevTools window, would drive the browser without passing here.
    "Target.exposeDevToolsProtocol": "not available (it would hand a page the browser's protocol)",
    "Target.openDevTools": "not available (a DevTools window drives the browser from inside it)",
}
_REFUSED_DOMAINS = {
    name.removesuffix(".*"): reason for name, reason in REFUSED.items() if name.endswith(".*")
}
FILE_METHODS = ("DOM.setFileInputFiles", "Page.handleFileChooser", "Input.dispatchDragEvent")
URL_METHODS = ("Page.navigate", "Target.createTarget", "Network.loadNetworkResource", "Fetch.continueRequest")
DOWNLOAD_METHODS = ("Browser.setDownloadBehavior", "Page.setDownloadBehavior")


class Unanswerable(ValueError):
    """A message that must not reach Chromium and has no `id` to answer: the connection has to close."""


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


# -- strict JSON ----------------------------------------------------------------------------------


class _Invalid(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Invalid("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Invalid("number out of range")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_no_constant, parse_float=_finite)


def parse(payload: bytes) -> dict[str, Any]:
    """The message in `payload`, parsed strictly; it has an int32 `id`. Raises `Unanswerable`."""
    try:
        message = _DECODER.decode(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise Unanswerable("not UTF-8") from None
    except RecursionError:
        raise Unanswerable("nested too deep") from None
    except _Invalid as exc:
        raise Unanswerable(str(exc)) from None
    except ValueError as exc:  # JSONDecodeError, and ints too long to convert
        raise Unanswerable(f"not JSON ({str(exc).partition(':')[0]})") from None
    if type(message) is not dict:
        raise Unanswerable("not a JSON object")
    ident = message.get("id")
    if type(ident) is not int or ident not in _INT32:
        raise Unanswerable("no integer id")
    return message


def _shape_problem(message: dict[str, Any], payload: bytes) -> str | None:
    """Why a parsed message is refused whole, if it is; at most one walk over its containers."""
    if type(message.get("method")) is not str:
        return "method must be a string"
    if "params" in message and type(message["params"]) is not dict:
        return "params must be an object"
    if not message.keys() <= _TOP_LEVEL:
        return "unknown top-level key (Chromium accepts id, method, params and sessionId)"
    # Strictly decoded UTF-8 holds no surrogate, so only a \u escape can make one, and a message with
    # few brackets cannot be deep: most commands need no walk. (Scanning big ones costs more than walking.)
    if len(payload) <= _SCAN_LIMIT and b"\\u" not in payload:
        if payload.count(b"{") + payload.count(b"[") <= MAX_DEPTH:
            return None
    stack: list[tuple[Any, int]] = [(message, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return "nested too deep"
        items = value.items() if type(value) is dict else enumerate(value)
        for key, item in items:
            if type(key) is str and not key.isascii() and _SURROGATE.search(key):
                return "lone surrogate in a string"
            kind = type(item)
            if kind is str:
                if not item.isascii() and _SURROGATE.search(item):
                    return "lone surrogate in a string"
            elif kind is dict or kind is list:
                stack.append((item, depth + 1))
    return None


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _shown(method: str) -> str:
    return method if len(method) <= 100 else method[:100] + "…"


# -- the policy -----------------------------------------------------------------------------------

Check = Callable[["Policy", str, dict[str, Any], int], "str | dict[str, Any] | None"]


@dataclass(frozen=True)
class Policy:
    """The policy of one session; both directories are paths as the session's browser sees them."""

    downloads_dir: PurePath | str
    uploads_dir: PurePath | str
    extension_ids: frozenset[str] = frozenset()  # Chromium's ids of the session's own extensions

    def apply(self, payload: bytes) -> bytes | None:
        """The message to send the browser instead of `payload`, or None to send it unchanged.

        Raises `Unanswerable` for a message that must not be sent and cannot be answered.
        """
        message = parse(payload)
        replaced = self._check(message, payload, 0)
        return None if replaced is None else _dumps(replaced)

    def _check(self, message: dict[str, Any], payload: bytes, nesting: int) -> dict[str, Any] | None:
        """The message to send instead (a refusal or a rewrite), or None to send it as it is."""
        session = message.get("sessionId")
        if "sessionId" in message and (type(session) is not str or _SURROGATE.search(session)):
            return _refusal(message["id"], None, "sessionId must be a string")
        problem = _shape_problem(message, payload)
        if problem is not None:
            return _refusal(message["id"], session, problem)
        method: str = message["method"]
        reason = method_refusal(method)
        if reason is not None:
            log.debug("refused %s", _shown(method))
            return _refusal(message["id"], session, f"{_shown(method)}: {reason}")
        check = _CHECKS.get(method)
        if check is None:
            return None
        outcome = check(self, method, message.get("params", {}), nesting)
        if outcome is None:
            return None
        if isinstance(outcome, str):
            log.debug("refused %s: %s", method, outcome)
            return _refusal(message["id"], session, f"{method}: {outcome}")
        return {**message, "params": outcome}

    # -- parameter checks: a refusal reason, new params, or None to pass ---------------------------

    def _url(self, method: str, params: dict[str, Any], nesting: int) -> str | None:
        if method == "Fetch.continueRequest" and "url" not in params:
            return None
        url = params.get("url", "")
        if isinstance(url, str) and method == "Target.createTarget" and self._own_extension_page(url):
            return None
        if not isinstance(url, str) or not web_url(url):
            return "only http(s), about, data, blob and javascript URLs are allowed"
        return None

    def _own_extension_page(self, url: str) -> bool:
        match = _EXTENSION_PAGE.match(_IGNORED.sub("", url))
        return match is not None and match.group(1) in self.extension_ids

    def _files(self, method: str, params: dict[str, Any], nesting: int) -> str | dict[str, Any] | None:
        drag = method == "Input.dispatchDragEvent"
        holder = params.get("data") if drag else params
        if not isinstance(holder, dict):
            return None  # Chromium refuses a drag without data; nothing names a file
        files = holder.get("files", [])
        if not isinstance(files, list):
            return "files must be this session's uploads"
        checked = [self._upload(f) if isinstance(f, str) else None for f in files]
        if any(path is None for path in checked):
            return "files must be this session's uploads"
        if checked == files:
            return None
        holder = {**holder, "files": checked}
        return {**params, "data": holder} if drag else holder

    def _upload(self, path: str) -> str | None:
        """`path` as sent on (normalised, the alias resolved), if it names one of the session's uploads."""
        root = posixpath.normpath(str(self.uploads_dir))
        if root != UPLOADS_ALIAS and path.startswith(UPLOADS_ALIAS + "/"):
            path = root + path[len(UPLOADS_ALIAS) :]
        if not path.startswith("/") or _CONTROL.search(path):
            return None
        normal = posixpath.normpath(path)
        return normal if normal.startswith(root + "/") else None

    def _downloads(self, method: str, params: dict[str, Any], nesting: int) -> dict[str, Any] | None:
        if params.get("behavior") in ("allow", "allowAndName") or "downloadPath" in params:
            return {**params, "downloadPath": str(self.downloads_dir)}
        return None

    def _no_locations(self, method: str, params: dict[str, Any], nesting: int) -> dict[str, Any] | None:
        # It would make the browser connect to those hosts' debuggers (a Node inspector on the host,
        # when isolation is off). The DevTools frontend asks for localhost:9229 at start: it is told yes.
        return None if params.get("locations") == [] else {**params, "locations": []}

    def _tracing(self, method: str, params: dict[str, Any], nesting: int) -> str | None:
        # A raw Perfetto config can name any data source and output; the system backend is the host's.
        if "perfettoConfig" in params or params.get("tracingBackend") == "system":
            return "perfettoConfig and the system backend are not available"
        return None

    def _nested(self, method: str, params: dict[str, Any], nesting: int) -> str | dict[str, Any] | None:
        inner = params.get("message")
        if not isinstance(inner, str):
            return "message must be a string"
        if nesting + 1 >= MAX_NESTED:
            return "messages nested too deep"
        payload = inner.encode()  # the outer check found no lone surrogate in it
        try:
            parsed = parse(payload)
        except Unanswerable as exc:
            return f"the inner message is not valid ({exc})"
        replaced = self._check(parsed, payload, nesting + 1)
        if replaced is None:
            return None
        return {**params, "message": _dumps(replaced).decode()}


_CHECKS: dict[str, Check] = {
    **dict.fromkeys(URL_METHODS, Policy._url),
    **dict.fromkeys(FILE_METHODS, Policy._files),
    **dict.fromkeys(DOWNLOAD_METHODS, Policy._downloads),
    "Tracing.start": Policy._tracing,
    "Target.sendMessageToTarget": Policy._nested,
    "Target.setRemoteLocations": Policy._no_locations,
}


def method_refusal(method: str) -> str | None:
    """Why `method` is refused whatever its parameters, or None if it may pass."""
    domain = method.partition(".")[0]
    reason = REFUSED.get(method) or _REFUSED_DOMAINS.get(domain)
    if reason is not None:
        return reason
    if domain in DOMAINS or method in METHODS:
        return None
    return "not available through browserfleet"


def _refusal(ident: int, session: str | None, reason: str) -> dict[str, Any]:
    message: dict[str, Any] = {"id": ident, "method": f"browserfleet: {reason}", "params": {}}
    if session is not None:
        message["sessionId"] = session
    return message
