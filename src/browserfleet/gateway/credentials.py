"""Who is connecting, and to which running session: checked before the upgrade.

Keys, signing keys and session ids come from the query or headers as the client sent them (headers that
were not UTF-8 arrive with surrogates in them): each is checked for its form before it is used, so bad
ones are a 401 or 404, never an error of the store or of HMAC.
"""

from __future__ import annotations

from aiohttp import web

from browserfleet.api.auth import project_for_key
from browserfleet.api.context import well_formed_id
from browserfleet.api.network import resolved_proxies
from browserfleet.browsers import applied
from browserfleet.browsers.spec import AppliedSpec, BrowserSpec, ProxyRule
from browserfleet.errors import BrowserError, InvalidRequest, NotFound, Unauthenticated, Unavailable
from browserfleet.services import Services
from browserfleet.sessions.manager import LiveSession, SessionSpec
from browserfleet.store.models import Project


def _param(request: web.Request, query_name: str, header: str) -> str | None:
    return request.query.get(query_name) or request.headers.get(header)


async def _project(svc: Services, request: web.Request) -> Project:
    project = await project_for_key(svc.store, _param(request, "apiKey", "x-bb-api-key"))
    if project is None:
        raise Unauthenticated("Missing or invalid apiKey (or signingKey)")
    project_id = request.query.get("projectId")
    if project_id is not None and project_id != project.id:
        raise NotFound(f"Project {project_id} not found")
    return project


async def existing_session(svc: Services, request: web.Request) -> LiveSession | None:
    """The running session the request names, or None when it names none (an implicit create)."""
    signing_key = _param(request, "signingKey", "x-bb-signing-key")
    if signing_key:
        session_id = svc.signing_keys.session_id(signing_key)
        if session_id is None:
            raise Unauthenticated("Invalid signingKey")
        return await svc.manager.running(session_id)
    project = await _project(svc, request)
    session_id = request.query.get("sessionId") or request.headers.get("session-id")
    if not session_id:
        return None
    # Not a UUID, so no session's: not looked up (a header that was not UTF-8 could not even be).
    if not well_formed_id(session_id):
        raise NotFound(f"Session {session_id} not found")
    return await svc.manager.running(session_id, project.id)


async def session_for_connect(svc: Services, request: web.Request) -> LiveSession:
    """The session to relay to; `?apiKey=` alone creates one with the project's defaults. The legacy
    `enableProxy=true` means `proxies: true`: for a new session, and for a running one that has no proxies
    yet (the legacy client created it, then connected with it)."""
    live = await existing_session(svc, request)
    proxies = _enable_proxy(svc, request)
    if live is not None:
        if proxies and live.browser.egress is not None and not live.browser.egress.routes:
            try:
                applied.route_through(live.browser, proxies)
            except BrowserError as exc:
                raise Unavailable(exc.message) from exc
        elif proxies and live.browser.egress is None:
            raise Unavailable("enableProxy needs network isolation, which this server's browsers do not have")
        return live
    project = await _project(svc, request)
    query = {k: v for k, v in request.query.items() if k not in ("apiKey", "signingKey")}
    # Its parameters are settings (`enableProxy`), read as a JSON body's strings are: no NUL, as in a
    # body. Checked before a browser is taken.
    if any("\x00" in text for item in query.items() for text in item):
        raise InvalidRequest("Query parameters must not contain NUL characters")
    spec = SessionSpec(implicit=True, browser=BrowserSpec(applied=AppliedSpec(proxies=proxies)))
    row = await svc.manager.create(project, spec)
    # Its browser may have died since: then it is Gone like any ended session.
    return await svc.manager.running(row.id)


def _enable_proxy(svc: Services, request: web.Request) -> tuple[ProxyRule, ...]:
    """The server's proxies if the connect URL says `enableProxy=true` (a 400 if it has none)."""
    value = request.query.get("enableProxy")
    if value is None or value.lower() == "false":
        return ()
    if value.lower() != "true":
        raise InvalidRequest(f"enableProxy must be true or false, not {value[:20]!r}")
    try:
        return resolved_proxies(svc.settings, True)
    except InvalidRequest as exc:
        raise InvalidRequest(f"enableProxy=true: {exc.message}") from None
