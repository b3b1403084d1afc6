"""`POST /v1/fetch` (contract §10): load one URL in a short-lived session of its own and answer with the
response, as the site sent it (`raw`) or as markdown of the rendered page (`markdown`).

The session is made through the session manager like any other (so it counts against the project's
concurrency and creations per minute: 429), with `recordSession` and `logSession` off, `contextId` as a
read-only context and `proxies` as the create body's; the page is loaded by `browsers/pageload.py`
through the browser's own network stack (the egress rules, the proxies), and the session is released
as soon as the answer is in hand. The `json` format needs a language model: 501.

Every answer carries an `id`: the fetch session's id (its record stays in `GET /v1/sessions`); an error
before a session was made carries a fresh one, which names no session. Errors are the contract's body
plus that `id`.
"""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlsplit

import markdownify
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from browserfleet.api import schemas
from browserfleet.api.context import caller, services
from browserfleet.api.errors import from_exception, json_body
from browserfleet.api.openapi import operation
from browserfleet.api.sessions import session_spec
from browserfleet.browsers import egress, pageload
from browserfleet.browsers.addresses import EgressRules
from browserfleet.errors import Forbidden, InvalidRequest, NotOffered, PageLoadFailed, Unavailable
from browserfleet.services import Services
from browserfleet.sessions.manager import SessionSpec

routes = web.RouteTableDef()

MAX_URL = 8192
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/ecmascript")
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class FetchRequest(BaseModel):
    # Unknown keys are accepted, as on create (clients send fields of newer SDKs).
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    url: str = Field(min_length=1, max_length=MAX_URL, description="An absolute http or https URL")
    allowRedirects: bool = False
    allowInsecureSsl: bool = False
    proxies: bool = False
    format: Literal["raw", "json", "markdown"] = "raw"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema", description="json format only")
    contextId: str | None = Field(default=None, min_length=1, max_length=64)


class FetchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    statusCode: int
    headers: dict[str, str]
    content: str
    contentType: str
    encoding: str = Field(description="The text's character encoding, or `base64` for a binary body")


class FetchError(schemas.ErrorBody):
    id: str


def _checked_url(url: str) -> str:
    bad = InvalidRequest("url: must be an absolute http:// or https:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not one raises here: out of range, not digits)
    except ValueError:
        raise bad from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise bad
    return url


def _refusals(body: FetchRequest) -> None:
    if body.format == "json":
        raise NotOffered(
            "format 'json' is not offered by this self-hosted server: extracting a schema needs a "
            "language model, which browserfleet does not have; use 'raw' or 'markdown'"
        )
    if body.schema_ is not None:
        raise InvalidRequest("schema: only used with format 'json', which this server does not offer")


def _fetch_spec(body: FetchRequest, timeout: float) -> SessionSpec:
    """The session's spec, built by the same code as a create's (so every check a create makes applies)."""
    settings: dict[str, Any] = {"recordSession": False, "logSession": False}
    if body.contextId is not None:
        settings["context"] = {"id": body.contextId, "persist": False}
    create: dict[str, Any] = {
        # Its own expiry backs up the release, should a fetch ever leave it behind.
        "timeout": min(21600, max(60, math.ceil(timeout) + 30)),
        "browserSettings": settings,
    }
    if body.proxies:
        create["proxies"] = True
    return replace(session_spec(schemas.CreateSession.model_validate(create)), fetch=True)


async def _egress_check(rules: EgressRules, url: str) -> None:
    """The egress rules' refusal as the contract's 403 (or a name that does not resolve as a 502), said
    before the browser tries: through the egress proxy a refused plain-http URL would look like the
    site's own 403 page. The proxy still enforces the rules whatever this finds."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    refusal = await egress.refusal_for(rules, host, port)
    if refusal is not None and refusal.status == 403:
        raise Forbidden(f"url: {refusal.reason}")
    if refusal is not None:
        raise PageLoadFailed(f"{url} could not be loaded: {refusal.reason}")


def _decoded(body: bytes, content_type: str) -> tuple[str, str]:
    """(content, encoding): text in its charset (UTF-8 when the type names none), or base64."""
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'").lower()
    textual = mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))
    if textual or charset is not None:
        for encoding in (charset or "utf-8", "utf-8"):
            try:
                return body.decode(encoding), encoding
            except (LookupError, UnicodeError, ValueError):
                continue
    return base64.b64encode(body).decode(), "base64"


def _markdown(html: str) -> str:
    try:
        return str(markdownify.markdownify(html, heading_style="ATX")).strip() + "\n"
    except RecursionError:  # the converter recurses per element: a page nested thousands deep
        raise PageLoadFailed("the page is nested too deeply to be converted to markdown") from None


async def _load_as_client(svc: Services, session_id: str, url: str, body: FetchRequest) -> pageload.Loaded:
    """The page, loaded with the fetch attached to its session as its client: so the session counts as
    connected (the connect window does not end it), and a session that ends meanwhile (its browser
    crashed, the server is stopping) stops the load at once."""
    settings = svc.settings
    live = svc.manager.find(session_id)
    if live is None:
        raise Unavailable("The fetch's session ended before the page could be loaded")
    browser = live.browser

    async def run() -> pageload.Loaded:
        if browser.egress is not None and not body.proxies:
            await _egress_check(browser.egress.rules, url)
        return await pageload.load(
            browser,
            url,
            follow_redirects=body.allowRedirects,
            ignore_certificate_errors=body.allowInsecureSsl,
            max_bytes=settings.fetch_max_mb * 1024 * 1024,
            seconds=settings.fetch_timeout,
            render=body.format == "markdown",
        )

    load = asyncio.ensure_future(run())
    ended = False

    async def session_ended() -> None:
        nonlocal ended
        ended = True
        load.cancel()

    svc.manager.attach(session_id, session_ended)  # no await since `find`: it is still running
    try:
        return await load
    except asyncio.CancelledError:
        if not ended:
            raise
        raise Unavailable("The fetch's session ended before the page was loaded") from None
    finally:
        load.cancel()


async def _answer(request: web.Request, fetch_id: list[str]) -> web.Response:
    project = await caller(request)
    body = FetchRequest.model_validate(await json_body(request))
    _refusals(body)
    url = _checked_url(body.url)
    svc = services(request)
    settings = svc.settings
    spec = _fetch_spec(body, settings.fetch_timeout)
    row = await svc.manager.create(project, spec)
    fetch_id[0] = row.id
    try:
        loaded = await _load_as_client(svc, row.id, url, body)
    finally:
        # Shielded: a client that went away must not leave the session running.
        await asyncio.shield(svc.manager.release(project.id, row.id))
    content_type = loaded.headers.get("content-type", "") or "application/octet-stream"
    if loaded.dom is not None:
        content, encoding = await asyncio.to_thread(_markdown, loaded.dom), "utf-8"
    else:
        content, encoding = _decoded(loaded.body, content_type)
        if body.format == "markdown" and encoding != "base64":
            mime = content_type.split(";")[0].strip().lower()
            content = await asyncio.to_thread(_markdown, content) if mime in _HTML_TYPES else content
    result = FetchResult(
        id=row.id,
        statusCode=loaded.status,
        headers=loaded.headers,
        content=content,
        contentType=content_type,
        encoding=encoding,
    )
    return web.json_response(result.model_dump(mode="json"))


_ERRORS = dict.fromkeys((400, 401, 404, 413, 429, 501, 502, 503, 504), FetchError)


@routes.post("/v1/fetch")
@operation("Fetch a page", {200: FetchResult, **_ERRORS}, body=FetchRequest)
async def fetch(request: web.Request) -> web.Response:
    fetch_id = [str(uuid.uuid4())]  # the session's id once there is one
    try:
        return await _answer(request, fetch_id)
    except Exception as exc:
        return from_exception(request, exc, {"id": fetch_id[0]})
