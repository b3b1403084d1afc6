"""One browserfleet server, one local web site and one set of clients, shared by the whole suite.

The suite runs in a loopback-only network namespace (see the Makefile); every Chromium gets
host-resolver rules that keep it off the network. After the suite, no browser process and no
profile directory of the suite may be left.

Servers run on SQLite (a file in their data dir). A test that also runs on PostgreSQL says so with
`each_database()`: it then runs once per database, the PostgreSQL run on a throwaway cluster the
suite starts (`postgres`) and a fresh database of its own. The servers, processes and site come from
the `harness` package the benchmarks share.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browserbase import Browserbase

import harness.server
from harness import postgres as pg
from harness import site as sites
from harness.processes import mentioning as browsers_under
from harness.server import RESOLVER_RULES

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(__file__).resolve().parent / "site"
CLI = [sys.executable, "-m", "browserfleet"]
DATABASES = ("sqlite", "postgresql")
# What a server's log says when a stop left work behind: asyncio's words for a task destroyed unfinished
# and for a failure nobody saw, and the server's own for tasks still running once every component closed.
LEFT_BEHIND = (
    "Task was destroyed but it is pending",
    "Task exception was never retrieved",
    "tasks still running at shutdown",
)

__all__ = ["CLI", "RESOLVER_RULES", "ROOT", "SITE", "Server", "browsers_under"]


class Server(harness.server.Server):
    """A `browserfleet serve` process and what tests need to reach it: the suite's limits (25 sessions
    at once, a pool of 2, a sample a second) unless a test's `env` says otherwise."""

    defaults = {
        "BROWSERFLEET_CONCURRENCY": "25",
        "BROWSERFLEET_POOL_SIZE": "2",
        "BROWSERFLEET_SAMPLE_INTERVAL": "1",
    }
    key_prefix = "bf_test_"

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


def each_database(fixture: str = "server") -> pytest.MarkDecorator:
    """Run a test once per database: its `fixture` (`server`, `make_server` or `database_url`) is then
    on SQLite in one run and on PostgreSQL in the other."""
    return pytest.mark.parametrize(fixture, DATABASES, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Cluster]:
    """A PostgreSQL cluster for the whole suite, on 127.0.0.1, stopped and removed at its end. Without
    PostgreSQL installed the tests that need it are skipped, except under CI, where they fail."""
    bindir = pg.find_bindir()
    if bindir is None:
        reason = f"PostgreSQL is not installed (no {pg.install_root()}/<version>/bin/initdb)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: under CI, PostgreSQL tests must run, not be skipped", pytrace=False)
        pytest.skip(f"{reason}; `apt-get install postgresql` to run them")
    with pg.Cluster(bindir) as cluster:
        yield cluster


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: SQLite unless the test runs on PostgreSQL (`each_database`)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        cluster: pg.Cluster = request.getfixturevalue("postgres")
        return cluster.database()
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


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


def _shared(srv: Server) -> Iterator[Server]:
    srv.start()
    yield srv
    srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0, srv.log.read_text()[-3000:]
    assert not srv.left_behind(), srv.left_behind()


@pytest.fixture(scope="session")
def sqlite_server(suite_root: Path) -> Iterator[Server]:
    yield from _shared(Server(suite_root / "shared"))


@pytest.fixture(scope="session")
def pg_server(suite_root: Path, postgres: pg.Cluster) -> Iterator[Server]:
    yield from _shared(
        Server(suite_root / "shared-pg", env={"BROWSERFLEET_DATABASE_URL": postgres.database()})
    )


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Server:
    """The server the suite shares: on SQLite, or on PostgreSQL in a test's `each_database` run there."""
    on_postgres = getattr(request, "param", "sqlite") == "postgresql"
    shared: Server = request.getfixturevalue("pg_server" if on_postgres else "sqlite_server")
    return shared


@pytest.fixture
def make_server(request: pytest.FixtureRequest, suite_root: Path) -> Iterator[object]:
    """Servers of a test's own (restarts, crashes), each stopped at the end of the test. In a test's
    PostgreSQL run (`each_database("make_server")`) each gets a fresh database of its own."""
    started: list[Server] = []
    cluster: pg.Cluster | None = None
    if getattr(request, "param", "sqlite") == "postgresql":
        cluster = request.getfixturevalue("postgres")

    def make(name: str, **env: str) -> Server:
        if cluster is not None:
            name, env = f"{name}-pg", {"BROWSERFLEET_DATABASE_URL": cluster.database(), **env}
        srv = Server(suite_root / name, env=env)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
    assert not [line for srv in started for line in srv.left_behind()]


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """The test web site (tests/site) on 127.0.0.1."""
    with sites.serving(SITE) as url:
        yield url


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
    return srv.browser_pids()


def session_browser(srv: Server, session_id: str) -> tuple[int, Path]:
    """(pid, profile dir) of the browser serving a session, as the server recorded them."""
    return srv.session_browser(session_id)


def profiles(srv: Server) -> list[Path]:
    return list((srv.data_dir / "profiles").glob("*"))


@pytest.fixture(scope="session")
def playwright() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw
