"""Where a session's traffic may go: the egress rules (a table of refused networks, the host's own
addresses, the operator's allow-list), the egress proxy that applies them to every resolved address
before connecting, and real browsers that cannot reach what the rules refuse.

Every refused destination has a canary listening on it: a refusal must leave its accept count at 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from conftest import Server, session_browser

from browserfleet.browsers import addresses, netns
from browserfleet.browsers.addresses import (
    THIS_HOST,
    AllowList,
    EgressRules,
    HostAddresses,
    parse_allow_list,
    parse_hosts,
)
from browserfleet.browsers.egress import PORT as EGRESS_PORT
from browserfleet.browsers.egress import EgressProxy

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine on a loop of its own (the sync Playwright fixture holds this thread's loop)."""

    async def main() -> T:
        return await coro

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, main()).result()


class Canary:
    """A listener that counts the connections it accepts and answers each with `200 canary`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\ncanary")

    def count(self) -> int:
        """Connections so far, once anything in flight has had time to arrive."""
        time.sleep(0.3)
        return self.accepted

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@contextlib.contextmanager
def canaries(*hosts: str) -> Iterator[list[Canary]]:
    made = [Canary(host) for host in hosts]
    try:
        yield made
    finally:
        for canary in made:
            canary.close()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


# -- the rules, pure ----------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.170", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.7", "documentation"),
    ("2001:db8::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("fec0::1", "site-local"),
    # IPv6 forms that embed a refused IPv4 address
    ("::ffff:127.0.0.1", "loopback address (IPv4-mapped)"),
    ("::ffff:10.0.0.1", "private network address (IPv4-mapped)"),
    ("::ffff:169.254.169.254", "link-local address (IPv4-mapped)"),
    ("64:ff9b::a00:1", "private network address (NAT64)"),
    ("64:ff9b::7f00:1", "loopback address (NAT64)"),
    ("2002:0a00:0001::", "private network address (6to4)"),
    ("2002:7f00:1::1", "loopback address (6to4)"),
    ("::a00:1", "IPv4-compatible"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::ffff:0:a00:1", "IPv4-translated"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("100::1", "discard"),
    ("4000::1", "reserved"),
    ("1000::1", "reserved"),
]
ALLOWED = [
    *("8.8.8.8", "1.1.1.1", "93.184.215.14", "100.63.255.255", "172.32.0.1", "192.169.0.1"),
    *("2606:4700::1111", "2a00:1450::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"),
]


def nowhere() -> EgressRules:
    """Rules with no allow-list and no host addresses: the table alone."""
    return EgressRules(host_addresses=HostAddresses(lambda: frozenset()))


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_the_table_refuses_special_addresses(address: str, reason: str) -> None:
    why = nowhere().check(address, 443)
    assert why is not None and reason in why, (address, why)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str) -> None:
    assert nowhere().check(address, 443) is None


def test_every_address_of_this_host_is_refused_and_reread() -> None:
    found: set[addresses.IPAddress] = {ipaddress.ip_address("11.77.0.1")}
    host = HostAddresses(lambda: frozenset(found))
    rules = EgressRules(host_addresses=host)
    assert rules.check("11.77.0.1", 80) == THIS_HOST  # a public address, refused for being ours
    assert rules.check("::ffff:11.77.0.1", 80) == THIS_HOST
    assert rules.check("64:ff9b::b4d:1", 80) == THIS_HOST  # NAT64 of 11.77.0.1
    assert rules.check("11.77.0.2", 80) is None
    found.add(ipaddress.ip_address("2a00:1450::77"))
    assert rules.check("2a00:1450::77", 80) is None  # not re-read yet
    host._at -= addresses.HOST_REFRESH + 1
    assert rules.check("2a00:1450::77", 80) == THIS_HOST
    # The real enumeration sees this namespace's loopback.
    assert ipaddress.ip_address("127.0.0.1") in HostAddresses()


def test_the_allow_list_admits_what_it_names_and_no_more() -> None:
    rules = EgressRules(
        allow=parse_allow_list(
            "10.1.0.0/16, 127.0.0.1:8080, [::1]:9000, internal.example:443, 11.77.0.1, fd00::/8"
        ),
        host_addresses=HostAddresses(lambda: frozenset({ipaddress.ip_address("11.77.0.1")})),
    )
    assert rules.check("10.1.2.3", 1) is None and rules.check("10.1.2.3", 65535) is None
    assert rules.check("10.2.0.1", 80) is not None
    assert rules.check("127.0.0.1", 8080) is None
    assert rules.check("::ffff:127.0.0.1", 8080) is None  # the same destination
    assert rules.check("127.0.0.1", 8081) is not None
    assert rules.check("127.0.0.2", 8080) is not None
    assert rules.check("::1", 9000) is None and rules.check("::1", 9001) is not None
    assert rules.check("fd00::5", 22) is None
    assert rules.check("11.77.0.1", 80) is None  # a host address, allowed by name of address
    # A name lets its resolved (private) addresses through, for that name and port only.
    assert rules.check("10.9.9.9", 443, "internal.example") is None
    assert rules.check("10.9.9.9", 443, "Internal.Example.") is None
    assert rules.check("10.9.9.9", 444, "internal.example") is not None
    assert rules.check("10.9.9.9", 443, "other.example") is not None
    assert rules.check("10.9.9.9", 443) is not None


def test_allow_loopback_is_shorthand_for_loopback_on_every_port() -> None:
    rules = EgressRules.from_settings("", allow_loopback=True)
    for address in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        assert rules.check(address, 5432) is None, address
    assert rules.check("0.0.0.0", 80) is not None
    assert rules.check("10.0.0.1", 80) is not None
    assert EgressRules.from_settings("", allow_loopback=False).check("127.0.0.1", 80) is not None


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ("10.1.2.3/16", "host bits set"),
        ("10.0.0.0/33", "does not appear"),
        ("internal.example", "expected a CIDR"),
        ("internal.example:0", "not a port"),
        ("internal.example:65536", "not a port"),
        ("internal.example:https", "not a port"),
        ("127.0.0.1:", "not a port"),
        ("[::1:9000", "unbalanced"),
        ("::1]:9000", "in brackets"),
        ("fe80::1%eth0", "zone ids"),
        ("2130706433:80", "neither an IP address nor a host name"),
        ("0x7f.1:80", "neither an IP address nor a host name"),
        ("bad_name.example:80", "neither"),
        ("-bad.example:80", "neither"),
        ("a..b:80", "neither"),
    ],
)
def test_a_bad_allow_list_entry_is_named(entry: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_allow_list(f"10.0.0.0/8, {entry}")
    message = str(caught.value)
    assert f"BROWSERFLEET_EGRESS_ALLOW entry {entry!r}" in message and complaint in message, message


def test_the_allow_list_and_hosts_map_parse() -> None:
    allowed = parse_allow_list(
        " 10.1.0.0/16 ,, ::1/128,127.0.0.1:8080,[::1]:9000,Internal.Example.:443,10.0.0.5 "
    )
    assert allowed.networks == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.0.0.5/32"),
    )
    assert allowed.endpoints == {
        (ipaddress.ip_address("127.0.0.1"), 8080),
        (ipaddress.ip_address("::1"), 9000),
    }
    assert allowed.names == {("internal.example", 443)}
    assert parse_allow_list("") == AllowList()
    hosts = parse_hosts("a.test=127.0.0.1, B.test=::1, a.test=10.0.0.1")
    assert hosts == {
        "a.test": (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")),
        "b.test": (ipaddress.ip_address("::1"),),
    }
    for bad in ("a.test", "a.test=nowhere", "=1.2.3.4"):
        with pytest.raises(ValueError, match="BROWSERFLEET_EGRESS_HOSTS entry"):
            parse_hosts(bad)


# -- the proxy, in this process ------------------------------------------------------------------


async def ask(port: int, data: bytes) -> bytes:
    """Send raw bytes to the proxy and read its answer to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def serving(rules: EgressRules, work: Callable[[EgressProxy], Awaitable[T]], **kw: Any) -> T:
    proxy = EgressProxy(rules, **kw)
    await proxy.start_in(None, port=0)
    try:
        result = await work(proxy)
        for _ in range(100):  # every connection's task ends once it is answered
            if proxy.connections == 0:
                break
            await asyncio.sleep(0.02)
        assert proxy.connections == 0
        return result
    finally:
        await proxy.close()


def test_the_proxy_refuses_every_form_of_a_refused_address_without_connecting() -> None:
    rules = EgressRules(hosts=parse_hosts("sneaky.test=127.0.0.1, split.test=8.8.8.8, split.test=127.0.0.1"))
    with canaries("127.0.0.1") as (canary,):
        p = canary.port
        requests = [
            f"CONNECT 127.0.0.1:{p} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n",
            f"CONNECT 2130706433:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT 0x7f000001:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT [::ffff:127.0.0.1]:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT [::1]:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT localhost:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT 0.0.0.0:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT [::]:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT sneaky.test:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT split.test:{p} HTTP/1.1\r\n\r\n",  # one public address does not save it
            f"GET http://0x7f.1:{p}/ HTTP/1.1\r\nHost: x\r\n\r\n",
            f"GET http://0177.0.0.1:{p}/ HTTP/1.1\r\n\r\n",
            f"GET http://127.1:{p}/ HTTP/1.1\r\n\r\n",
            f"GET http://2130706433:{p}/ HTTP/1.1\r\n\r\n",
            f"GET http://[::1]:{p}/ HTTP/1.1\r\n\r\n",
            f"GET http://[fe80::1%25lo]:{p}/ HTTP/1.1\r\n\r\n",
            f"GET http://LOCALHOST:{p}/ HTTP/1.1\r\n\r\n",
            f"POST http://sneaky.test:{p}/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        ]

        async def work(proxy: EgressProxy) -> list[bytes]:
            return [await ask(proxy.port, request.encode()) for request in requests]

        answers = run(serving(rules, work))
        for request, answer in zip(requests, answers, strict=True):
            assert status_of(answer) == 403, (request, answer)
            assert b"this session may not reach" in answer, answer
        assert canary.count() == 0


def test_the_proxy_answers_bad_requests_400_and_slow_ones_408() -> None:
    with canaries("127.0.0.1") as (canary,):
        p = canary.port
        rules = EgressRules.from_settings(f"127.0.0.1:{p}", allow_loopback=False)
        bad = [
            b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n",
            b"CONNECT 127.0.0.1:abc HTTP/1.1\r\n\r\n",
            b"CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n",
            b"CONNECT 127.0.0.1:65536 HTTP/1.1\r\n\r\n",
            b"CONNECT 127.0.0.1:-1 HTTP/1.1\r\n\r\n",
            b"CONNECT ::1:80 HTTP/1.1\r\n\r\n",
            b"CONNECT [::1] HTTP/1.1\r\n\r\n",
            b"CONNECT :80 HTTP/1.1\r\n\r\n",
            b"GET http://127.0.0.1:99999/ HTTP/1.1\r\n\r\n",
            b"GET http://127.0.0.1:0/ HTTP/1.1\r\n\r\n",
            f"GET http://127.0.0.1:x{p}/ HTTP/1.1\r\n\r\n".encode(),
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n".encode(),
            f"GET https://127.0.0.1:{p}/ HTTP/1.1\r\n\r\n".encode(),
            b"GET http://[::1/ HTTP/1.1\r\n\r\n",
            b"hello\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            f"GET http://127.0.0.1:{p}/ HTTP/1.1\r\nno colon here\r\n\r\n".encode(),
            f"GET http://127.0.0.1:{p}/ HTTP/1.1\r\nX-Big: {'a' * 70_000}\r\n\r\n".encode(),
            b"A" * 200_000,  # no end of head at all
        ]

        async def work(proxy: EgressProxy) -> tuple[list[bytes], bytes, float, bytes]:
            answers = [await ask(proxy.port, request) for request in bad]
            # Slowloris: one byte at a time, never finishing the head.
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

            async def trickle() -> None:
                with contextlib.suppress(ConnectionError):
                    for byte in b"GET http://127.0.0.1/ HTTP/1.1\r\nX: " + b"y" * 100:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.1)

            started = time.monotonic()
            trickling = asyncio.create_task(trickle())
            slow = await asyncio.wait_for(reader.read(), 5)
            elapsed = time.monotonic() - started
            trickling.cancel()
            writer.close()
            # The allowed destination still works on the same proxy, as a control.
            good = await ask(proxy.port, f"GET http://127.0.0.1:{p}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            return answers, slow, elapsed, good

        answers, slow, elapsed, good = run(serving(rules, work, head_timeout=1.0))
        for request, answer in zip(bad, answers, strict=True):
            assert status_of(answer) == 400, (request[:80], answer)
        assert b"over 64 KiB" in answers[-2] and b"over 64 KiB" in answers[-1]
        assert status_of(slow) == 408 and 0.9 < elapsed < 3, (slow, elapsed)
        assert good.endswith(b"canary") and status_of(good) == 200
        assert canary.count() == 1  # the control only


def test_refused_and_failed_connections_leave_no_task_or_socket() -> None:
    fds = Path("/proc/self/fd")
    with canaries("127.0.0.1") as (canary,):
        with socket.socket() as probe:  # bound and closed at once: nothing listens there
            probe.bind(("127.0.0.1", 0))
            closed_port = int(probe.getsockname()[1])
        rules = EgressRules.from_settings(f"127.0.0.1:{closed_port}", allow_loopback=False)

        async def work(proxy: EgressProxy) -> list[bytes]:
            answers = []
            for _ in range(20):
                answers.append(
                    await ask(proxy.port, f"CONNECT 127.0.0.1:{canary.port} HTTP/1.1\r\n\r\n".encode())
                )
                answers.append(
                    await ask(proxy.port, f"CONNECT 127.0.0.1:{closed_port} HTTP/1.1\r\n\r\n".encode())
                )
                answers.append(await ask(proxy.port, b"garbage\r\n\r\n"))
                answers.append(await ask(proxy.port, b"CONNECT nowhere.invalid:443 HTTP/1.1\r\n\r\n"))
                # A client that leaves in the middle of its head.
                _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                writer.write(b"CONNECT 127.0.0.1:")
                writer.close()
            return answers

        async def measured() -> tuple[int, list[bytes], int, int]:
            before = len(os.listdir(fds))
            answers = await serving(rules, work)
            await asyncio.sleep(0.1)
            tasks = len(asyncio.all_tasks()) - 1
            return before, answers, len(os.listdir(fds)), tasks

        before, answers, after, tasks = run(measured())
        assert [status_of(a) for a in answers[:4]] == [403, 502, 400, 502]
        assert tasks == 0
        assert after <= before, (before, after)
        assert canary.count() == 0


def test_an_allowed_name_reaches_its_private_address_on_its_port_only() -> None:
    with canaries("127.0.0.1", "127.0.0.1") as (named, other):
        rules = EgressRules(
            allow=parse_allow_list(f"internal.test:{named.port}"),
            hosts=parse_hosts("internal.test=127.0.0.1"),
        )

        async def work(proxy: EgressProxy) -> list[bytes]:
            return [
                await ask(proxy.port, f"GET http://internal.test:{named.port}/ HTTP/1.1\r\n\r\n".encode()),
                await ask(proxy.port, f"CONNECT internal.test:{other.port} HTTP/1.1\r\n\r\n".encode()),
                await ask(proxy.port, f"CONNECT 127.0.0.1:{named.port} HTTP/1.1\r\n\r\n".encode()),
            ]

        reached, wrong_port, by_address = run(serving(rules, work))
        assert status_of(reached) == 200 and reached.endswith(b"canary")
        assert status_of(wrong_port) == 403 and status_of(by_address) == 403
        assert named.count() == 1 and other.count() == 0


# -- real browsers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(suite_root: Path) -> Iterator[Server]:
    """A server with the default rules (no loopback) and a test name that resolves to loopback."""
    srv = Server(
        suite_root / "egress-strict",
        env={
            "BROWSERFLEET_ALLOW_LOOPBACK": "false",
            "BROWSERFLEET_POOL_SIZE": "1",
            "BROWSERFLEET_EGRESS_HOSTS": "sneaky.test=127.0.0.1",
        },
    ).start()
    yield srv
    srv.stop()


def test_pages_cannot_reach_the_servers_own_loopback(strict: Server, site: str, playwright: Any) -> None:
    """The API, the test site and a canary on 127.0.0.1, by address, by name and by a test name."""
    session = strict.sdk().sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    with canaries("127.0.0.1") as (canary,):
        p = canary.port
        for url in (
            f"{site}/index.html",
            f"{strict.url}/v1/projects",
            f"http://localhost:{strict.port}/v1/projects",
            f"http://127.0.0.1:{p}/",
            f"http://[::1]:{p}/",
            f"http://2130706433:{p}/",
            f"http://0x7f.1:{p}/",
            f"http://sneaky.test:{p}/",
        ):
            response = page.goto(url)
            assert response is not None and response.status == 403, url
            assert "this session may not reach" in page.content(), url
        with pytest.raises(Exception, match="ERR_TUNNEL_CONNECTION_FAILED"):
            page.goto(f"https://127.0.0.1:{p}/")
        with pytest.raises(Exception, match="ERR_TUNNEL_CONNECTION_FAILED"):
            page.goto(f"https://sneaky.test:{p}/")
        assert canary.count() == 0
    browser.close()


def raw_from_browser(pid: int, data: bytes) -> bytes:
    """Send raw bytes to the egress proxy from inside the browser's own network namespace."""
    fd = netns.open_of(pid)
    try:
        sock = netns.socket_in(fd)
    finally:
        os.close(fd)
    with sock:
        sock.setblocking(True)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", EGRESS_PORT))
        with contextlib.suppress(ConnectionError):
            sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_raw_client_in_the_browsers_namespace_gets_no_further(strict: Server) -> None:
    session = strict.sdk().sessions.create()
    pid, _ = session_browser(strict, session.id)
    with canaries("127.0.0.1") as (canary,):
        p = canary.port
        refused = [
            f"CONNECT 2130706433:{p} HTTP/1.1\r\n\r\n",
            f"CONNECT [::ffff:127.0.0.1]:{p} HTTP/1.1\r\n\r\n",
            f"GET http://0x7f.1:{p}/ HTTP/1.1\r\n\r\n",
            f"GET http://sneaky.test:{p}/ HTTP/1.1\r\n\r\n",
        ]
        for request in refused:
            assert status_of(raw_from_browser(pid, request.encode())) == 403, request
        bad = [b"\x00\x01garbage\r\n\r\n", b"GET http://x/ HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n"]
        for request in bad:
            assert status_of(raw_from_browser(pid, request)) == 400, request[:40]
        assert canary.count() == 0
    strict.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


@pytest.fixture
def dummy_interface() -> Iterator[None]:
    """bf-dummy0 with a private, a public and the cloud-metadata address, in this test's own namespace."""
    # Only in a loopback-only namespace (the suite's `unshare --net`): never on a real host's network.
    if set(psutil.net_if_stats()) - {"lo", "bf-dummy0"}:
        pytest.skip("not in a loopback-only network namespace: run the suite under `unshare --net`")
    subprocess.run(["ip", "link", "del", "bf-dummy0"], capture_output=True, check=False)
    # A dummy device, or where the kernel has no dummy module, a bridge without ports: either is an
    # interface with addresses of this host that leads nowhere.
    for kind in ("dummy", "bridge"):
        if not subprocess.run(
            ["ip", "link", "add", "bf-dummy0", "type", kind], capture_output=True
        ).returncode:
            break
    else:
        pytest.skip("cannot add a dummy interface here")
    try:
        for address in ("10.77.0.1/24", "11.77.0.1/32", "169.254.169.254/32"):
            subprocess.run(["ip", "addr", "add", address, "dev", "bf-dummy0"], check=True)
        subprocess.run(["ip", "link", "set", "bf-dummy0", "up"], check=True)
        yield
    finally:
        subprocess.run(["ip", "link", "del", "bf-dummy0"], check=False)


def test_other_host_addresses_and_metadata_are_refused_unless_allowed(
    dummy_interface: None, make_server: Any, playwright: Any
) -> None:
    with canaries("10.77.0.1", "10.77.0.1", "11.77.0.1", "169.254.169.254", "127.0.0.1") as found:
        private, private_other, public_own, metadata, loopback = found
        # Loopback allowed (the suite's default), the rest refused: 11.77.0.1 is a public address, but
        # one of this host's.
        srv: Server = make_server("egress-host", BROWSERFLEET_POOL_SIZE="0").start()
        session = srv.sdk().sessions.create()
        browser = playwright.chromium.connect_over_cdp(session.connect_url)
        page = browser.contexts[0].pages[0]
        expected = {
            private: "a private network address",
            public_own: "an address of this host",
            metadata: "a link-local address",
        }
        for canary, why in expected.items():
            response = page.goto(f"http://{canary.host}:{canary.port}/latest/meta-data/")
            assert response is not None and response.status == 403, canary.host
            assert why in page.content(), (canary.host, page.content())
        response = page.goto(f"http://127.0.0.1:{loopback.port}/")  # control: canaries do count
        assert response is not None and response.status == 200 and page.inner_text("body") == "canary"
        browser.close()
        assert [c.count() for c in (private, private_other, public_own, metadata)] == [0, 0, 0, 0]
        assert loopback.count() >= 1  # the page (and perhaps its favicon)

        # The allow-list opens exactly one address and port.
        allowed: Server = make_server(
            "egress-allowed",
            BROWSERFLEET_POOL_SIZE="0",
            BROWSERFLEET_EGRESS_ALLOW=f"10.77.0.1:{private.port}",
        ).start()
        session = allowed.sdk().sessions.create()
        browser = playwright.chromium.connect_over_cdp(session.connect_url)
        page = browser.contexts[0].pages[0]
        response = page.goto(f"http://10.77.0.1:{private.port}/")
        assert response is not None and response.status == 200 and page.inner_text("body") == "canary"
        for canary in (private_other, public_own, metadata):
            response = page.goto(f"http://{canary.host}:{canary.port}/")
            assert response is not None and response.status == 403, canary.host
        browser.close()
        assert [c.count() for c in (private_other, public_own, metadata)] == [0, 0, 0]
        assert private.count() >= 1


def test_a_bad_allow_list_entry_stops_the_server_naming_it(make_server: Any) -> None:
    srv: Server = make_server("egress-bad", BROWSERFLEET_EGRESS_ALLOW="10.0.0.0/8, 10.0.0.0/33")
    with pytest.raises(RuntimeError, match="server exited") as caught:
        srv.start()
    assert "BROWSERFLEET_EGRESS_ALLOW entry '10.0.0.0/33'" in str(caught.value)
