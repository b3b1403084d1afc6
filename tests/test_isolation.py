"""Each browser in a network namespace of its own: its debugging port is reachable only through the
gateway, pages still reach the web (through the server's egress proxy), and nothing leaks."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, session_browser, wait_for


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of `pid` (read from its own /proc view)."""
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":
            ports.add(int(local.split(":")[1], 16))
    return ports


def test_debugging_port_is_unreachable_from_the_host(server: Server, site: str, playwright: Any) -> None:
    session = server.sdk().sessions.create()
    pid, _ = session_browser(server, session.id)
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    ports = listening_ports(pid)
    assert ports, "the browser listens on its debugging port (and the egress proxy) in its namespace"
    for port in ports:
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.connect(("127.0.0.1", port))
    # Through the gateway the same browser works, and its pages reach the (local) web.
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/index.html")
    assert page.title() == "Museum of Local Art"
    browser.close()


def test_without_isolation_sessions_still_work(make_server: Any, site: str, playwright: Any) -> None:
    srv: Server = make_server("shared-network", BROWSERFLEET_ISOLATE_NETWORK="false").start()
    session = srv.sdk().sessions.create()
    pid, _ = session_browser(srv, session.id)
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/tickets.html")
    assert page.title() == "Tickets | Museum of Local Art"
    browser.close()


def test_sessions_leave_no_file_descriptors_behind(server: Server, site: str, playwright: Any) -> None:
    assert server.proc is not None
    fds = Path(f"/proc/{server.proc.pid}/fd")

    def one_session() -> None:
        session = server.sdk().sessions.create()
        browser = playwright.chromium.connect_over_cdp(session.connect_url)
        browser.contexts[0].pages[0].goto(f"{site}/index.html")
        browser.close()
        wait_for(lambda: server.sdk().sessions.retrieve(session.id).status == "COMPLETED")

    one_session()  # warm up: pools and lazily opened files
    baseline = len(list(fds.iterdir()))
    for _ in range(3):
        one_session()
    wait_for(lambda: len(list(fds.iterdir())) <= baseline, timeout=10)
