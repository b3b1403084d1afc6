"""Upstream proxies (`proxies` on create, `proxies: true`, `enableProxy=true`): domain patterns and the
first match, the egress proxy speaking to an authenticating upstream (CONNECT and absolute-form http),
its clear errors (407, refused, silent, not HTTP), the egress rules applied to the upstream's address,
and real browsers whose pages go through a local proxy, counted in `proxyBytes`.

The servers here refuse loopback to pages (`BROWSERFLEET_ALLOW_LOOPBACK=false`) and allow only the test
proxies' ports: a page on 127.0.0.1 that loads did so through a proxy, which resolves every name to
127.0.0.1 itself. The Python examples of docs/proxies.md and docs/certificates.md run here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import Server, each_database, wait_for

from browserfleet.browsers.addresses import EgressRules, parse_allow_list, parse_hosts
from browserfleet.browsers.egress import EgressProxy
from browserfleet.browsers.spec import Geolocation, ProxyRule
from browserfleet.browsers.upstream import (
    ProxyRoutes,
    host_matches,
    parse_pool,
    parse_server,
    resolve,
    routes_for,
)
from browserfleet.errors import InvalidRequest
from browserfleet.store.models import Project, Session
from browserfleet.store.repo import Store
from harness import proxy as test_proxy
from harness import tls
from harness.proxy import TestProxy
from harness.server import run_async

T = TypeVar("T")
USER, PASSWORD = "alice", "pa:ss@w/rd"  # a password that would break a URL's user part


# -- patterns, servers, the operator's pool: pure -------------------------------------------------


@pytest.mark.parametrize(
    "pattern, host, matches",
    [
        ("example.com", "example.com", True),
        ("example.com", "EXAMPLE.com.", True),
        ("example.com", "www.example.com", False),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "example.com.evil.test", False),
        ("*example.com", "badexample.com", True),
        ("api-?.test", "api-1.test", True),
        ("api-?.test", "api-12.test", False),
        ("*", "anything.at.all", True),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.*", "127.0.0.9", True),
        ("::1", "[::1]", True),
    ],
)
def test_a_domain_pattern_is_a_glob_over_the_whole_host(pattern: str, host: str, matches: bool) -> None:
    assert host_matches(pattern, host) is matches


@pytest.mark.parametrize(
    "pattern", [r".*\.example\.com", "^example.com$", "(a|b).test", "example.com/path", "", ".example.com"]
)
def test_a_pattern_that_is_not_a_glob_is_refused_saying_so(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"proxies\[0\]\.domainPattern .*glob"):
        routes_for((ProxyRule("none", domain_pattern=pattern),))


def test_the_first_matching_route_wins_and_no_match_is_direct() -> None:
    routes = routes_for(
        (
            ProxyRule("none", domain_pattern="direct.example.com"),
            ProxyRule("external", domain_pattern="*.example.com", server="http://first.test:1"),
            ProxyRule("external", domain_pattern="*.example.com", server="http://shadowed.test:1"),
            ProxyRule("external", domain_pattern="*.org", server="http://second.test:2"),
        )
    )
    assert routes.upstream_for("direct.example.com") is None
    first = routes.upstream_for("www.example.com")
    assert first is not None and first.label == "first.test:1"
    second = routes.upstream_for("wiki.org")
    assert second is not None and second.label == "second.test:2"
    assert routes.upstream_for("elsewhere.net") is None
    assert not ProxyRoutes() and routes


def test_a_proxy_server_url_and_its_credentials() -> None:
    plain = parse_server("http://proxy.test:3128")
    assert (plain.host, plain.port, plain.authorization) == ("proxy.test", 3128, None)
    assert parse_server("proxy.test").port == 80  # no scheme: http, and its default port
    in_url = parse_server("http://bob:se%3Acret@proxy.test:8080")
    assert in_url.authorization == "Basic Ym9iOnNlOmNyZXQ="  # bob:se:cret
    fields = parse_server("http://bob:old@proxy.test:8080", USER, PASSWORD)
    assert fields.authorization == "Basic YWxpY2U6cGE6c3NAdy9yZA=="  # the fields win
    assert parse_server("http://[::1]:3128").label == "[::1]:3128"
    for bad, why in [
        ("socks5://proxy.test:1080", "only http://"),
        ("https://proxy.test:443", "only http://"),
        ("http://:3128", "names no host"),
        ("http://proxy.test:3128/path", "no path"),
        ("http://proxy.test:99999", "not a proxy URL"),
        ("http://proxy.test:0", "port 0"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_server(bad)
    with pytest.raises(ValueError, match="may not contain ':'"):
        parse_server("http://proxy.test:1", "a:b", "c")
    # A password never shows in a message.
    with pytest.raises(ValueError) as caught:
        parse_server("socks5://bob:hunter2@proxy.test:1080")
    assert "hunter2" not in str(caught.value) and "bob:***@" in str(caught.value)


def test_the_operators_pool_parses_and_a_bad_entry_is_named() -> None:
    assert parse_pool("") == ()
    urls = parse_pool("http://a.test:1, http://u:p@b.test:2")
    assert [rule.server for rule in urls] == ["http://a.test:1", "http://u:p@b.test:2"]
    labelled = parse_pool(
        json.dumps(
            [
                {"server": "http://se.test:1", "geolocation": {"country": "SE"}},
                {"type": "none", "domainPattern": "*.internal.test"},
                {
                    "server": "http://ny.test:1",
                    "geolocation": {"country": "US", "state": "NY", "city": "New York"},
                },
            ]
        )
    )
    assert labelled[0].geolocation == Geolocation("SE") and labelled[1].kind == "none"
    for bad, why in [
        ("[1]", r"entry \[0\]: expected an object"),
        ('[{"server": "socks5://x.test:1"}]', r"entry \[0\]\.server: .*only http://"),
        ('[{"type": "browserbase"}]', "type must be"),
        ('[{"server": "http://x.test:1", "country": "SE"}]', "unknown key 'country'"),
        ('[{"server": "http://x.test:1", "domainPattern": "^x$"}]', "glob"),
        ("[not json", "not a JSON array"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_pool(bad)


def test_true_and_browserbase_entries_resolve_to_the_operators_proxies() -> None:
    pool = parse_pool(
        json.dumps(
            [
                {"server": "http://any.test:1"},
                {"server": "http://se.test:2", "geolocation": {"country": "SE"}},
                {
                    "server": "http://ny.test:3",
                    "geolocation": {"country": "US", "state": "NY", "city": "New York"},
                },
            ]
        )
    )
    assert resolve(True, pool) == pool and resolve(False, pool) == ()
    plain, sweden, city = resolve(
        (
            ProxyRule("browserbase", domain_pattern="*.a.test"),
            ProxyRule("browserbase", geolocation=Geolocation("se")),
            ProxyRule("browserbase", geolocation=Geolocation("US", "ny", "new  york")),
        ),
        pool,
    )
    assert (plain.server, plain.domain_pattern) == ("http://any.test:1", "*.a.test")
    assert sweden.server == "http://se.test:2" and city.server == "http://ny.test:3"
    kept = ProxyRule("external", server="http://mine.test:9")
    assert resolve((kept,), ()) == (kept,)  # external entries need no pool


@pytest.mark.parametrize(
    "requested, pool, why",
    [
        (True, (), "proxies: true uses the server's own proxies, and this server has no proxies configured"),
        (
            (ProxyRule("browserbase"),),
            (),
            r"proxies\[0\]: type 'browserbase' uses the server's own proxies, and",
        ),
        (
            (ProxyRule("browserbase", geolocation=Geolocation("DE")),),
            (ProxyRule("external", server="http://x.test:1", geolocation=Geolocation("SE")),),
            r"proxies\[0\]\.geolocation \(country 'DE'\): none of this server's proxies is labelled for it",
        ),
        (
            (ProxyRule("browserbase", geolocation=Geolocation("SE")),),
            (ProxyRule("external", server="http://x.test:1"),),  # unlabelled: no geolocation is known
            "none of this server's proxies is labelled",
        ),
        (
            (ProxyRule("browserbase", geolocation=Geolocation("DE", state="BY")),),
            (ProxyRule("external", server="http://x.test:1"),),
            "a state is given with country US only",
        ),
        ((ProxyRule("external"),), (), r"proxies\[0\]: type 'external' needs a server"),
        ((ProxyRule("none", server="http://x.test:1"),), (), "type 'none' takes no server"),
        (
            (ProxyRule("external", server="http://x.test:1", geolocation=Geolocation("SE")),),
            (),
            "geolocation",
        ),
        ((ProxyRule("browserbase", server="http://x.test:1"),), (), "takes no server"),
    ],
)
def test_what_cannot_be_honoured_is_an_invalid_request_that_says_why(
    requested: bool | tuple[ProxyRule, ...], pool: tuple[ProxyRule, ...], why: str
) -> None:
    with pytest.raises(InvalidRequest, match=why):
        resolve(requested, pool)


# -- the egress proxy and an upstream, over raw sockets ---------------------------------------------


def run(make: Callable[[], Awaitable[T]]) -> T:
    return run_async(make)


async def through(
    rules: EgressRules,
    routes: ProxyRoutes,
    work: Callable[[EgressProxy], Awaitable[T]],
    upstream_timeout: float | None = None,
) -> T:
    egress = EgressProxy(rules)
    egress.routes = routes
    if upstream_timeout is not None:
        egress.upstream_timeout = upstream_timeout
    await egress.start_in(None, port=0)
    try:
        result = await work(egress)
        for _ in range(100):
            if egress.connections == 0:
                break
            await asyncio.sleep(0.02)
        assert egress.connections == 0  # every connection's task ended
        return result
    finally:
        await egress.close()


async def ask(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def tunnel_get(port: int, authority: str, path: str = "/index.html") -> tuple[bytes, bytes]:
    """CONNECT `authority` through the egress proxy, then a plain GET inside the tunnel."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 200"):
            return head, await asyncio.wait_for(reader.read(), 10)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode())
        return head, await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def site_port(site: str) -> int:
    return int(site.rsplit(":", 1)[1])


def allowing(*proxies: TestProxy, extra: str = "", hosts: str = "") -> EgressRules:
    allow = ",".join([f"127.0.0.1:{p.port}" for p in proxies] + ([extra] if extra else []))
    return EgressRules(allow=parse_allow_list(allow), hosts=parse_hosts(hosts))


def test_connect_and_plain_http_go_through_an_authenticating_upstream(site: str) -> None:
    port = site_port(site)
    with test_proxy.running(USER, PASSWORD) as upstream:
        routes = routes_for((ProxyRule("external", server=upstream.url, username=USER, password=PASSWORD),))

        async def work(egress: EgressProxy) -> tuple[bytes, bytes, int]:
            _head, tunnelled = await tunnel_get(egress.port, f"a.test:{port}")
            plain = await ask(
                egress.port,
                f"GET http://b.test:{port}/index.html HTTP/1.1\r\nHost: b.test:{port}\r\n\r\n".encode(),
            )
            return tunnelled, plain, egress.proxy_bytes

        tunnelled, plain, counted = run(lambda: through(allowing(upstream), routes, work))
    for answer in (tunnelled, plain):
        assert status_of(answer) == 200 and b"Museum of Local Art" in answer
    # The destination is named to the upstream, which resolved it: the egress rules (no loopback here)
    # applied to the upstream's own address only.
    assert upstream.requests == [("CONNECT", "a.test", port), ("GET", "b.test", port)]
    assert counted >= len(tunnelled) + len(plain) and upstream.refused == 0


def test_a_refused_password_is_a_clear_502_and_reaches_nothing(site: str) -> None:
    port = site_port(site)
    with test_proxy.running(USER, PASSWORD) as upstream:
        wrong = routes_for((ProxyRule("external", server=upstream.url, username=USER, password="wrong"),))
        anonymous = routes_for((ProxyRule("external", server=upstream.url),))

        async def work(egress: EgressProxy) -> list[bytes]:
            return [
                b"".join(await tunnel_get(egress.port, f"a.test:{port}")),
                await ask(
                    egress.port, f"GET http://a.test:{port}/ HTTP/1.1\r\nHost: a.test\r\n\r\n".encode()
                ),
            ]

        answers = run(lambda: through(allowing(upstream), wrong, work))
        unauthenticated = run(lambda: through(allowing(upstream), anonymous, work))
    for answer in answers:
        assert status_of(answer) == 502, answer
        assert f"upstream proxy 127.0.0.1:{upstream.port} refused the credentials (407".encode() in answer
    assert all(b"wants credentials, and got none" in answer for answer in unauthenticated)
    assert upstream.refused == 4 and upstream.requests == []


def test_an_upstream_on_a_refused_address_is_never_connected_to() -> None:
    with test_proxy.running() as upstream:
        routes = routes_for((ProxyRule("external", server=upstream.url),))

        async def work(egress: EgressProxy) -> list[bytes]:
            return [
                await ask(egress.port, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
                await ask(egress.port, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            ]

        # The default rules: loopback refused, and the upstream is on loopback, not in the allow-list.
        answers = run(lambda: through(EgressRules(), routes, work))
        time.sleep(0.2)
        assert upstream.accepted == 0
    for answer in answers:
        assert status_of(answer) == 403
        assert (
            f"may not reach its upstream proxy 127.0.0.1:{upstream.port}: it is a loopback".encode() in answer
        )


@contextlib.contextmanager
def listener(answer: bytes | None) -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that sends `answer` to each connection (None: never a byte), then
    keeps it open until the block ends."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            if answer is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()


def test_an_upstream_that_is_down_silent_or_not_http_is_a_clear_error_not_a_hang() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        down = int(closed.getsockname()[1])
    with listener(None) as silent, listener(b"SSH-2.0-OpenSSH_9.2\r\n\r\n") as garbage:
        cases = {
            down: (502, b"cannot connect to"),
            silent: (504, b"did not answer within 0.5 s"),
            garbage: (502, b"did not answer in HTTP"),
        }
        for port, (status, why) in cases.items():
            routes = routes_for((ProxyRule("external", server=f"http://127.0.0.1:{port}"),))
            rules = EgressRules(allow=parse_allow_list(f"127.0.0.1:{port}"))

            async def work(egress: EgressProxy) -> list[bytes]:
                return [
                    await ask(egress.port, b"CONNECT a.test:443 HTTP/1.1\r\n\r\n"),
                    await ask(egress.port, b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"),
                ]

            started = time.monotonic()
            answers = run(
                lambda rules=rules, routes=routes: through(rules, routes, work, upstream_timeout=0.5)
            )
            assert time.monotonic() - started < 5
            for answer in answers:
                assert status_of(answer) == status and why in answer, answer


def test_none_routes_go_direct_under_the_egress_rules_and_the_first_match_wins(site: str) -> None:
    port = site_port(site)
    with test_proxy.running() as first, test_proxy.running() as second:
        routes = routes_for(
            (
                ProxyRule("none", domain_pattern="direct.test"),
                ProxyRule("external", domain_pattern="*.test", server=first.url),
                ProxyRule("external", server=second.url),
            )
        )
        rules = allowing(first, second, extra=f"direct.test:{port}", hosts="direct.test=127.0.0.1")

        async def work(egress: EgressProxy) -> list[bytes]:
            return [
                await ask(egress.port, f"GET http://{host}:{port}/index.html HTTP/1.1\r\n\r\n".encode())
                for host in ("direct.test", "a.test", "127.0.0.1", "sneaky.test")
            ]

        answers = run(lambda: through(rules, routes, work))
        assert all(status_of(answer) == 200 for answer in answers)
        assert first.hosts() == ["a.test", "sneaky.test"] and second.hosts() == ["127.0.0.1"]
    # The direct one went by the egress rules: without its allow-list entry it is refused.
    answer = run(
        lambda: through(
            EgressRules(hosts=parse_hosts("direct.test=127.0.0.1")),
            routes_for((ProxyRule("none"),)),
            lambda egress: ask(egress.port, f"GET http://direct.test:{port}/ HTTP/1.1\r\n\r\n".encode()),
        )
    )
    assert status_of(answer) == 403


# -- usage: proxyBytes summed, browserMinutes billed as the contract says ----------------------------


@each_database("database_url")
def test_usage_sums_proxy_bytes_and_bills_whole_minutes_running_sessions_included(database_url: str) -> None:
    now = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)

    def row(project_id: str, started: float, ended: float | None, proxy_bytes: int = 0) -> Session:
        return Session(
            id=str(uuid.uuid4()),
            project_id=project_id,
            status="RUNNING" if ended is None else "COMPLETED",
            created_at=now,
            updated_at=now,
            started_at=now - timedelta(seconds=started),
            ended_at=None if ended is None else now - timedelta(seconds=started - ended),
            expires_at=now + timedelta(hours=1),
            keep_alive=False,
            region="us-west-2",
            create_params={},
            proxy_bytes=proxy_bytes,
        )

    async def work(store: Store) -> tuple[int, int, int, int]:
        mine, other = (
            Project(
                id=str(uuid.uuid4()),
                name=n,
                owner_id="local",
                default_timeout=300,
                concurrency=5,
                created_at=now,
                updated_at=now,
            )
            for n in ("mine", "other")
        )
        for project in (mine, other):
            await store.add_project(project)
        running = row(mine.id, started=90, ended=None)  # 1.5 minutes so far: 2
        for session in (
            running,
            row(mine.id, started=600, ended=10, proxy_bytes=100),  # 10 s: the 1-minute minimum
            row(mine.id, started=600, ended=60, proxy_bytes=250),  # exactly 1
            row(mine.id, started=600, ended=61),  # 2
            row(other.id, started=600, ended=600, proxy_bytes=10**6),  # not this project's
        ):
            await store.add_session(session)
        before = await store.proxy_bytes(mine.id)
        await store.add_samples([], {}, {running.id: 4096})  # the sampler's path
        return (
            before,
            await store.proxy_bytes(mine.id),
            await store.browser_minutes(mine.id, now),
            (await store.browser_minutes(mine.id, now + timedelta(minutes=1))),
        )

    before, after, minutes, later = run(lambda: _on_store(database_url, work))
    assert (before, after) == (350, 350 + 4096)
    assert minutes == 2 + 1 + 1 + 2 and later == minutes + 1  # the running one keeps counting


async def _on_store(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    store = await Store.open(url)
    try:
        return await work(store)
    finally:
        await store.close()


# -- the API: what cannot be honoured is a 400 before any browser is taken ----------------------------


@pytest.mark.parametrize(
    "body, why",
    [
        ({"proxies": True}, "proxies: true uses the server's own proxies, and this server has no proxies"),
        ({"proxies": [{"type": "browserbase"}]}, "type 'browserbase' uses the server's own proxies"),
        ({"proxies": [{"type": "external"}]}, "proxies[0]: type 'external' needs a server"),
        ({"proxies": [{"type": "external", "server": "socks5://p.test:1"}]}, "only http:// proxies"),
        (
            {"proxies": [{"type": "none", "domainPattern": r".*\.gov"}]},
            "regular expressions are not supported",
        ),
        ({"proxies": [{"type": "none", "server": "http://p.test:1"}]}, "type 'none' takes no server"),
    ],
)
def test_proxies_the_server_cannot_honour_are_a_400(server: Server, body: dict[str, Any], why: str) -> None:
    with server.http(server.api_key) as http:
        before = len(http.get("/v1/sessions", params={"status": "RUNNING"}).json())
        response = http.post("/v1/sessions", json=body)
        assert response.status_code == 400, response.text
        assert why in response.json()["message"] and response.json()["error"] == "Bad Request"
        assert len(http.get("/v1/sessions", params={"status": "RUNNING"}).json()) == before


def test_enable_proxy_on_a_connect_url_without_server_proxies_is_a_400(server: Server) -> None:
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    for value, why in [
        ("true", "enableProxy=true: proxies: true uses the server's own"),
        ("yes", "true or false"),
    ]:
        response = httpx.get(
            f"{server.url}/", params={"apiKey": server.api_key, "enableProxy": value}, headers=upgrade
        )
        assert response.status_code == 400 and why in response.json()["message"], response.text


# -- real browsers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxies() -> Iterator[dict[str, TestProxy]]:
    """An authenticating proxy, an open one (also the server's pool), one the egress rules refuse, and
    the docs' example proxy (alice / s3cret)."""
    with (
        test_proxy.running(USER, PASSWORD) as good,
        test_proxy.running() as pool,
        test_proxy.running() as blocked,
        test_proxy.running("alice", "s3cret") as docs,
    ):
        yield {"good": good, "pool": pool, "blocked": blocked, "docs": docs}


@pytest.fixture(scope="module")
def proxied(suite_root: Path, site: str, proxies: dict[str, TestProxy]) -> Iterator[Server]:
    port = site_port(site)
    allowed = ",".join(f"127.0.0.1:{proxies[name].port}" for name in ("good", "pool", "docs"))
    allow = f"{allowed},direct.test:{port}"
    pool = [{"server": proxies["pool"].url, "geolocation": {"country": "SE", "city": "Malmö"}}]
    srv = Server(
        suite_root / "proxies",
        env={
            "BROWSERFLEET_ALLOW_LOOPBACK": "false",
            "BROWSERFLEET_EGRESS_ALLOW": allow,
            "BROWSERFLEET_EGRESS_HOSTS": "direct.test=127.0.0.1",
            "BROWSERFLEET_PROXIES": json.dumps(pool),
            "BROWSERFLEET_POOL_SIZE": "1",
        },
    ).start()
    yield srv
    srv.stop()
    assert not srv.left_behind()


def good_proxy(proxies: dict[str, TestProxy], password: str = PASSWORD, **extra: str) -> dict[str, str]:
    return {
        "type": "external",
        "server": proxies["good"].url,
        "username": USER,
        "password": password,
        **extra,
    }


def test_pages_go_through_an_authenticating_proxy_and_proxy_bytes_count_them(
    proxied: Server, site: str, proxies: dict[str, TestProxy], playwright: Any
) -> None:
    port, good = site_port(site), proxies["good"]
    bb = proxied.sdk()
    session = bb.sessions.create(proxies=[good_proxy(proxies)])
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    seen = len(good.requests)
    response = page.goto(f"http://shop.test:{port}/index.html")
    assert response is not None and response.status == 200 and page.title() == "Museum of Local Art"
    page.goto(f"{site}/tickets.html")  # 127.0.0.1 itself: refused to pages here, fine through the proxy
    assert ("GET", "shop.test", port) in good.requests[seen:] and ("GET", "127.0.0.1", port) in good.requests
    browser.close()
    bb.sessions.update(session.id, status="REQUEST_RELEASE")
    ended = wait_for(lambda: (s := bb.sessions.retrieve(session.id)).proxy_bytes > 0 and s)
    # Both directions, and at least the page itself.
    assert ended.proxy_bytes > (Path(__file__).parent / "site" / "index.html").stat().st_size
    usage = bb.projects.usage(session.project_id)
    assert usage.proxy_bytes >= ended.proxy_bytes and usage.browser_minutes >= 1
    stored = proxied.read_store(lambda store: store.session(session.id))
    assert stored is not None
    assert stored.create_params["applied"]["proxies"][0]["password"] == "(set)"
    assert PASSWORD not in json.dumps(stored.create_params)


def test_a_wrong_password_gives_the_page_a_clear_error(
    proxied: Server, site: str, proxies: dict[str, TestProxy], playwright: Any
) -> None:
    port, good = site_port(site), proxies["good"]
    refused = good.refused
    session = proxied.sdk().sessions.create(proxies=[good_proxy(proxies, password="wrong")])
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    response = page.goto(f"http://shop.test:{port}/index.html")
    assert response is not None and response.status == 502
    assert f"upstream proxy 127.0.0.1:{good.port} refused the credentials" in page.content()
    with pytest.raises(Exception, match="ERR_TUNNEL_CONNECTION_FAILED"):
        page.goto(f"https://shop.test:{port}/")
    assert good.refused >= refused + 2
    browser.close()


def test_a_none_pattern_bypasses_and_the_first_matching_pattern_wins(
    proxied: Server, site: str, proxies: dict[str, TestProxy], playwright: Any
) -> None:
    port, good, pool = site_port(site), proxies["good"], proxies["pool"]
    session = proxied.sdk().sessions.create(
        proxies=[
            {"type": "none", "domainPattern": "direct.test"},
            good_proxy(proxies, domainPattern="*.test"),
            {"type": "browserbase", "geolocation": {"country": "se", "city": "malmö"}},
        ]
    )
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    before_good, before_pool = len(good.requests), len(pool.requests)
    for url in (
        f"http://direct.test:{port}/index.html",
        f"http://a.test:{port}/index.html",
        f"{site}/index.html",
    ):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
    assert set(good.hosts()[before_good:]) == {"a.test"}
    assert "127.0.0.1" in pool.hosts()[before_pool:] and "direct.test" not in good.hosts() + pool.hosts()
    browser.close()


def test_an_upstream_proxy_the_egress_rules_refuse_is_not_reached(
    proxied: Server, site: str, proxies: dict[str, TestProxy], playwright: Any
) -> None:
    blocked = proxies["blocked"]  # on 127.0.0.1, and not in the allow-list
    session = proxied.sdk().sessions.create(proxies=[{"type": "external", "server": blocked.url}])
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    response = page.goto(f"http://shop.test:{site_port(site)}/index.html")
    assert response is not None and response.status == 403
    assert f"may not reach its upstream proxy 127.0.0.1:{blocked.port}" in page.content()
    browser.close()
    assert blocked.accepted == 0


def test_proxies_true_and_enable_proxy_use_the_servers_proxies(
    proxied: Server, site: str, proxies: dict[str, TestProxy], playwright: Any
) -> None:
    port, pool = site_port(site), proxies["pool"]
    bb = proxied.sdk()
    with proxied.http(proxied.api_key) as http:
        refused = http.post(
            "/v1/sessions", json={"proxies": [{"type": "browserbase", "geolocation": {"country": "US"}}]}
        )
    assert refused.status_code == 400 and "geolocation (country 'US')" in refused.json()["message"]
    session = bb.sessions.create(proxies=True)
    implicit = f"{proxied.ws_url}/?apiKey={proxied.api_key}&enableProxy=true"
    for connect_url in (session.connect_url, implicit):
        before = len(pool.requests)
        browser = playwright.chromium.connect_over_cdp(connect_url)
        page = browser.contexts[0].pages[0]
        response = page.goto(f"http://pooled.test:{port}/index.html")
        assert response is not None and response.status == 200, connect_url
        assert ("GET", "pooled.test", port) in pool.requests[before:]
        browser.close()
    # Without enableProxy, an implicit session goes direct (and 127.0.0.1 is refused to pages here).
    browser = playwright.chromium.connect_over_cdp(f"{proxied.ws_url}/?apiKey={proxied.api_key}")
    response = browser.contexts[0].pages[0].goto(f"{site}/index.html")
    assert response is not None and response.status == 403
    browser.close()


def test_enable_proxy_on_the_webdriver_url(proxied: Server, site: str, proxies: dict[str, TestProxy]) -> None:
    """`?enableProxy=true` on seleniumRemoteUrl (Selenium appends its command paths to that query)."""
    from test_selenium import connect

    port, pool = site_port(site), proxies["pool"]
    before = len(pool.requests)
    driver = connect(f"{proxied.url}/webdriver?enableProxy=true", {"x-bb-api-key": proxied.api_key})
    try:
        driver.get(f"http://pooled.test:{port}/index.html")
        assert driver.title == "Museum of Local Art"
        assert ("GET", "pooled.test", port) in pool.requests[before:]
    finally:
        driver.quit()
    direct = connect(f"{proxied.url}/webdriver", {"x-bb-api-key": proxied.api_key})
    try:
        direct.get(f"{site}/index.html")  # without it the session goes direct: 127.0.0.1 is refused
        assert direct.title != "Museum of Local Art"
    finally:
        direct.quit()


def test_https_goes_through_the_proxy_too_and_trusts_an_uploaded_ca(
    proxied: Server, proxies: dict[str, TestProxy], playwright: Any
) -> None:
    """CONNECT in a real browser: a TLS site (its certificate from a test CA the session trusts) reached
    by a name only the proxy resolves. The way a TLS-inspecting proxy is used."""
    ca = tls.make_ca()
    good = proxies["good"]
    with tls.serving(tls.issue(ca, ["secure.test"])) as port:
        bb = proxied.sdk()
        certificate = bb.certificates.create(file=("ca.pem", ca.pem))
        session = bb.sessions.create(
            proxies=[good_proxy(proxies)], proxy_settings={"ca_certificates": [certificate.id]}
        )
        browser = playwright.chromium.connect_over_cdp(session.connect_url)
        page = browser.contexts[0].pages[0]
        response = page.goto(f"https://secure.test:{port}/")
        assert response is not None and response.status == 200 and page.title() == "Secure page"
        assert ("CONNECT", "secure.test", port) in good.requests
        browser.close()
        bb.certificates.delete(certificate.id)


def python_examples(doc: str) -> list[str]:
    text = (Path(__file__).resolve().parent.parent / "docs" / doc).read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_example(code: str, srv: Server, cwd: Path) -> str:
    script = cwd / "example.py"
    script.write_text(code.replace("http://127.0.0.1:7800", srv.url))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**os.environ, "BROWSERBASE_API_KEY": srv.api_key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_docs_python_examples_run(
    proxied: Server, site: str, proxies: dict[str, TestProxy], tmp_path: Path
) -> None:
    """docs/proxies.md and docs/certificates.md, with their proxies and sites swapped for local ones."""
    port, docs, pool = site_port(site), proxies["docs"], proxies["pool"]
    (example,) = python_examples("proxies.md")
    code = (
        example.replace("http://proxy.example.net:3128", docs.url)
        .replace("http://other-proxy.example.net:8080", pool.url)
        .replace("https://www.example.com/", f"http://www.example.com:{port}/index.html")
    )
    assert int(run_example(code, proxied, tmp_path).strip()) > 0  # it prints proxyBytes
    assert ("GET", "www.example.com", port) in docs.requests

    ca = tls.make_ca("docs CA")
    (tmp_path / "corporate-ca.pem").write_bytes(ca.pem)
    with tls.serving(tls.issue(ca, ["intranet.corp.example"])) as tls_port:
        (example,) = python_examples("certificates.md")
        code = example.replace("http://inspecting-proxy.corp.example:3128", pool.url).replace(
            "https://intranet.corp.example/", f"https://intranet.corp.example:{tls_port}/"
        )
        run_example(code, proxied, tmp_path)
    assert ("CONNECT", "intranet.corp.example", tls_port) in pool.requests
