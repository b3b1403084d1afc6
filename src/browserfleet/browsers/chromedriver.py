"""chromedriver for one browser: started on demand, in a network namespace of its own, and attached to a
CDP endpoint that the server listens on inside that namespace.

Nothing but this server can reach the driver: its port exists only in its own namespace, which holds a
loopback interface and nothing else, and the server reaches in by making sockets there (`request`). The
driver reaches out to one address only, `debugger_address`, a listener the server made in the same
namespace (`listen`): whoever accepts on it (the gateway) decides what the driver's CDP traffic meets
before the browser. Under the jail the driver runs as the browser's own uid with the browser's view of
the filesystem, so the paths a WebDriver client names (`/tmp/.uploads/<name>`) are the browser's.

Guarantees: `start` returns a driver that answers `/status`, or raises `LaunchFailed` and leaves no
process behind; `close` kills the driver's whole tree and closes its listener. This module knows no
sessions, projects or WebDriver commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field

from browserfleet.browsers import localhttp, netns, process, sandbox
from browserfleet.browsers.launcher import Browser, close_inherited_at_exec
from browserfleet.errors import LaunchFailed

log = logging.getLogger(__name__)

DRIVER_PORT = 9515  # inside the driver's own namespace: no other process is there
CDP_PORT = 9222  # the debugger address the driver is given, in the same namespace
START_TIMEOUT = 15.0


def executable() -> str | None:
    return shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p)), None
    )


@dataclass
class ChromeDriver:
    proc: asyncio.subprocess.Process
    netns_fd: int | None
    port: int
    listener: socket.socket
    debugger_address: str
    _closed: bool = field(default=False)
    _idle: list[localhttp.Connection] = field(default_factory=list)  # kept-alive connections

    async def request(
        self, method: str, path: str, body: bytes = b"", wait: float = 600.0
    ) -> localhttp.Answer:
        """One WebDriver HTTP request to the driver (LocalHttpError, TimeoutError if it fails), on a
        kept-alive connection when one is idle. A kept connection the driver has closed meanwhile fails
        before any answer: the request is then sent once more, on a new connection."""
        while self._idle:
            connection = self._idle.pop()
            try:
                answer = await asyncio.wait_for(self._send(connection, method, path, body), wait)
            except localhttp.Closed:
                connection.close()
                continue
            except BaseException:
                connection.close()
                raise
            self._idle.append(connection)
            return answer
        connection = await self._connect()
        try:
            answer = await asyncio.wait_for(self._send(connection, method, path, body), wait)
        except BaseException:
            connection.close()
            raise
        if self._closed:
            connection.close()
        else:
            self._idle.append(connection)
        return answer

    async def _connect(self) -> localhttp.Connection:
        sock = netns.socket_in(self.netns_fd)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port)), 10
            )
        except BaseException:
            sock.close()
            raise
        return await localhttp.Connection.open(sock)

    async def _send(
        self, connection: localhttp.Connection, method: str, path: str, body: bytes
    ) -> localhttp.Answer:
        return await connection.request(method, path, body, limit=512 << 20, keep_alive=True)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        self.listener.close()
        await asyncio.to_thread(process.kill_tree, self.proc.pid)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            log.warning("chromedriver %s did not exit after SIGKILL", self.proc.pid)
        process.collected(self.proc.pid)
        if self.netns_fd is not None:
            os.close(self.netns_fd)
            self.netns_fd = None


async def start(browser: Browser, jail: sandbox.Support | None, isolate: bool) -> ChromeDriver:
    """A chromedriver for `browser`, run as the browser is (`jail`: in the browser's jail, as its uid;
    `isolate`: in a network namespace of its own)."""
    path = executable()
    if path is None:
        raise LaunchFailed("chromedriver is not installed on this server (Debian: chromium-driver)")
    port = DRIVER_PORT if isolate else _free_port()
    command = [path, f"--port={port}", "--allowed-ips=", "--log-level=OFF", "--readable-timestamp"]
    env = {"PATH": "/usr/bin:/bin"}
    if jail is not None and browser.uid is not None:
        command = sandbox.jail_command(jail, command, browser.profile_dir, browser.uid)
    else:
        env = sandbox.environment(browser.profile_dir, str((browser.profile_dir / "tmp").readlink()))

    def in_child() -> None:
        process.die_with_parent()
        if isolate:
            netns.enter_new()
        close_inherited_at_exec()

    try:
        proc = await process.start(command, env, in_child)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LaunchFailed("cannot start chromedriver", f"{path}: {exc}") from exc
    fd: int | None = None
    listener: socket.socket | None = None
    try:
        fd = netns.open_of(proc.pid) if isolate else None
        listener = netns.socket_in(fd)
        listener.bind(("127.0.0.1", CDP_PORT if isolate else 0))
        listener.listen(16)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        driver = ChromeDriver(proc, fd, port, listener, address)
        await _ready(driver)
        return driver
    except BaseException:
        if listener is not None:
            listener.close()
        await asyncio.shield(asyncio.to_thread(process.kill_tree, proc.pid))
        await asyncio.shield(proc.wait())
        process.collected(proc.pid)
        if fd is not None:
            os.close(fd)
        raise


async def _ready(driver: ChromeDriver) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if not driver.alive:
            raise LaunchFailed("chromedriver exited at start", f"exit status {driver.proc.returncode}")
        try:
            answer = await driver.request("GET", "/status", wait=5)
            if answer.status == 200 and json.loads(answer.body).get("value", {}).get("ready"):
                return
        except (OSError, TimeoutError, localhttp.LocalHttpError, ValueError) as exc:
            last = str(exc)
        await asyncio.sleep(0.02)
    raise LaunchFailed("chromedriver did not answer in time", last)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
