"""The W3C WebDriver endpoint (`seleniumRemoteUrl`, `/webdriver/...`): Selenium drives a session's own
browser through a chromedriver of its own.

Who: every command carries `x-bb-signing-key` (the session's signing key), or `x-bb-api-key` and the
session's id (in the command's path, or the `session-id` header for a new-session command). A new-session
command with an API key alone creates a session first (its `bb:options` capability is a create body;
`?enableProxy=true` on the URL means `proxies: true`). A signing key never reaches another session, an
API key never another project's.

How: the first new-session command of a session starts its chromedriver (`drivers.Drivers`), whose
debugger address is a listener the gateway serves inside the driver's namespace (`_serve_cdp`): the
driver's CDP socket is spliced to the browser by the same relay, CDP policy and CDP-log tap as any
client's, so vendor commands (`goog/cdp/execute`) and `se:cdp` (the session's connectUrl) meet the policy
too. The new-session capabilities are reduced to an allow-list (`capabilities.choose`). The WebDriver
session id a client sees is the Browserbase session id; the driver's own id never leaves the server. The
WebDriver session counts as a client of the session from new-session to delete (`driver.quit()`), which
ends the session unless it is keepAlive or another client is connected.

Not offered: WebDriver BiDi (`webSocketUrl: true`). chromedriver serves it through a mapper page that it
hands the browser's raw protocol (`Target.exposeDevToolsProtocol`), which the CDP policy refuses: with it
every BiDi command, `goog:cdp.sendCommand` included, would pass around the policy. Such a request is a
`session not created` that says so.

Errors are W3C bodies (`api/errors.py:webdriver_error`); a malformed request is never passed on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from browserfleet.api import errors, files
from browserfleet.api.auth import hash_key, project_for_key
from browserfleet.api.context import well_formed_id
from browserfleet.api.sessions import create_from_body
from browserfleet.artifacts import zips
from browserfleet.browsers.chromedriver import ChromeDriver
from browserfleet.browsers.localhttp import LocalHttpError
from browserfleet.errors import (
    BrowserError,
    Forbidden,
    Gone,
    InvalidRequest,
    TooLarge,
    Unauthenticated,
    WebDriverError,
)
from browserfleet.gateway import capabilities
from browserfleet.gateway.drivers import Attached
from browserfleet.gateway.routes import relay, websocket_key
from browserfleet.services import SERVICES, Services
from browserfleet.sessions.manager import Closer, LiveSession
from browserfleet.store.models import Project

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

PREFIX = errors.WEBDRIVER_PREFIX
PATH_SAFE = "-._~!$&'()*+,;=:@"  # RFC 3986 pchar, less the unreserved (kept) and pct-encoded
MAX_COMMAND_BYTES = 64 * 1024 * 1024  # a command body (a script's arguments, a file's base64)
LIVE = web.AppKey("live", LiveSession)
DRIVER = web.AppKey("driver", ChromeDriver)


# -- who is asking, for which session ---------------------------------------------------------------


async def _project(svc: Services, request: web.Request) -> Project:
    key = request.headers.get("x-bb-api-key")
    project = await project_for_key(svc.store, key)
    if project is None:
        raise Unauthenticated(
            "Send x-bb-signing-key (the session's signingKey) or x-bb-api-key with every WebDriver command"
            if not key
            else "Invalid x-bb-api-key"
        )
    return project


async def _named(svc: Services, request: web.Request, session_id: str) -> LiveSession:
    """The running session a command's path names, if the caller may drive it."""
    signing_key = request.headers.get("x-bb-signing-key")
    if signing_key:
        owner = svc.signing_keys.session_id(signing_key)
        if owner is None:
            raise Unauthenticated("Invalid x-bb-signing-key")
        if owner != session_id:
            raise WebDriverError("invalid session id", f"No session {session_id[:64]} for this signing key")
        return await svc.manager.running(session_id)
    header = request.headers.get("session-id")
    if header and header != session_id:
        raise WebDriverError("invalid session id", "The session-id header names another session")
    key = request.headers.get("x-bb-api-key")
    attached = svc.drivers.get(session_id)
    if key and key.isascii() and attached is not None and attached.key_hash is not None:
        # The key its WebDriver session was opened with, checked then (as a CDP socket's is at connect):
        # no store lookup on every command. (A key that is not ASCII is none of ours: looked up, refused.)
        if (
            hmac.compare_digest(attached.key_hash, hash_key(key))
            and svc.manager.find(session_id) is attached.live
        ):
            return attached.live
    project = await _project(svc, request)
    if not well_formed_id(session_id):
        raise WebDriverError("invalid session id", f"No session {session_id[:64]}")
    return await svc.manager.running(session_id, project.id)


async def _to_drive(
    svc: Services, request: web.Request, chosen: capabilities.Chosen, enable_proxy: bool
) -> tuple[LiveSession, bool]:
    """The session a new-session command drives, and whether it was created for it."""
    signing_key = request.headers.get("x-bb-signing-key")
    if signing_key:
        owner = svc.signing_keys.session_id(signing_key)
        if owner is None:
            raise Unauthenticated("Invalid x-bb-signing-key")
        return await svc.manager.running(owner), False
    project = await _project(svc, request)
    session_id = request.headers.get("session-id")
    if session_id:
        if not well_formed_id(session_id):
            raise WebDriverError("invalid session id", f"No session {session_id[:64]}")
        return await svc.manager.running(session_id, project.id), False
    body = dict(chosen.bb_options or {})
    if enable_proxy:
        body.setdefault("proxies", True)
    row = await create_from_body(request, project, body, implicit=True)
    return await svc.manager.running(row.id), True


def _command(request: web.Request) -> tuple[list[str], bool]:
    """The command's path parts after the prefix, and whether the URL says `enableProxy=true`.

    A client given `.../webdriver?enableProxy=true` appends its command paths to the query
    (`?enableProxy=true/session`): that form is read as the command it meant."""
    tail = request.path[len(PREFIX) :]
    query = request.query_string
    enable_proxy = False
    if query:
        flag, slash, rest = query.partition("/")
        name, _, value = flag.partition("=")
        if name == "enableProxy":
            if value.lower() not in ("true", "false"):
                raise InvalidRequest(f"enableProxy must be true or false, not {value[:20]!r}")
            enable_proxy = value.lower() == "true"
            if slash and not tail.strip("/"):
                tail = "/" + rest
    return [part for part in tail.split("/") if part], enable_proxy


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_COMMAND_BYTES:
        raise TooLarge(f"A WebDriver command may be at most {MAX_COMMAND_BYTES // 2**20} MB")
    chunks, size = [], 0
    while chunk := await request.content.read(256 * 1024):
        size += len(chunk)
        if size > MAX_COMMAND_BYTES:
            raise TooLarge(f"A WebDriver command may be at most {MAX_COMMAND_BYTES // 2**20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _segment(part: str) -> str:
    """A decoded path segment as it goes to chromedriver: percent-encoded again, so that nothing in it
    (a line break, a space, `/`, `?`) can end the segment, the path or the request line and write a
    request of the client's own to the driver (a new session with a binary of its choosing)."""
    if part in (".", ".."):
        raise WebDriverError("unknown command", "A command's path has no '.' or '..' segments")
    return quote(part, safe=PATH_SAFE)


def _json(raw: bytes) -> Any:
    try:
        return errors.parse_json(raw)
    except InvalidRequest as exc:
        raise WebDriverError("invalid argument", exc.message) from None


# -- the routes ---------------------------------------------------------------------------------------


@routes.route("*", PREFIX)
@routes.route("*", PREFIX + "/{tail:.*}")
async def command(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    parts, enable_proxy = _command(request)
    method = request.method
    if parts == ["status"] and method == "GET":
        return await _status(svc, request)
    if parts == ["session"] and method == "POST":
        return await _new_session(svc, request, enable_proxy)
    if len(parts) >= 2 and parts[0] == "session":
        live = await _named(svc, request, parts[1])
        attached = svc.drivers.get(live.id)
        if attached is None or attached.driver_session is None:
            raise WebDriverError("invalid session id", f"Session {live.id} has no WebDriver session open")
        rest = parts[2:]
        if not rest and method == "DELETE":
            return await _delete_session(svc, attached)
        if rest == ["se", "file"] and method == "POST":
            return await _upload(svc, live, await _body(request))
        return await _forward(attached, method, rest, await _body(request))
    raise WebDriverError("unknown command", f"Unknown command {method} {request.path[:200]}")


async def _status(svc: Services, request: web.Request) -> web.Response:
    """What a Grid's /status says, for the caller: ready when this server can start a session."""
    if request.headers.get("x-bb-signing-key"):
        if svc.signing_keys.session_id(request.headers["x-bb-signing-key"]) is None:
            raise Unauthenticated("Invalid x-bb-signing-key")
    else:
        await _project(svc, request)
    ready = not svc.manager.stopping
    message = "browserfleet is ready to create sessions" if ready else "browserfleet is shutting down"
    return web.json_response({"value": {"ready": ready, "message": message}})


async def _new_session(svc: Services, request: web.Request, enable_proxy: bool) -> web.Response:
    try:
        chosen = capabilities.choose(_json(await _body(request)))
    except capabilities.SessionNotCreated as exc:
        raise WebDriverError("session not created", exc.message) from None
    if chosen.bidi:
        raise WebDriverError(
            "session not created",
            "WebDriver BiDi (webSocketUrl: true) is not offered: chromedriver serves it by handing a page "
            "the browser's raw protocol, around the gateway's CDP policy. Use se:cdp (the connectUrl) or "
            "classic WebDriver commands.",
        )
    live, created = await _to_drive(svc, request, chosen, enable_proxy)
    response: web.Response | None = None
    try:
        response = await _open(svc, request, live, chosen)
        return response
    finally:
        if created and (response is None or response.status != 200):
            # A session made for this command alone, which failed (here or in chromedriver's answer):
            # released now, not left to its connect window.
            with contextlib.suppress(Exception):
                await svc.manager.release(live.project_id, live.id)


async def _open(
    svc: Services, request: web.Request, live: LiveSession, chosen: capabilities.Chosen
) -> web.Response:
    try:
        attached = await svc.drivers.attach(live, _serve_cdp(svc, live))
    except BrowserError as exc:
        raise WebDriverError("session not created", exc.message, exc.detail) from None
    if svc.manager.find(live.id) is not live:  # it ended while its driver started
        await svc.drivers.ended(live, live.row)
        raise Gone(f"Session {live.id} has ended")
    async with attached.lock:
        if attached.driver_session is not None:
            raise WebDriverError(
                "session not created",
                f"Session {live.id} has a WebDriver session open already: quit it first",
            )
        wanted = {
            **chosen.capabilities,
            "browserName": "chrome",
            capabilities.OPTIONS: {"debuggerAddress": attached.driver.debugger_address},
        }
        answer = await _driver_request(
            attached, "POST", "/session", {"capabilities": {"alwaysMatch": wanted}}
        )
        value = _value(answer.body)
        if answer.status != 200 or not isinstance(value, dict) or "sessionId" not in value:
            return _passed_on(answer.status, answer.body)
        attached.driver_session = str(value["sessionId"])

        async def end() -> None:  # the session ended: its driver goes with it (drivers.ended)
            attached.driver_session = None

        attached.closer = end
        key = request.headers.get("x-bb-api-key")
        attached.key_hash = hash_key(key) if key and not request.headers.get("x-bb-signing-key") else None
        svc.manager.attach(live.id, end)
    granted = dict(value.get("capabilities") or {})
    granted.pop("webSocketUrl", None)
    options = dict(granted.get(capabilities.OPTIONS) or {})
    options.pop("debuggerAddress", None)
    granted[capabilities.OPTIONS] = options
    granted["se:cdp"] = svc.connect_url(request, live.id)
    granted["se:cdpVersion"] = str(granted.get("browserVersion", ""))
    granted["bb:sessionId"] = live.id
    return web.json_response({"value": {"sessionId": live.id, "capabilities": granted}})


async def _delete_session(svc: Services, attached: Attached) -> web.Response:
    async with attached.lock:
        driver_session, closer = attached.driver_session, attached.closer
        if driver_session is None:
            raise WebDriverError(
                "invalid session id", f"Session {attached.live.id} has no WebDriver session open"
            )
        try:
            await attached.driver.request("DELETE", f"/session/{driver_session}", wait=30)
        except (OSError, TimeoutError, LocalHttpError) as exc:
            log.info("session %s: chromedriver's quit failed (%s)", attached.live.id, exc)
        attached.driver_session = attached.closer = attached.key_hash = None
    if closer is not None:
        svc.manager.detach(attached.live, closer)  # ends the session unless keepAlive or another client
    return web.json_response({"value": None})


async def _forward(attached: Attached, method: str, rest: list[str], body: bytes) -> web.Response:
    if body:
        _json(body)  # only JSON goes on
    driver_session = attached.driver_session
    if driver_session is None:  # deleted, or its session ended, since the command was read
        raise WebDriverError(
            "invalid session id", f"Session {attached.live.id} has no WebDriver session open"
        )
    path = f"/session/{driver_session}" + "".join(f"/{_segment(part)}" for part in rest)
    answer = await _driver_request(attached, method, path, body)
    # The driver's own id (in some of its messages) never leaves the server: the client knows ours.
    shown = answer.body.replace(driver_session.encode(), attached.live.id.encode())
    return _passed_on(answer.status, shown)


async def _driver_request(attached: Attached, method: str, path: str, body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        return await attached.driver.request(method, path, raw)
    except (OSError, TimeoutError, LocalHttpError) as exc:
        raise WebDriverError(
            "unknown error", f"Session {attached.live.id}: chromedriver did not answer", str(exc)
        ) from None


def _value(body: bytes) -> Any:
    with contextlib.suppress(ValueError):
        return json.loads(body).get("value")
    return None


def _passed_on(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", charset="utf-8")


async def _upload(svc: Services, live: LiveSession, raw: bytes) -> web.Response:
    """Selenium's (Grid's) file upload: a zip of one file, base64 in `file`; answered with the path the
    browser (and chromedriver) know it by."""
    payload = _json(raw)
    encoded = payload.get("file") if isinstance(payload, dict) else None
    if not isinstance(encoded, str):
        raise WebDriverError("invalid argument", 'se/file takes {"file": <a base64 zip>}')
    try:
        data = base64.b64decode("".join(encoded.split()), validate=True)  # Selenium's has line breaks
    except (binascii.Error, ValueError):
        raise WebDriverError("invalid argument", "se/file: 'file' is not base64") from None
    limit = svc.settings.max_upload_mb * 1024 * 1024
    members = [m for m in zips.check(data, zips.ZipLimits(max_total_bytes=limit)) if not m.is_dir()]
    if len(members) != 1:
        raise WebDriverError("invalid argument", f"se/file takes a zip of one file, not {len(members)}")
    content = zips.read(data, members[0].filename, limit)
    assert content is not None
    name = files.upload_name(members[0].filename.rsplit("/", 1)[-1])
    await files.store_upload(svc, live.id, name, content)
    return web.json_response({"value": f"{live.browser.uploads_seen}/{name}"})


# -- the driver's debugger address ------------------------------------------------------------------


def _serve_cdp(svc: Services, live: LiveSession) -> Callable[[ChromeDriver], Awaitable[Closer]]:
    """Serve the browser's debugging endpoints on the driver's debugger address, through the relay."""

    async def serve(driver: ChromeDriver) -> Closer:
        app = web.Application(middlewares=[errors.error_middleware, _no_origin])
        app[SERVICES] = svc
        app[LIVE] = live
        app[DRIVER] = driver
        app.router.add_get("/json/version", _cdp_version)
        app.router.add_get("/json/version/", _cdp_version)
        app.router.add_get("/json", _cdp_list)
        app.router.add_get("/json/list", _cdp_list)
        app.router.add_get("/devtools/{kind:page|browser}/{id}", _cdp_socket)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, driver.listener).start()
        return runner.cleanup

    return serve


@web.middleware
async def _no_origin(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """chromedriver sends no Origin. Without network isolation the debugger address is on the host's
    loopback, where a page could reach it: a request from a page (it has an Origin) is refused, as
    Chromium's own debugging port refuses one."""
    if "Origin" in request.headers:
        raise Forbidden("The debugger address is chromedriver's only")
    return await handler(request)


async def _cdp_version(request: web.Request) -> web.Response:
    live, driver = request.app[LIVE], request.app[DRIVER]
    info = dict(live.browser.version)
    info["webSocketDebuggerUrl"] = f"ws://{driver.debugger_address}/devtools/browser/{live.id}"
    return web.json_response(info)


async def _cdp_list(request: web.Request) -> web.Response:
    live, driver = request.app[LIVE], request.app[DRIVER]
    status, _kind, body = await live.browser.http_get("/json/list")
    if status != 200:
        raise BrowserError(f"/json/list answered {status}")
    ours = f"ws://{driver.debugger_address}/"
    targets = json.loads(body)
    for target in targets:
        url = target.get("webSocketDebuggerUrl")
        if isinstance(url, str):
            target["webSocketDebuggerUrl"] = ours + url.split("/", 3)[-1]
        target.pop("devtoolsFrontendUrl", None)
    return web.json_response(targets)


async def _cdp_socket(request: web.Request) -> web.StreamResponse:
    live = request.app[LIVE]
    key = websocket_key(request)
    if request.match_info["kind"] == "browser":
        return await relay(request, key, live, live.browser.ws_url, counted=False)
    target = request.match_info["id"]
    if not target.isalnum() or len(target) > 64:
        raise InvalidRequest("Not a target id")
    page_url = f"ws://127.0.0.1:{live.browser.port}/devtools/page/{target}"
    return await relay(request, key, live, page_url, counted=False, target_id=target)
