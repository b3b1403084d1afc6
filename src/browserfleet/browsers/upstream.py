"""Upstream proxies: which destination hosts a browser's egress proxy sends through which proxy.

A session's `proxies` become a `ProxyRoutes` table, consulted by the egress proxy (`egress.py`) for every
connection: the first route whose `domainPattern` matches the destination host decides; a `none` route
or no match at all means direct (through the egress rules, as without proxies). Pure: no I/O.

`domainPattern` is a glob over the host name, case-insensitive, matched against the whole name (never a
port or a path): `*` stands for any run of characters, dots included, `?` for one character, and every
other character for itself. So `*.example.com` matches `a.example.com` and `a.b.example.com` but not
`example.com`; `example.com` matches only itself. Address literals are matched as written
(`127.0.0.1`, `::1` without brackets). Regular expressions are refused (400), not guessed at.

The operator's own proxies (`BROWSERFLEET_PROXIES`) are parsed here too (`parse_pool`), and `resolve`
turns a request's `proxies: true` or `{type: "browserbase"}` entries into routes through them.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from browserfleet.browsers.spec import Geolocation, ProxyRule
from browserfleet.errors import InvalidRequest

MAX_ROUTES = 100
_PATTERN = re.compile(r"[A-Za-z0-9._:*?-]{1,253}")
_SETTING = "BROWSERFLEET_PROXIES"
_GLOB_HELP = (
    "a domainPattern is a glob over host names (letters, digits, '-', '.', '_', ':', with '*' for any "
    "run of characters and '?' for one, e.g. '*.example.com'); regular expressions are not supported"
)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not a domainPattern (None: it is one)."""
    if not _PATTERN.fullmatch(pattern):
        return _GLOB_HELP
    if pattern.startswith(".") or ".." in pattern:
        return f"it is not a host name pattern ({_GLOB_HELP})"
    return None


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = {"*": ".*", "?": "."}
    return re.compile("".join(parts.get(c, re.escape(c)) for c in pattern.lower()), re.DOTALL)


def host_matches(pattern: str, host: str) -> bool:
    """Whether `host` (as a request names it) matches the glob `pattern`."""
    return _compiled(pattern).fullmatch(normal_host(host)) is not None


def normal_host(host: str) -> str:
    """A host as patterns see it: lower case, without a trailing dot or IPv6 brackets."""
    return host.strip("[]").lower().removesuffix(".")


@dataclass(frozen=True)
class Upstream:
    """An upstream HTTP proxy: where it is and the `Proxy-Authorization` value it gets, if any."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """host:port, for messages (never the credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Route:
    pattern: str | None  # None: every host
    upstream: Upstream | None  # None: direct

    def matches(self, host: str) -> bool:
        return self.pattern is None or host_matches(self.pattern, host)


@dataclass(frozen=True)
class ProxyRoutes:
    """A session's routes in order; the first that matches a host decides, and no match is direct."""

    routes: tuple[Route, ...] = ()

    def upstream_for(self, host: str) -> Upstream | None:
        for route in self.routes:
            if route.matches(host):
                return route.upstream
        return None

    def __bool__(self) -> bool:
        return bool(self.routes)


def parse_server(server: str, username: str | None = None, password: str | None = None) -> Upstream:
    """An upstream from `http://[user:password@]host[:port]` (the scheme may be left out; the port defaults
    to 80). `username`/`password`, when given, win over the URL's. ValueError says what is wrong."""
    text = server.strip()
    shown = repr(_hidden(text))
    if "://" not in text:
        text = "http://" + text
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as exc:
        raise ValueError(f"{shown} is not a proxy URL: {exc}") from None
    if url.scheme.lower() != "http":
        raise ValueError(f"{shown}: only http:// proxies are supported (not {url.scheme}://)")
    if not url.hostname:
        raise ValueError(f"{shown} names no host")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"{shown}: a proxy URL has no path, query or fragment")
    if port == 0:
        raise ValueError(f"{shown}: port 0 is not a port")
    user = username if username is not None else (unquote(url.username) if url.username else None)
    secret = password if password is not None else (unquote(url.password) if url.password else None)
    authorization = None
    if user is not None or secret is not None:
        if ":" in (user or ""):
            raise ValueError("a proxy username may not contain ':' (HTTP Basic authentication)")
        token = f"{user or ''}:{secret or ''}".encode()
        authorization = "Basic " + base64.b64encode(token).decode("ascii")
    return Upstream(url.hostname, port or 80, authorization)


def _hidden(server: str) -> str:
    """A proxy URL as messages show it: the password of its user part, if any, replaced."""
    scheme, sep, rest = server.partition("://") if "://" in server else ("", "", server)
    userinfo, at, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}{sep}{user}{colon and ':***'}{at}{host}"


def routes_for(rules: tuple[ProxyRule, ...]) -> ProxyRoutes:
    """The routing table of resolved rules (`external` and `none`, or `browserbase` ones `resolve` has
    given a server). ValueError names the entry that is wrong."""
    if len(rules) > MAX_ROUTES:
        raise ValueError(f"proxies: at most {MAX_ROUTES} entries")
    routes = []
    for index, rule in enumerate(rules):
        where = f"proxies[{index}]"
        if rule.domain_pattern is not None and (why := pattern_problem(rule.domain_pattern)):
            raise ValueError(f"{where}.domainPattern {rule.domain_pattern!r}: {why}")
        if rule.kind == "none":
            routes.append(Route(rule.domain_pattern, None))
            continue
        if rule.server is None:
            raise ValueError(f"{where}: type {rule.kind!r} needs a server")
        try:
            upstream = parse_server(rule.server, rule.username, rule.password)
        except ValueError as exc:
            raise ValueError(f"{where}.server: {exc}") from None
        routes.append(Route(rule.domain_pattern, upstream))
    return ProxyRoutes(tuple(routes))


# -- the operator's proxies ----------------------------------------------------------------------


def parse_pool(text: str, setting: str = _SETTING) -> tuple[ProxyRule, ...]:
    """`BROWSERFLEET_PROXIES`: a JSON array of entries like a create body's (`{"server", "username"?,
    "password"?, "domainPattern"?, "geolocation"?: {"country", "state"?, "city"?}}`, `type` "external" by
    default, or `{"type": "none", "domainPattern"}`), or a comma-separated list of proxy URLs. A geolocation
    labels where an entry's proxy exits, for `{type: "browserbase", geolocation}` requests. ValueError
    names the bad entry."""
    text = text.strip()
    if not text:
        return ()
    if text.startswith("["):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{setting}: not a JSON array: {exc}") from None
    else:
        entries = [{"server": url.strip()} for url in text.split(",") if url.strip()]
    if not isinstance(entries, list):
        raise ValueError(f"{setting}: not a JSON array")
    rules = tuple(_pool_entry(entry, index, setting) for index, entry in enumerate(entries))
    try:
        routes_for(rules)
    except ValueError as exc:
        raise ValueError(f"{setting} entry {str(exc).removeprefix('proxies')}") from None
    return rules


def _pool_entry(entry: Any, index: int, setting: str) -> ProxyRule:
    where = f"{setting} entry [{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object")
    known = {"type", "server", "username", "password", "domainPattern", "geolocation"}
    if unknown := sorted(set(entry) - known):
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    kind = entry.get("type", "external")
    if kind not in ("external", "none"):
        raise ValueError(f"{where}: type must be 'external' or 'none'")
    strings = {k: entry.get(k) for k in ("server", "username", "password", "domainPattern")}
    for key, value in strings.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: {key} must be a string")
    geolocation = None
    if (place := entry.get("geolocation")) is not None:
        if kind != "external" or not isinstance(place, dict) or not isinstance(place.get("country"), str):
            raise ValueError(f"{where}: geolocation is {{country, state?, city?}} on an external entry")
        geolocation = Geolocation(place["country"], place.get("state"), place.get("city"))
    return ProxyRule(
        kind=cast(Any, kind),
        domain_pattern=strings["domainPattern"],
        geolocation=geolocation,
        server=strings["server"],
        username=strings["username"],
        password=strings["password"],
    )


def _same(a: str | None, b: str | None) -> bool:
    return " ".join((a or "").split()).casefold() == " ".join((b or "").split()).casefold()


def _serves(label: Geolocation | None, wanted: Geolocation) -> bool:
    if label is None or not _same(label.country, wanted.country):
        return False
    return (wanted.state is None or _same(label.state, wanted.state)) and (
        wanted.city is None or _same(label.city, wanted.city)
    )


def describe(place: Geolocation) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in vars(place).items() if v is not None)


def resolve(requested: bool | tuple[ProxyRule, ...], pool: tuple[ProxyRule, ...]) -> tuple[ProxyRule, ...]:
    """The rules a session's egress proxy applies, from what its create asked (`proxies`): `true` means the
    operator's proxies, a `browserbase` entry the first of them that serves its geolocation (if any), and
    `external`/`none` entries are kept as they are. InvalidRequest says what cannot be honoured."""
    servers = [rule for rule in pool if rule.kind == "external"]
    none_configured = f"this server has no proxies configured ({_SETTING})"
    if requested is True:
        if not servers:
            raise InvalidRequest(f"proxies: true uses the server's own proxies, and {none_configured}")
        return tuple(pool)
    if requested is False:
        return ()
    resolved: list[ProxyRule] = []
    for index, rule in enumerate(requested):
        where = f"proxies[{index}]"
        if rule.kind == "none" and (rule.server or rule.username or rule.password):
            raise InvalidRequest(f"{where}: type 'none' takes no server, username or password")
        if rule.kind != "browserbase" and rule.geolocation is not None:
            raise InvalidRequest(
                f"{where}: geolocation applies to type 'browserbase' (the server's proxies) only"
            )
        if rule.kind != "browserbase":
            resolved.append(rule)
            continue
        if rule.server or rule.username or rule.password:
            raise InvalidRequest(f"{where}: type 'browserbase' takes no server (use type 'external')")
        if not servers:
            raise InvalidRequest(
                f"{where}: type 'browserbase' uses the server's own proxies, and {none_configured}"
            )
        place = rule.geolocation
        if place is not None and place.state is not None and place.country.upper() != "US":
            raise InvalidRequest(f"{where}.geolocation: a state is given with country US only")
        chosen = (
            servers[0] if place is None else next((s for s in servers if _serves(s.geolocation, place)), None)
        )
        if chosen is None:
            assert place is not None
            raise InvalidRequest(
                f"{where}.geolocation ({describe(place)}): none of this server's proxies is labelled for it "
                f"({_SETTING} entries carry a geolocation label where the operator set one)"
            )
        resolved.append(
            ProxyRule(
                kind="browserbase",
                domain_pattern=rule.domain_pattern,
                geolocation=place,
                server=chosen.server,
                username=chosen.username,
                password=chosen.password,
            )
        )
    try:
        routes_for(tuple(resolved))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return tuple(resolved)
