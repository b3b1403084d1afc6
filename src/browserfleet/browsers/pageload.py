"""Loading one URL in a browser and keeping the response as the site sent it: what `POST /v1/fetch` does
with its short-lived session's browser.

The browser's own network stack does the request, so everything a session's traffic obeys holds here
too (the egress proxy and its rules, a context's cookies, the session's proxies and fingerprint). The
server's own CDP connection (not a client's, not through the gateway) attaches to the browser's first
tab and intercepts the top-level document at the response stage (`Fetch.enable`, `requestStage:
Response`): the status and headers come from there, and the body is read as a stream, so that a body
over `max_bytes` is cut off and refused, never held whole. Redirects are paused there too: followed
(`follow_redirects`) or answered as they are. With `render`, the response is then handed back to the
tab, which renders it (its scripts run) until its load event or `RENDER_WAIT`, and the rendered DOM is
read; otherwise the request is aborted once read, and nothing of the page runs.

Failures are `PageLoadFailed` (a network or TLS error, the egress proxy's own refusal, a response over
the limit) and `PageLoadTimedOut`, their messages safe for the client; a browser that stops answering
is a `CdpError`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from browserfleet.browsers.cdp import CdpConnection
from browserfleet.browsers.egress import REFUSAL_HEADER
from browserfleet.browsers.launcher import Browser
from browserfleet.errors import CdpError, PageLoadFailed, PageLoadTimedOut

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024  # bytes asked of each IO.read
RENDER_WAIT = 10.0  # seconds a rendered page may take to fire its load event before its DOM is read
MAX_REDIRECTS = 20  # as Chromium's own limit
ERROR_WAIT = 5.0  # seconds to wait for a failed navigation to say why
# Headers that describe the bytes on the wire, not the (decoded) body handed back to the tab.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class Loaded:
    """The top-level response: `url` after redirects, `status`, the headers as sent (repeated headers
    joined with `, `, names in lower case), the body (decoded from its content-encoding), and, when
    rendered, the DOM as HTML."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    dom: str | None = None


@dataclass(frozen=True)
class _Paused:
    request_id: str
    url: str
    status: int | None
    headers: list[dict[str, str]]
    error: str | None


async def load(
    browser: Browser,
    url: str,
    *,
    follow_redirects: bool,
    ignore_certificate_errors: bool,
    max_bytes: int,
    seconds: float,
    render: bool,
) -> Loaded:
    """The response to `url`, loaded within `seconds` (the rendering included)."""
    cdp = await CdpConnection.open(browser)
    try:
        async with asyncio.timeout(seconds):
            return await _load(cdp, url, follow_redirects, ignore_certificate_errors, max_bytes, render)
    except TimeoutError as exc:
        raise PageLoadTimedOut(f"{url} did not load within {seconds:g} s") from exc
    finally:
        await cdp.close()


async def _load(
    cdp: CdpConnection, url: str, follow: bool, insecure: bool, max_bytes: int, render: bool
) -> Loaded:
    if insecure:
        # Browser-wide: the browser is this fetch's own.
        await cdp.send("Security.setIgnoreCertificateErrors", {"ignore": True})
    targets = (await cdp.send("Target.getTargets"))["targetInfos"]
    page = next((t for t in targets if t.get("type") == "page"), None)
    if page is None:
        raise CdpError("the browser has no tab to load the page in")
    target_id = page["targetId"]
    session = (await cdp.send("Target.attachToTarget", {"targetId": target_id, "flatten": True}))["sessionId"]
    paused: asyncio.Queue[_Paused] = asyncio.Queue()
    loaded = asyncio.Event()

    def on_paused(params: dict[str, Any], session_id: str | None) -> None:
        if session_id != session:
            return
        if params.get("frameId") != target_id:
            # A sub-frame's document: not what was asked for; let it through untouched.
            cdp.send_soon("Fetch.continueRequest", {"requestId": params["requestId"]}, session)
            return
        paused.put_nowait(
            _Paused(
                params["requestId"],
                params["request"]["url"],
                params.get("responseStatusCode"),
                params.get("responseHeaders") or [],
                params.get("responseErrorReason"),
            )
        )

    def on_load(_params: dict[str, Any], session_id: str | None) -> None:
        if session_id == session:
            loaded.set()

    cdp.on("Fetch.requestPaused", on_paused)
    cdp.on("Page.loadEventFired", on_load)
    await cdp.send("Page.enable", session_id=session)
    pattern = {"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"}
    await cdp.send("Fetch.enable", {"patterns": [pattern]}, session)
    navigation = asyncio.ensure_future(cdp.send("Page.navigate", {"url": url}, session))
    try:
        response = await _response(paused, navigation, url, follow, cdp, session)
        headers = _joined(response.headers)
        body = await _read_body(cdp, session, response, max_bytes)
        if REFUSAL_HEADER.lower() in headers:
            # The egress proxy's own answer (a plain-http destination it could not or would not reach).
            reason = body.decode(errors="replace").strip().removeprefix("browserfleet: ")
            raise PageLoadFailed(f"{response.url} could not be loaded: {reason}")
        dom = None
        if render and _renders(response, headers):
            await cdp.send("Fetch.fulfillRequest", _fulfilment(response, body), session)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RENDER_WAIT):
                    await loaded.wait()
            dom = await _dom(cdp, session, max_bytes)
        else:
            # Read: the tab needs none of it (and nothing of the page runs).
            with contextlib.suppress(CdpError):
                await cdp.send(
                    "Fetch.failRequest", {"requestId": response.request_id, "errorReason": "Aborted"}, session
                )
        return Loaded(response.url, response.status or 0, headers, body, dom)
    finally:
        navigation.cancel()
        with contextlib.suppress(BaseException):
            await navigation


async def _response(
    paused: asyncio.Queue[_Paused],
    navigation: asyncio.Future[dict[str, Any]],
    url: str,
    follow: bool,
    cdp: CdpConnection,
    session: str,
) -> _Paused:
    """The top-level response to keep: the first one, or the end of its redirects when following them."""
    redirects = 0
    while True:
        next_pause = asyncio.ensure_future(paused.get())
        try:
            waits: set[asyncio.Future[Any]] = {next_pause} if navigation.done() else {next_pause, navigation}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not next_pause.done():
                next_pause.cancel()
        if not next_pause.done() or next_pause.cancelled():
            # The navigation answered first: fine if it is under way, a failure if it says so (a TLS
            # error, a tunnel the egress proxy refused) before any response was paused.
            failed = navigation.exception()
            error = str(failed) if failed is not None else navigation.result().get("errorText")
            if error:
                raise PageLoadFailed(f"{url} could not be loaded: {error}")
            continue
        response = next_pause.result()
        if response.error is not None:
            detail = await _navigation_error(cdp, session, response, navigation) or response.error
            raise PageLoadFailed(f"{response.url} could not be loaded: {detail}")
        location = _header(response.headers, "location")
        if follow and response.status in (301, 302, 303, 307, 308) and location:
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise PageLoadFailed(f"{url} redirected more than {MAX_REDIRECTS} times")
            await cdp.send("Fetch.continueRequest", {"requestId": response.request_id}, session)
            continue
        return response


async def _navigation_error(
    cdp: CdpConnection, session: str, response: _Paused, navigation: asyncio.Future[dict[str, Any]]
) -> str | None:
    """Chromium's own name for a failure the pause only calls `Failed` (`net::ERR_CERT_…`): the request
    is let go, and the navigation says how it ended."""
    with contextlib.suppress(CdpError):
        await cdp.send("Fetch.continueRequest", {"requestId": response.request_id}, session)
    try:
        answer = await asyncio.wait_for(asyncio.shield(navigation), ERROR_WAIT)
    except (TimeoutError, CdpError):
        return None
    return str(answer["errorText"]) if answer.get("errorText") else None


async def _read_body(cdp: CdpConnection, session: str, response: _Paused, max_bytes: int) -> bytes:
    request = {"requestId": response.request_id}
    try:
        stream = (await cdp.send("Fetch.takeResponseBodyAsStream", request, session))["stream"]
    except CdpError:
        return b""  # a redirect's, or a response Chromium keeps no body for
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = await cdp.send("IO.read", {"handle": stream, "size": READ_CHUNK}, session)
            data = chunk.get("data", "")
            piece = base64.b64decode(data) if chunk.get("base64Encoded") else data.encode()
            size += len(piece)
            if size > max_bytes:
                with contextlib.suppress(CdpError):
                    await cdp.send("Fetch.failRequest", {**request, "errorReason": "Aborted"}, session)
                raise PageLoadFailed(
                    f"{response.url}: the response is larger than the limit of {max_bytes} bytes"
                )
            chunks.append(piece)
            if chunk.get("eof"):
                return b"".join(chunks)
    finally:
        with contextlib.suppress(CdpError):
            await cdp.send("IO.close", {"handle": stream}, session)


def _renders(response: _Paused, headers: dict[str, str]) -> bool:
    """An HTML page the tab can show (not a redirect, not a download)."""
    mime = headers.get("content-type", "").split(";")[0].strip().lower()
    attachment = headers.get("content-disposition", "").lower().startswith("attachment")
    ok = response.status is not None and 200 <= response.status < 300
    return ok and mime in ("text/html", "application/xhtml+xml") and not attachment


def _fulfilment(response: _Paused, body: bytes) -> dict[str, Any]:
    headers = [h for h in response.headers if h.get("name", "").lower() not in _WIRE_HEADERS]
    return {
        "requestId": response.request_id,
        "responseCode": response.status,
        "responseHeaders": headers,
        "body": base64.b64encode(body).decode(),
    }


async def _dom(cdp: CdpConnection, session: str, max_bytes: int) -> str:
    expression = "document.documentElement ? document.documentElement.outerHTML : ''"
    answer = await cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    html = str(answer.get("result", {}).get("value") or "")
    if len(html) > max_bytes:
        raise PageLoadFailed(f"the rendered page is larger than the limit of {max_bytes} bytes")
    return html


def _header(headers: list[dict[str, str]], name: str) -> str | None:
    return next((h.get("value") for h in headers if h.get("name", "").lower() == name), None)


def _joined(headers: list[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in headers:
        name, value = header.get("name", "").lower(), header.get("value", "")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out
