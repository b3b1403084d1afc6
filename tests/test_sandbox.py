"""The walls that hold when the CDP policy does not: each browser runs jailed, as a uid of its own, with
Chromium's sandbox on, sees only its own files, carries nothing of the server's environment, and is
bounded by cgroups. Several tests here talk to Chromium *directly*, inside its network namespace, the
way an attacker who had beaten the gateway's policy would, and show the other walls still hold."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets
from conftest import ROOT, Server, session_browser, wait_for

from browserfleet.browsers import netns


def chromium_main(jail_pid: int) -> psutil.Process:
    """The Chromium browser process inside a jail (bwrap → its init → setpriv'd chromium)."""

    def find() -> psutil.Process | None:
        for proc in psutil.Process(jail_pid).children(recursive=True):
            with_type = any(a.startswith("--type=") for a in proc.cmdline())
            if proc.name() == "chromium" and not with_type:
                return proc
        return None

    return wait_for(find)  # type: ignore[return-value]


def tree(jail_pid: int) -> list[psutil.Process]:
    return psutil.Process(jail_pid).children(recursive=True)


def seccomp(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Seccomp:")[1].split()[0])


def debugging_port(pid: int) -> int:
    """The port Chromium listens on in its namespace (the egress proxy's 8118 aside)."""
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        port = int(local.split(":")[1], 16)
        if state == "0A" and port != 8118:
            return port
    raise AssertionError("no debugging port")


def _socket_in_jail(jail_pid: int, port: int) -> Any:
    fd = netns.open_of(jail_pid)
    try:
        sock = netns.socket_in(fd)
    finally:
        os.close(fd)
    sock.setblocking(True)
    sock.connect(("127.0.0.1", port))
    return sock


def _cdp(jail_pid: int, path: str | None, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send CDP commands straight to Chromium's debugging port (its browser socket, or `path`), past
    the gateway and its policy, from inside the browser's network namespace."""
    port = debugging_port(chromium_main(jail_pid).pid)

    async def go() -> list[dict[str, Any]]:
        target = path
        if target is None:
            with _socket_in_jail(jail_pid, port) as sock:
                sock.sendall(f"GET /json/version HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                answer = b""
                while b"}" not in answer:
                    answer += sock.recv(65536)
            body = answer.split(b"\r\n\r\n", 1)[1]
            target = json.loads(body)["webSocketDebuggerUrl"].split(str(port), 1)[1]
        raw = _socket_in_jail(jail_pid, port)
        raw.setblocking(False)
        answers = []
        url = f"ws://127.0.0.1:{port}{target}"
        async with websockets.connect(url, sock=raw, compression=None, max_size=None) as ws:
            for i, message in enumerate(messages, 1):
                await ws.send(json.dumps({"id": i, **message}))
                while True:
                    answer = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if answer.get("id") == i:
                        answers.append(answer)
                        break
        return answers

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, go()).result()


def tab_text(jail_pid: int, url: str) -> str:
    """Open `url` in a new tab with Chromium's own CDP (no policy); what the tab shows once loaded."""
    target = _cdp(jail_pid, None, [{"method": "Target.createTarget", "params": {"url": url}}])
    target_id = target[0]["result"]["targetId"]
    evaluate = {
        "method": "Runtime.evaluate",
        "params": {
            "expression": "document.readyState + document.documentElement.outerHTML",
            "returnByValue": True,
        },
    }
    text = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = _cdp(jail_pid, f"/devtools/page/{target_id}", [evaluate])[0]
        text = str(answer.get("result", {}).get("result", {}).get("value", ""))
        if text.startswith("complete"):
            break
        time.sleep(0.2)
    return text


@pytest.fixture
def running(server: Server) -> Iterator[tuple[str, int]]:
    session = server.sdk().sessions.create(keep_alive=True)
    pid, _ = session_browser(server, session.id)
    yield session.id, pid
    server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


def test_the_browser_runs_unprivileged_with_chromiums_sandbox(server: Server, running: Any) -> None:
    _, jail = running
    chromium = chromium_main(jail)
    uid = chromium.uids().real
    assert uid != 0 and uid == chromium.uids().effective == chromium.uids().saved
    # Every Chromium process runs as that uid, and renderers are in seccomp-bpf (Chromium's sandbox).
    processes = [p for p in tree(jail) if p.name() == "chromium"]
    assert {p.uids().real for p in processes} == {uid}
    renderers = wait_for(lambda: [p for p in tree(jail) if "--type=renderer" in p.cmdline()])
    assert all(seccomp(p.pid) == 2 for p in renderers)  # type: ignore[attr-defined]
    assert not any("--no-sandbox" in p.cmdline() for p in processes)
    # Its own PID namespace: it sees no process of the host.
    assert os.readlink(f"/proc/{chromium.pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    # A second browser has a uid of its own.
    other = server.sdk().sessions.create(keep_alive=True)
    try:
        other_pid, _ = session_browser(server, other.id)
        assert chromium_main(other_pid).uids().real not in (0, uid)
    finally:
        server.sdk().sessions.update(other.id, status="REQUEST_RELEASE")


def test_the_environment_carries_nothing_of_the_servers(server: Server, running: Any) -> None:
    _, jail = running
    chromium = chromium_main(jail)
    env = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{chromium.pid}/environ").read_bytes().decode().split("\0")
        if item
    )
    assert set(env) <= {"PATH", "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "TMPDIR", "PWD"}, env
    assert not any(server.api_key in value or "BROWSERFLEET" in name for name, value in env.items())


def test_the_jail_shows_only_the_sessions_own_files(server: Server, running: Any) -> None:
    _, jail = running
    root = Path(f"/proc/{chromium_main(jail).pid}/root")
    assert (root / "session" / "user-data").is_dir()
    assert (root / "tmp" / ".uploads").is_dir()
    hidden = [
        "etc/shadow",
        "etc/passwd",
        "root",
        str(server.data_dir).lstrip("/"),  # the database, the secret, every session's files
        str(ROOT).lstrip("/"),  # the server's code and config
        "work",
        "var/lib",
        "home",
    ]
    for path in hidden:
        assert not (root / path).exists(), path
    # Other browsers' profiles are not there either: only its own, at /session.
    assert {p.name for p in root.iterdir()} <= set(
        [
            "bin",
            "dev",
            "etc",
            "lib",
            "lib64",
            "lib32",
            "libx32",
            "opt",
            "proc",
            "sbin",
            "session",
            "tmp",
            "usr",
            "var",
        ]
    )


def in_the_browsers_place(jail: int, *command: str) -> list[str]:
    """`command` run with the browser's uid, in its namespaces (nsenter's argv)."""
    chromium = chromium_main(jail)
    uid = chromium.uids().real
    where = [f"--target={chromium.pid}", "--mount", "--pid", "--ipc", "--net", "--uts"]
    return ["nsenter", *where, f"--setuid={uid}", f"--setgid={uid}", "--", *command]


def as_the_browser(jail: int, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script with the browser's credentials, in its namespaces: what a process that broke
    out of Chromium's own sandbox into the browser process could do."""
    return subprocess.run(
        in_the_browsers_place(jail, "/bin/sh", "-c", script),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_process_with_the_browsers_credentials_reaches_nothing_else(server: Server, running: Any) -> None:
    _, jail = running
    data = server.data_dir
    checks = {
        "cat /etc/shadow": False,
        "cat /etc/passwd": False,
        f"ls {data}": False,
        f"cat {data}/browserfleet.db": False,
        f"ls {ROOT}/src": False,
        "touch /usr/bf-probe": False,
        "touch /etc/bf-probe": False,
        "touch /session/bf-probe": False,  # the profile's top is the server's
        "touch /tmp/.uploads/bf-probe": False,  # uploads are read-only to the browser
        "touch /session/home/bf-probe && rm /session/home/bf-probe": True,  # its own files: yes
        "test $(ls /proc | grep -c '^[0-9]') -lt 60": True,  # few processes: its own
        "kill -9 1": False,  # pid 1 is the jail's own init (root's), not the host's
    }
    for script, allowed in checks.items():
        result = as_the_browser(jail, script)
        assert (result.returncode == 0) is allowed, (script, result.stdout, result.stderr)
    assert not Path("/usr/bf-probe").exists() and not Path("/etc/bf-probe").exists()
    # The host's processes are invisible, so none can be signalled (the server's pid means nothing there).
    assert server.proc is not None
    result = as_the_browser(jail, f"cat /proc/{server.proc.pid}/cmdline")
    assert server.api_key not in result.stdout and "browserfleet" not in result.stdout


def test_without_the_policy_file_urls_reach_no_host_secret(server: Server, running: Any) -> None:
    """Straight to Chromium, as if the CDP policy had been bypassed: file: pages of the host's secrets
    do not load, because the jail does not contain them; the session's own files do."""
    _, jail = running
    secret_db = server.data_dir / "browserfleet.db"
    assert secret_db.exists()
    for url, must_not_show in (
        (f"file://{secret_db}", "SQLite format"),
        ("file:///etc/shadow", "root:"),
        ("file:///etc/passwd", "root:"),
        (f"file://{server.data_dir}/", "browserfleet.db"),
        (f"file://{ROOT}/pyproject.toml", "browserfleet"),
    ):
        shown = tab_text(jail, url)
        assert shown.startswith("complete"), shown[:200]
        assert must_not_show not in shown, (url, shown[:300])
    assert "user-data" in tab_text(jail, "file:///session/")  # its own profile, which it owns anyway


def test_a_crash_with_a_client_attached_ends_the_session_as_error(server: Server, playwright: Any) -> None:
    """No keepAlive, a client attached, Chromium dies: ERROR, whether the relay or the exit watcher
    notices first."""
    for _ in range(3):
        session = server.sdk().sessions.create()
        jail, _ = session_browser(server, session.id)
        browser = playwright.chromium.connect_over_cdp(session.connect_url)
        assert browser.contexts[0].pages[0].evaluate("1 + 1") == 2
        os.kill(chromium_main(jail).pid, signal.SIGKILL)  # the browser itself, inside its jail
        wait_for(lambda sid=session.id: server.sdk().sessions.retrieve(sid).status != "RUNNING", timeout=20)
        assert server.sdk().sessions.retrieve(session.id).status == "ERROR"


def browser_group(kind: str, jail_pid: int) -> Path:
    """The browser's cgroup dir under one v1 controller (`memory`, `pids`, `cpu`)."""
    for line in Path(f"/proc/{jail_pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if kind in controllers.split(","):
            return Path("/sys/fs/cgroup") / kind / path.lstrip("/")
    raise AssertionError(f"no {kind} cgroup")


def test_limits_are_set_and_the_pids_limit_holds(make_server: Any) -> None:
    if not Path("/sys/fs/cgroup/pids/cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids controller on this host")
    srv: Server = make_server(
        "limits", BROWSERFLEET_SESSION_PIDS="400", BROWSERFLEET_SESSION_CPUS="1", BROWSERFLEET_POOL_SIZE="0"
    ).start()
    session = srv.sdk().sessions.create(keep_alive=True)
    jail, _ = session_browser(srv, session.id)
    pids = browser_group("pids", jail)
    assert (pids / "pids.max").read_text().strip() == "400"
    cpu = browser_group("cpu", jail)
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "100000"
    # A process placed in the session's cgroup cannot make more tasks than the limit allows.
    script = (
        "import threading, time, sys\n"
        "n = 0\n"
        "try:\n"
        "    while n < 2000:\n"
        "        threading.Thread(target=time.sleep, args=(20,), daemon=True).start(); n += 1\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print(n, flush=True)\n"
    )

    def join() -> None:
        (pids / "cgroup.procs").write_text(str(os.getpid()))

    probe = subprocess.run(
        [sys.executable, "-c", script],
        preexec_fn=join,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    made = int(probe.stdout.split()[0])
    assert 0 < made < 400, probe
    srv.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
    wait_for(lambda: not pids.exists(), timeout=20)


def test_a_page_over_its_memory_limit_loses_its_tab_and_the_rest_carries_on(
    make_server: Any, site: str, playwright: Any
) -> None:
    if not Path("/sys/fs/cgroup/memory/cgroup.procs").exists():
        pytest.skip("no cgroup v1 memory controller on this host")
    srv: Server = make_server(
        "memory", BROWSERFLEET_SESSION_MEMORY_MB="700", BROWSERFLEET_POOL_SIZE="0"
    ).start()
    session = srv.sdk().sessions.create(keep_alive=True)
    jail, _ = session_browser(srv, session.id)
    memory = browser_group("memory", jail)
    assert int((memory / "memory.limit_in_bytes").read_text()) == 700 * 1024 * 1024
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/index.html")
    crashed = threading.Event()
    page.on("crash", lambda _page: crashed.set())
    with pytest.raises(Exception):  # noqa: B017 - Playwright says "Target crashed" in several ways
        page.evaluate(
            "() => { const keep = []; for (let i = 0; i < 60; i++) keep.push(new Uint8Array(50e6).fill(i)); "
            "return keep.length; }"
        )
    assert int((memory / "memory.max_usage_in_bytes").read_text()) <= 700 * 1024 * 1024
    # The server and other sessions carry on; this session's browser does too (only the tab died).
    other = srv.sdk().sessions.create()
    assert other.status == "RUNNING"
    srv.sdk().sessions.update(other.id, status="REQUEST_RELEASE")
    fresh = browser.contexts[0].new_page()
    fresh.goto(f"{site}/index.html")
    assert fresh.title() == "Museum of Local Art"
    browser.close()
    srv.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


def test_without_a_sandbox_browsers_start_only_if_the_operator_allows_it(make_server: Any) -> None:
    # A host without bubblewrap (PATH without it) cannot jail browsers, and as root Chromium's own
    # sandbox cannot start either.
    bare = {"PATH": "/nonexistent", "BROWSERFLEET_POOL_SIZE": "0"}
    srv: Server = make_server("unsandboxed-refused", **bare).start()
    assert "no browser will start" in srv.log.read_text()
    with srv.http(srv.api_key) as http:
        answer = http.post("/v1/sessions", json={})
    assert answer.status_code == 503
    assert "BROWSERFLEET_ALLOW_UNSANDBOXED" in answer.json()["message"]
    assert answer.headers["x-should-retry"] == "false"
    srv.stop()
    allowed: Server = make_server(
        "unsandboxed-allowed", **bare, BROWSERFLEET_ALLOW_UNSANDBOXED="true"
    ).start()
    assert "sandbox: OFF" in allowed.log.read_text()
    session = allowed.sdk().sessions.create(keep_alive=True)
    pid, _ = session_browser(allowed, session.id)
    assert "--no-sandbox" in psutil.Process(pid).cmdline()
    allowed.sdk().sessions.update(session.id, status="REQUEST_RELEASE")
