"""A throwaway PostgreSQL cluster: Debian's `postgresql` binaries, run on a temporary directory.

Guarantees: once `start()` returns, the cluster accepts connections on 127.0.0.1:`port` only (no
other address; its Unix socket is inside its own directory), with a password made for this run;
`database()` makes a new, empty database and returns its SQLAlchemy async URL. `stop()` stops the
cluster and removes its directory, whatever state `start()` left it in, and may be called again (it
also runs at interpreter exit, for a caller that never got to call it). A cluster whose process was
killed before either (SIGKILL, SIGTERM) is stopped and removed by the next `start()`. `initdb` refuses
to run as root, so under root every PostgreSQL command runs as the `postgres` user.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from harness.server import free_port

# Debian keeps each major version's server binaries in /usr/lib/postgresql/<version>/bin; another
# root with that layout can be given in HARNESS_PG_ROOT.
INSTALL_ROOT = Path("/usr/lib/postgresql")
Completed = subprocess.CompletedProcess[str]
PREFIX = "browserfleet-pg-"  # a cluster's directory, in the temp dir
OWNER = "owner"  # in it: "<pid> <start time>" of the process that started it
USER = "postgres"  # the cluster's superuser, and the OS user that runs it when we are root


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit())


def install_root() -> Path:
    return Path(os.environ.get("HARNESS_PG_ROOT") or INSTALL_ROOT)


def find_bindir(root: Path | None = None) -> Path | None:
    """The newest installed version's bin dir (with initdb and pg_ctl), or None when there is none."""
    root = install_root() if root is None else root
    found = [p.parent for p in root.glob("*/bin/initdb") if (p.parent / "pg_ctl").exists()]
    return max(found, key=_version, default=None)


def _gone(pid: int, timeout: float) -> bool:
    """Whether the process ended (exited, or a zombie its new parent has yet to reap) within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


class Cluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = secrets.token_hex(16)
        self.port = 0
        self.root: Path | None = None
        self._names = itertools.count(1)
        # As root: the postgres user's ids, for the cluster's files and processes.
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(USER)
            except KeyError:
                raise RuntimeError(f"as root, PostgreSQL needs a {USER!r} user to run as") from None
            self._owner = (entry.pw_uid, entry.pw_gid)

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def server_log(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    def _run(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Completed:
        """A PostgreSQL program (a name in bindir), as the cluster's owner."""
        owner: dict[str, Any] = {}
        if self._owner is not None:
            owner = {"user": self._owner[0], "group": self._owner[1], "extra_groups": []}
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", **(env or {})},
            timeout=120,
            check=False,
            **owner,
        )
        if check and result.returncode != 0:
            output = result.stdout + result.stderr
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {output}")
        return result

    def start(self, attempts: int = 5) -> Cluster:
        self._sweep()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        atexit.register(self.stop)
        try:
            me = psutil.Process()
            (self.root / OWNER).write_text(f"{me.pid} {me.create_time()}\n")
            if self._owner is not None:
                os.chown(self.root, *self._owner)
            password_file = self.root / "password"
            password_file.write_text(self.password + "\n")
            if self._owner is not None:
                os.chown(password_file, *self._owner)
            self._run(
                "initdb",
                "--pgdata",
                str(self.data),
                "--username",
                USER,
                f"--pwfile={password_file}",
                "--auth-local=trust",  # the socket is in our own 0700 directory
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            password_file.unlink()
            for _ in range(attempts):
                self.port = free_port()
                # Throwaway data: durability off, for speed. Logs to a file; stays in its dir.
                options = (
                    f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                    f"-c unix_socket_directories={shlex.quote(str(self.root))} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=200"
                )
                result = self._run(
                    "pg_ctl",
                    "--pgdata",
                    str(self.data),
                    "--log",
                    str(self.server_log),
                    "--options",
                    options,
                    "--wait",
                    "--timeout=60",
                    "start",
                    check=False,
                )
                if result.returncode == 0:
                    return self
                log = self.server_log.read_text(errors="replace") if self.server_log.exists() else ""
                if "could not bind" not in log and "already in use" not in log:
                    output = result.stdout + result.stderr
                    raise RuntimeError(f"PostgreSQL did not start: {output}\n{log[-3000:]}")
            raise RuntimeError(f"PostgreSQL found no free port in {attempts} attempts")
        except BaseException:
            self.stop()
            raise

    def database(self) -> str:
        """A new, empty database; its SQLAlchemy async (asyncpg) URL."""
        name = f"browserfleet_{next(self._names)}"
        self._run(
            "createdb",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--username={USER}",
            name,
            env={"PGPASSWORD": self.password},
        )
        return f"postgresql+asyncpg://{USER}:{self.password}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.root is None:
            return
        self._remove(self.root)
        self.root = None
        atexit.unregister(self.stop)

    def _remove(self, root: Path) -> None:
        """Stop the cluster in `root` (if it runs) and remove the directory."""
        data = root / "data"
        pid = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().split()[0])
        if pid is not None:
            # Fast: connected clients are cut off (a server under test may still hold connections).
            self._run("pg_ctl", "--pgdata", str(data), "--mode=fast", "--wait", "stop", check=False)
            if not _gone(pid, 10):  # pg_ctl could not stop it
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                _gone(pid, 10)
        shutil.rmtree(root, ignore_errors=True)

    def _sweep(self) -> None:
        """Remove the clusters of harness processes that died without stopping theirs."""
        for root in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
            with contextlib.suppress(OSError, ValueError):
                pid, started = (root / OWNER).read_text().split()
                with contextlib.suppress(psutil.NoSuchProcess):
                    if psutil.Process(int(pid)).create_time() == float(started):
                        continue  # its owner still runs
                self._remove(root)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
