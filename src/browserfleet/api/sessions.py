"""Routes under /v1/sessions."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from browserfleet.api import extensions as extension_routes
from browserfleet.api import schemas
from browserfleet.api.context import caller, existing_id, services
from browserfleet.api.errors import json_body, rate_limit_headers
from browserfleet.api.network import network_spec
from browserfleet.api.openapi import operation
from browserfleet.browsers import adblock, fingerprint
from browserfleet.browsers.spec import AppliedSpec, BrowserSpec, Geolocation, LaunchSpec, ProxyRule, Viewport
from browserfleet.errors import InvalidRequest, NotFound
from browserfleet.gateway import inside
from browserfleet.services import Services
from browserfleet.sessions.lifecycle import Status
from browserfleet.sessions.manager import SessionSpec
from browserfleet.store.models import Project, Session

routes = web.RouteTableDef()


def check_project_id(project: Project, project_id: str | None) -> None:
    # Older SDKs always send projectId; it must be the key's own project.
    if project_id is not None and project_id != project.id:
        raise NotFound(f"Project {project_id} not found")


@routes.post("/v1/sessions")
@operation("Create a session", {201: schemas.CreatedSession}, body=schemas.CreateSession)
async def create_session(request: web.Request) -> web.Response:
    project = await caller(request)
    row = await create_from_body(request, project, await json_body(request))
    svc = services(request)
    payload = schemas.CreatedSession(
        **schemas.session_fields(row),
        connectUrl=svc.connect_url(request, row.id),
        seleniumRemoteUrl=svc.selenium_url(request),
        signingKey=svc.signing_keys.mint(row.id),
    ).model_dump(mode="json")
    return web.json_response(payload, status=201, headers=limit_headers(svc, project))


async def create_from_body(
    request: web.Request, project: Project, raw: Any, implicit: bool = False
) -> Session:
    """Create a session from a create body (`POST /v1/sessions`'s, or a WebDriver new-session's
    `bb:options`): everything is validated here, before a browser is taken from the pool."""
    body = schemas.CreateSession.model_validate(raw)
    check_project_id(project, body.projectId)
    check_block_ads(body)
    svc = services(request)
    ca_ids = (body.proxySettings.caCertificates if body.proxySettings else None) or []
    spec = await network_spec(session_spec(body), svc.settings, svc.store, project.id, ca_ids)
    if implicit:
        spec = dataclasses.replace(spec, implicit=True)
    await extension_routes.check_usable(request, spec.browser.launch.extension_id, project.id)
    row = await svc.manager.create(project, spec)
    inside.pin(svc, request, row.id)  # its extension may dial connectUrl from inside the browser
    return row


def limit_headers(svc: Services, project: Project) -> dict[str, str]:
    """The `x-ratelimit-*` headers of a create: of whichever limit has fewer creations left, the
    concurrency or (when the project has one) the creations per minute."""
    remaining, reset = svc.manager.usage(project)
    headers = rate_limit_headers(project.concurrency, remaining, reset)
    rate = svc.manager.creation_usage(project)
    if rate is not None and project.creations_per_minute and rate.remaining < remaining:
        headers = rate_limit_headers(project.creations_per_minute, rate.remaining, rate.reset_seconds)
    return headers


def check_block_ads(body: schemas.CreateSession) -> None:
    """blockAds needs the filter lists on this server: without them it is refused, never ignored."""
    if body.browserSettings and body.browserSettings.blockAds and (missing := adblock.ENGINE.missing()):
        raise InvalidRequest(
            "browserSettings.blockAds is not available on this server: its filter lists are missing "
            f"({', '.join(map(str, missing))}; see docs/network-policy.md)"
        )


def _proxies(value: bool | list[schemas.ProxyEntry] | None) -> bool | tuple[ProxyRule, ...]:
    if not isinstance(value, list):
        return bool(value)
    return tuple(
        ProxyRule(
            kind=entry.type,
            domain_pattern=entry.domainPattern,
            geolocation=Geolocation(g.country, g.state, g.city) if (g := entry.geolocation) else None,
            server=entry.server,
            username=entry.username,
            password=entry.password,
        )
        for entry in value
    )


# The hosted service's own extensions, named in `browserSettings.extensions` (anything else there is the
# id of an uploaded extension).
PREINSTALLED = frozenset({"onepassword", "browser-events"})
# Accepted and stored, not performed here (docs/settings.md says why of each).
NOT_PERFORMED = ("size", "enableNativeSelectPolyfill", "headful")


def _extension_id(body: schemas.CreateSession, settings: schemas.BrowserSettings) -> str | None:
    """The one extension the session loads, wherever the body names it; a 400 if it names several, or a
    pre-installed extension of the hosted service (a user relies on those: never accepted unloaded)."""
    ids = [i for i in (body.extensionId, settings.extensionId) if i]
    for name in settings.extensions or ():
        if name in PREINSTALLED:
            raise InvalidRequest(
                f"browserSettings.extensions: {name!r} is a pre-installed extension of the hosted service, "
                "which this server does not have; upload it (POST /v1/extensions) and give its id instead"
            )
        ids.append(name)
    distinct = list(dict.fromkeys(ids))
    if len(distinct) > 1:
        raise InvalidRequest(
            "A session loads one extension here, but extensionId, browserSettings.extensionId and "
            f"browserSettings.extensions name {len(distinct)} different ones"
        )
    return distinct[0] if distinct else None


def session_spec(body: schemas.CreateSession) -> SessionSpec:
    """The typed spec a validated create body asks for."""
    settings = body.browserSettings or schemas.BrowserSettings()
    viewport = settings.viewport
    launch = LaunchSpec(
        extension_id=_extension_id(body, settings),
        context_id=settings.context.id if settings.context else None,
    )
    applied = AppliedSpec(
        viewport=Viewport(viewport.width, viewport.height) if viewport else None,
        os=settings.os,
        fingerprint=settings.fingerprint,
        proxies=_proxies(body.proxies),
        allowed_domains=tuple(settings.allowedDomains or ()),
        block_ads=bool(settings.blockAds),
        solve_captchas=settings.solveCaptchas is not False,
        captcha_image_selector=settings.captchaImageSelector,
        captcha_input_selector=settings.captchaInputSelector,
        verified=bool(settings.verified or settings.advancedStealth),
        ignore_certificate_errors=bool(settings.ignoreCertificateErrors),
        enable_pdf_viewer=bool(settings.enablePdfViewer),
    )
    fingerprint.check(applied)  # a 400 naming the key, before a browser is taken
    return SessionSpec(
        timeout=body.timeout,
        keep_alive=bool(body.keepAlive),
        region=body.region or "us-west-2",
        user_metadata=body.userMetadata,
        persist_context=bool(settings.context and settings.context.persist),
        record_session=settings.recordSession is not False,
        log_session=settings.logSession is not False,
        browser=BrowserSpec(launch, applied),
        not_performed=tuple(
            (key, value) for key in NOT_PERFORMED if (value := getattr(settings, key)) is not None
        ),
        unknown_keys=tuple(key[:100] for key in schemas.unknown_keys(body)[:50]),  # names only, bounded
    )


@routes.get("/v1/sessions")
@operation("List sessions", {200: list[schemas.SessionOut]}, query=schemas.ListSessions)
async def list_sessions(request: web.Request) -> web.Response:
    project = await caller(request)
    params = schemas.ListSessions.model_validate(dict(request.query))
    rows = await services(request).manager.list(project.id, params.status, params.q)
    return web.json_response([schemas.session_json(row) for row in rows])


@routes.get("/v1/sessions/{id}")
@operation("Get a session", {200: schemas.RunningSession})
async def get_session(request: web.Request) -> web.Response:
    project = await caller(request)
    svc = services(request)
    row = await svc.manager.get(project.id, existing_id(request.match_info["id"]))
    fields = schemas.session_fields(row)
    if row.status == Status.RUNNING:
        inside.pin(svc, request, row.id)  # this connectUrl too (its host may differ from the create's)
        fields |= {
            "connectUrl": svc.connect_url(request, row.id),
            "seleniumRemoteUrl": svc.selenium_url(request),
            "signingKey": svc.signing_keys.mint(row.id),
        }
    # Unset: an ended session's answer has no connect fields at all.
    return web.json_response(schemas.RunningSession(**fields).model_dump(mode="json", exclude_unset=True))


@routes.post("/v1/sessions/{id}")
@operation("Release a session", {200: schemas.SessionOut}, body=schemas.UpdateSession)
async def update_session(request: web.Request) -> web.Response:
    project = await caller(request)
    session_id = existing_id(request.match_info["id"])
    body = schemas.UpdateSession.model_validate(await json_body(request))
    check_project_id(project, body.projectId)
    row = await services(request).manager.release(project.id, session_id)
    return web.json_response(schemas.session_json(row))
