"""A `browserfleet serve` subprocess on a data dir of the caller's choosing.

`start()` returns once the API answers (or raises with the server's log); `stop()` signals and waits.
The server's state is read the way the server reads it: through the API, or a `Store` opened on the
server's own database URL (SQLite in the data dir, or `BROWSERFLEET_DATABASE_URL`), so what reads it
works on either database. Callers subclass to set their defaults (`defaults`, `inherit_settings`, ...).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self, TypeVar

import httpx
import psutil

from browserfleet.config import Settings
from browserfleet.store import db
from browserfleet.store.repo import Store
from harness import processes

T = TypeVar("T")

# Every Chromium a harness server starts resolves nothing but 127.0.0.1 and localhost.
RESOLVER_RULES = '--host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run async code to completion on a thread of its own (the caller's thread may hold a loop, e.g.
    sync Playwright's)."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, main()).result()


@dataclass
class Server:
    """A `browserfleet serve` process and what callers need to reach it."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    api_key: str = ""  # the bootstrap project's key; a random one with `key_prefix` when empty
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    # What a caller's subclass sets: the environment the server gets before `env` (on top of this
    # process's own, less its BROWSERFLEET_* settings unless `inherit_settings`), the Python that runs
    # it, its working directory, and how long a start may take.
    defaults: ClassVar[dict[str, str]] = {}
    inherit_settings: ClassVar[bool] = True
    key_prefix: ClassVar[str] = "bf_harness_"
    python: ClassVar[str] = sys.executable
    cwd: ClassVar[Path | None] = None
    start_timeout: ClassVar[float] = 30.0

    def __post_init__(self) -> None:
        if not self.api_key:
            self.api_key = self.key_prefix + secrets.token_hex(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-BB-API-Key": self.api_key}

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def environ(self) -> dict[str, str]:
        inherited = {
            k: v for k, v in os.environ.items() if self.inherit_settings or not k.startswith("BROWSERFLEET_")
        }
        return {
            **inherited,
            "BROWSERFLEET_API_KEY": self.api_key,
            "BROWSERFLEET_DATA_DIR": str(self.data_dir),
            "BROWSERFLEET_CHROMIUM_ARGS": RESOLVER_RULES,
            # Test and benchmark pages are served on 127.0.0.1, which pages may not reach by default.
            "BROWSERFLEET_ALLOW_LOOPBACK": "true",
            **self.defaults,
            **self.env,
        }

    @property
    def database_url(self) -> str:
        """The database the server uses, worked out as the server's settings do."""
        url = self.environ().get("BROWSERFLEET_DATABASE_URL", "")
        return Settings(data_dir=self.data_dir, database_url=url).database

    def start(self, timeout: float | None = None, pass_fds: tuple[int, ...] = ()) -> Self:
        """Start the server; return once `GET /v1/projects` answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", "browserfleet", "serve", "--port", str(self.port)],
                env=self.environ(),
                stdout=log,
                stderr=log,
                cwd=self.cwd,
                pass_fds=pass_fds,
            )
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                httpx.get(f"{self.url}/v1/projects", headers=self.headers, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start within {limit} s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Signal the server and wait for it (subprocess.TimeoutExpired if it outlasts `timeout`)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)

    # -- its state ---------------------------------------------------------------------------------

    def process(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def browser_pids(self) -> set[int]:
        """Chromium browser processes the server runs now (its children without --type=)."""
        assert self.proc is not None
        return processes.browser_pids(self.proc.pid)

    def read_store(self, work: Callable[[Store], Awaitable[T]]) -> T:
        """`work` on a `Store` on the server's database: what the server recorded, read as it reads it.
        The schema is the server's to migrate: this only reads (and writes what `work` writes)."""

        async def run() -> T:
            store = Store(db.create_engine(self.database_url))
            try:
                return await work(store)
            finally:
                await store.close()

        return run_async(run)

    def session_browser(self, session_id: str) -> tuple[int, Path]:
        """(pid, profile dir) of the browser serving a session, as the server recorded them."""
        row = self.read_store(lambda store: store.session(session_id))
        if row is None or row.browser_pid is None or row.browser_profile is None:
            raise AssertionError(f"no browser recorded for session {session_id}")
        return row.browser_pid, Path(row.browser_profile)

    # -- its API -----------------------------------------------------------------------------------

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60)

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=60)
