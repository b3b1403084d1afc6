"""`browserSettings.allowedDomains`: top-level navigations only to the listed domains and their subdomains.

Matching is by domain, not URL: `example.com` allows `example.com`, `www.example.com` and
`a.b.example.com` (any scheme or port), not `notexample.com`. An IP address allows itself only. Entries
are normalised once (`parse_domain`: lower case, IDNA to ASCII, no trailing dot; `*.example.com` is read
as `example.com`), and a bad one is refused at create, named.

Enforced by the browser agent (`AllowedDomains`, an `Interceptor`) on every tab, popups and tabs a
client opens included, before the request leaves the browser: a top-level document request (each hop of
a redirect too) to another host is answered with a 403 page that says why, which is what the client's
`page.goto` sees (Playwright: a response with status 403, no exception). Sub-frames and subresources are
not restricted. Only http(s) is governed: `about:blank`, `data:` (which Chromium only lets a client, not a
page, open at the top level), `blob:` (whose origin is the page that made it) and the session's own
`chrome-extension:` pages load nothing from another host.
"""

from __future__ import annotations

import base64
import html
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from browserfleet.browsers.agent import AttachedTarget
from browserfleet.browsers.interception import Paused, Verdict

MAX_ENTRIES = 1000
_GOVERNED = ("http", "https")
_NOT_IN_NAMES = set("/\\:?#@[]*% \t\r\n\x00")


def parse_domain(entry: str) -> str:
    """One `allowedDomains` entry in its normal form; ValueError saying what is wrong with it."""
    text = entry.strip().lower()
    if "://" in text:
        raise ValueError(f"{entry!r} is a URL: give its domain name (e.g. {urlsplit(text).hostname!r})")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        pass
    if text.startswith("*."):
        text = text[2:]
    text = text.removesuffix(".")
    if not text:
        raise ValueError(f"{entry!r} is not a domain name")
    if bad := sorted(set(text) & _NOT_IN_NAMES):
        held = "".join(bad)
        raise ValueError(f"{entry!r} is not a domain name (it holds {held!r}; no scheme, port or path)")
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{entry!r} is not a domain name ({exc})") from None
    if len(ascii_name) > 253 or any(not label for label in ascii_name.split(".")):
        raise ValueError(f"{entry!r} is not a domain name")
    return ascii_name


@dataclass(frozen=True)
class DomainList:
    """Normalised allowed domains (see `parse_domain`)."""

    names: frozenset[str]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> DomainList:
        return cls(frozenset(parse_domain(entry) for entry in entries))

    def allows_host(self, host: str) -> bool:
        host = host.lower().removesuffix(".").strip("[]")
        try:
            return ipaddress.ip_address(host).compressed in self.names
        except ValueError:
            pass
        labels = host.split(".")
        return any(".".join(labels[i:]) in self.names for i in range(len(labels)))

    def allows_url(self, url: str) -> bool:
        """Whether a top-level navigation to `url` may go ahead (other schemes than http(s): yes)."""
        parts = urlsplit(url)
        if parts.scheme not in _GOVERNED:
            return True
        return parts.hostname is not None and self.allows_host(parts.hostname)


def blocked_page(url: str, allowed: Iterable[str]) -> dict[str, Any]:
    """`Fetch.fulfillRequest` parameters of the 403 page a blocked navigation shows."""
    host = urlsplit(url).hostname or url
    listed = ", ".join(sorted(allowed))
    if len(listed) > 2000:
        listed = listed[:2000] + "…"
    body = (
        "<!doctype html><meta charset=utf-8><title>Blocked: not an allowed domain</title>"
        "<h1>Navigation blocked</h1>"
        f"<p><code>{html.escape(host)}</code> is not in this session's "
        "<code>browserSettings.allowedDomains</code>, so the browser did not load "
        f"<code>{html.escape(url[:2000])}</code>.</p>"
        f"<p>Allowed: {html.escape(listed)} (and their subdomains).</p>"
    ).encode()
    return {
        "responseCode": 403,
        "responsePhrase": "Forbidden",
        "responseHeaders": [
            {"name": "Content-Type", "value": "text/html; charset=utf-8"},
            {"name": "Cache-Control", "value": "no-store"},
            {"name": "Content-Security-Policy", "value": "default-src 'none'"},
        ],
        "body": base64.b64encode(body).decode(),
    }


class AllowedDomains:
    """The `Interceptor` for `allowedDomains`: top-level document requests of tabs only."""

    def __init__(self, domains: DomainList) -> None:
        self.domains = domains

    async def prepare(self) -> None:
        pass

    def patterns(self, target: AttachedTarget) -> list[dict[str, Any]]:
        if target.type != "page":
            return []  # iframes (out-of-process ones are targets of their own) and workers are not governed
        return [{"urlPattern": "*", "resourceType": "Document", "requestStage": "Request"}]

    def decide(self, paused: Paused) -> Verdict | None:
        if paused.at_response or paused.resource_type != "Document" or not paused.top_level:
            return None
        if self.domains.allows_url(paused.url):
            return None
        return Verdict("Fetch.fulfillRequest", blocked_page(paused.url, self.domains.names))
