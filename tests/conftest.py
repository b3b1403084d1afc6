"""One browserfleet server, one local web site and one set of clients, shared by the whole suite.

The suite runs in a loopback-only network namespace (see the Makefile); every Chromium gets
host-resolver rules that keep it off the network. After the suite, no browser process and no
profile directory of the suite may be left.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from browserbase import Browserbase

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(__file__).resolve().parent / "site"
RESOLVER_RULES = '--host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"'
CLI = [sys.executable, "-m", "browserfleet"]
# What a server's log says when a stop left work behind: asyncio's words for a task destroyed unfinished
# and for a failure nobody saw, and the server's own for tasks still running once every component closed.
LEFT_BEHIND = (
    "Task was destroyed but it is pending",
    "Task exception was never retrieved",
    "tasks still running at shutdown",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def browsers_under(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(root) in arg for arg in proc.info.get("cmdline") or []):
            found.append(proc)
    return found


@dataclass
class Server:
    """A `browserfleet serve` process and what tests need to reach it."""

    data_dir: Path
    api_key: str = field(default_factory=lambda: "bf_test_" + secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "BROWSERFLEET_API_KEY": self.api_key,
            "BROWSERFLEET_DATA_DIR": str(self.data_dir),
            "BROWSERFLEET_CHROMIUM_ARGS": RESOLVER_RULES,
            "BROWSERFLEET_CONCURRENCY": "25",
            "BROWSERFLEET_POOL_SIZE": "2",
            # The suite's pages are served on 127.0.0.1, which pages may not reach by default.
            "BROWSERFLEET_ALLOW_LOOPBACK": "true",
            "BROWSERFLEET_SAMPLE_INTERVAL": "1",
            **self.env,
        }

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port)], env=self.environ(), stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                httpx.get(f"{self.url}/v1/projects", headers={"x-bb-api-key": self.api_key}, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def left_behind(self) -> list[str]:
        """What its log says a stop left behind (see LEFT_BEHIND): nothing, for any stop."""
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in log.splitlines() if any(words in line for words in LEFT_BEHIND)]

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [*CLI, *args, "--data-dir", str(self.data_dir)],
            env=self.environ(),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return result.stdout

    def new_project(self, name: str, concurrency: int = 5) -> tuple[str, str]:
        """(project id, api key) of a fresh project, made with the CLI as an operator would."""
        out = self.cli("projects", "create", name, "--concurrency", str(concurrency))
        values = dict(line.split(" ", 1) for line in out.strip().splitlines())
        return values["project"], values["key"]

    def sdk(self, api_key: str | None = None, **kwargs: object) -> Browserbase:
        return Browserbase(
            api_key=api_key or self.api_key,
            base_url=self.url,
            _strict_response_validation=True,
            **kwargs,  # type: ignore[arg-type]
        )

    def http(self, api_key: str | None = None) -> httpx.Client:
        headers = {"X-BB-API-Key": api_key} if api_key is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def chromium_temp_dirs() -> set[Path]:
    temp = Path(tempfile.gettempdir())
    return set(temp.glob("org.chromium.Chromium.*")) | set(temp.glob("bf-chromium-*"))


def cgroup_dirs(data_dir: Path) -> list[Path]:
    """The cgroup dirs a server on `data_dir` makes (`browserfleet-<tag>` in each hierarchy)."""
    tag = "browserfleet-" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{tag}") if p.is_dir()]


@pytest.fixture(scope="session")
def suite_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="browserfleet-suite-"))
    temp_before = chromium_temp_dirs()
    yield root
    leftovers = browsers_under(root)
    for proc in leftovers:
        proc.kill()
    profiles = [p for p in root.glob("*/profiles/*")]
    groups = [g for data_dir in root.iterdir() if data_dir.is_dir() for g in cgroup_dirs(data_dir)]
    # Chromium's own temp dirs (its singleton socket) must stay in the profile, not pile up in /tmp.
    new_temp = chromium_temp_dirs() - temp_before
    shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, f"browser processes left after the suite: {[p.pid for p in leftovers]}"
    assert not profiles, f"profiles left after the suite: {profiles}"
    assert not groups, f"cgroups left after the suite: {groups}"
    assert not new_temp, f"Chromium temp dirs left in {tempfile.gettempdir()}: {sorted(new_temp)[:5]}"


@pytest.fixture(scope="session")
def server(suite_root: Path) -> Iterator[Server]:
    srv = Server(suite_root / "shared").start()
    yield srv
    srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0, srv.log.read_text()[-3000:]
    assert not srv.left_behind(), srv.left_behind()


@pytest.fixture
def make_server(suite_root: Path) -> Iterator[object]:
    """Servers of a test's own (restarts, crashes), each stopped at the end of the test."""
    started: list[Server] = []

    def make(name: str, **env: str) -> Server:
        srv = Server(suite_root / name, env=env)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
    assert not [line for srv in started for line in srv.left_behind()]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """The test web site (tests/site) on 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def wait_for(predicate: object, timeout: float = 15.0, interval: float = 0.05) -> object:
    """Poll `predicate()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def browser_pids(srv: Server) -> set[int]:
    """Pids of the Chromium browser processes the server runs now (among its direct children)."""
    assert srv.proc is not None
    try:
        children = psutil.Process(srv.proc.pid).children()
    except psutil.NoSuchProcess:
        return set()
    pids = set()
    for child in children:
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        # Chromium's helpers (zygotes, renderers) carry --type=; the browser process does not.
        if any(a.startswith("--user-data-dir=") for a in cmdline) and not any(
            a.startswith("--type=") for a in cmdline
        ):
            pids.add(child.pid)
    return pids


def session_browser(srv: Server, session_id: str) -> tuple[int, Path]:
    """(pid, profile dir) of the browser serving a session, as the server recorded them."""
    import sqlite3

    with sqlite3.connect(srv.data_dir / "browserfleet.db") as db:
        row = db.execute(
            "select browser_pid, browser_profile from sessions where id = ?", (session_id,)
        ).fetchone()
    assert row is not None and row[0] is not None, f"no browser recorded for {session_id}"
    return int(row[0]), Path(row[1])


def profiles(srv: Server) -> list[Path]:
    return list((srv.data_dir / "profiles").glob("*"))


@pytest.fixture(scope="session")
def playwright() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw
