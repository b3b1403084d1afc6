"""Attacks on the jail from inside it: a process with a browser's exact credentials and namespaces (what
a compromised Chromium is) tries to reach what the walls in `browsers/sandbox.py` must keep from it, or
to make the server, which is root, do harm on its behalf. Each test is one attack that once worked."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from conftest import Server, session_browser, wait_for
from test_sandbox import as_the_browser, chromium_main, in_the_browsers_place

KIB = 1024
MIB = 1024 * KIB


def browser_process(jail: int, script: str) -> subprocess.Popen[str]:
    """A long-lived Python process with the browser's credentials, in its namespaces (as_the_browser,
    but running alongside the test)."""
    return subprocess.Popen(
        in_the_browsers_place(jail, "/usr/bin/python3", "-c", script),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_hard(srv: Server) -> None:
    """Stop a server even if a thread of it never ends (the attack below makes one hash for hours)."""
    if srv.proc is None or srv.proc.poll() is not None:
        return
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait(timeout=30)


# -- descriptors the server was started with --------------------------------------------------------


class ServerWithAnFd(Server):
    """A server started the way some supervisors start programs: with a descriptor of theirs still
    open (an inherited log, a socket, a secrets file). It is the server's; no browser may get it."""

    inherited: int = -1

    def start(self, timeout: float | None = None, pass_fds: tuple[int, ...] = ()) -> Self:
        return super().start(timeout, (*pass_fds, self.inherited))


# Every descriptor of every process in the jail, taken with pidfd_getfd (allowed between processes of one
# uid, like ptrace): what code running in the browser process has without asking.
FIND_SECRET = """
import ctypes, os, stat
libc = ctypes.CDLL(None, use_errno=True)
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        pidfd = os.pidfd_open(int(pid))
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for fd in map(int, fds):
        handle = libc.syscall(438, pidfd, fd, 0)
        if handle < 0:
            continue
        try:
            if stat.S_ISREG(os.fstat(handle).st_mode) and b"OPERATOR-SECRET" in os.pread(handle, 4096, 0):
                found.append(f"{pid}:{fd}")
        except OSError:
            pass
        finally:
            os.close(handle)
    os.close(pidfd)
print(found)
"""


def test_no_descriptor_the_server_inherited_reaches_a_browser(suite_root: Path) -> None:
    """uvloop ignores `close_fds`: every inheritable descriptor of the server went on to bwrap, setpriv
    and Chromium, where the browser's uid could use it (a compromised browser
    process simply has it: pidfd_getfd from a process of the same uid shows it)."""
    secret = suite_root / "operator-secret"
    secret.write_text("OPERATOR-SECRET: the file a supervisor left open\n")
    secret.chmod(0o600)
    fd = os.open(secret, os.O_RDWR)
    os.set_inheritable(fd, True)
    srv = ServerWithAnFd(suite_root / "inherited-fd", env={"BROWSERFLEET_POOL_SIZE": "0"})
    srv.inherited = fd
    try:
        srv.start()
        os.close(fd)
        session = srv.sdk().sessions.create(keep_alive=True)
        jail, _ = session_browser(srv, session.id)
        result = as_the_browser(jail, f"/usr/bin/python3 -c '{FIND_SECRET}'")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]", result.stdout
        # Nor in any process of the jail, whether the browser's uid could open it or not.
        leaked = [
            f"{proc.pid}: {entry.path}"
            for proc in [chromium_main(jail), *chromium_main(jail).children(recursive=True)]
            for entry in proc.open_files()
            if entry.path == str(secret)
        ]
        assert not leaked, leaked
        srv.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
    finally:
        stop_hard(srv)


# -- a download the browser keeps open -------------------------------------------------------------


SIZE = 16 * MIB


class SlowFile(http.server.BaseHTTPRequestHandler):
    """A page with a download link, and the download itself sent slowly (so it can be opened while it
    arrives)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/":
            body = b'<!doctype html><title>dl</title><a id="dl" href="/file.bin" download>file</a>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(SIZE))
        self.end_headers()
        try:
            for _ in range(SIZE // (256 * KIB)):
                self.wfile.write(b"d" * (256 * KIB))
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:
            pass


@pytest.fixture
def slow_site() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowFile)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# Open the download while it arrives; once the server has taken it (it becomes root's, or loses its
# name), make it 8 TiB (sparse: it costs nothing) and write into it. A saved download that is the
# browser's inode still obeys this descriptor.
KEEP_OPEN = """
import os, sys, time
folder = "/session/downloads"
deadline = time.time() + 60
fd = None
while fd is None and time.time() < deadline:
    for name in os.listdir(folder):
        try:
            fd = os.open(os.path.join(folder, name), os.O_WRONLY)
            break
        except OSError:
            pass
print("opened", flush=True)
while time.time() < deadline:
    info = os.fstat(fd)
    if info.st_uid == 0 or info.st_nlink == 0:
        break
os.ftruncate(fd, 1 << 43)
os.pwrite(fd, b"written by the browser after the server saved it", 0)
print("grown", flush=True)
time.sleep(60)
"""


def test_a_saved_download_is_out_of_the_browsers_reach(
    make_server: Any, slow_site: str, playwright: Any
) -> None:
    """The capture used to *rename* the browser's file into the session's artifacts: a descriptor the
    browser kept open on it still wrote there. Grown to 8 TiB while the server hashed it, a thread of the
    server (root, outside the browser's cgroup) read zeros for hours at full speed (a few such downloads
    take the default executor, and the whole server with it); grown after, the saved file passed the disk
    quota without bound and its bytes no longer matched the checksum the API gives."""
    srv: Server = make_server("kept-open", BROWSERFLEET_SESSION_DISK_MB="64", BROWSERFLEET_POOL_SIZE="0")
    attacker: subprocess.Popen[str] | None = None
    try:
        srv.start()
        session = srv.sdk().sessions.create(keep_alive=True)
        jail, _ = session_browser(srv, session.id)
        attacker = browser_process(jail, KEEP_OPEN)
        browser = playwright.chromium.connect_over_cdp(session.connect_url)
        page = browser.contexts[0].pages[0]
        page.goto(slow_site)
        with page.expect_download() as started:
            page.click("#dl")
        assert started.value.failure() is None
        assert attacker.stdout is not None
        assert attacker.stdout.readline().strip() == "opened"
        assert attacker.stdout.readline().strip() == "grown"

        def listed() -> list[dict[str, Any]]:
            with srv.http(srv.api_key) as http:
                return list(http.get("/v1/downloads", params={"sessionId": session.id}).json()["downloads"])

        downloads = wait_for(listed, timeout=30)
        assert isinstance(downloads, list) and len(downloads) == 1
        row = downloads[0]
        assert row["size"] == SIZE
        saved = next((srv.data_dir / "sessions" / session.id / "downloads").iterdir())
        assert saved.stat().st_size == SIZE  # not 8 TiB
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == row["checksum"]
        assert saved.read_bytes() == b"d" * SIZE
        browser.close()
        srv.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
    finally:
        if attacker is not None:
            attacker.kill()
            attacker.wait(timeout=10)
        stop_hard(srv)
