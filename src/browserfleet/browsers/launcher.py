"""Starting Chromium with a fresh profile, inside the walls the host allows (`sandbox`, `cgroups`, `netns`),
and handing out a supervised `Browser`."""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from browserfleet.aio import Tasks
from browserfleet.browsers import cgroups, flags, localhttp, netns, process, sandbox, trust
from browserfleet.browsers.addresses import EgressRules
from browserfleet.browsers.egress import EgressProxy
from browserfleet.browsers.provision import FreshProfile, NoProvisioner, Provisioner
from browserfleet.browsers.sandbox import Mode, View
from browserfleet.browsers.spec import LaunchSpec
from browserfleet.errors import BrowserUnreachable, LaunchFailed

if TYPE_CHECKING:
    from browserfleet.browsers.agent import BrowserAgent

log = logging.getLogger(__name__)

_LISTENING = re.compile(rb"DevTools listening on (ws://127\.0\.0\.1:(\d+)/devtools/browser/[\w-]+)")
PROFILE_PREFIX = "browser-"
TMP_PREFIX = "bf-chromium-"
_SYS_CLOSE_RANGE = 436
_CLOSE_RANGE_CLOEXEC = 4
_libc = ctypes.CDLL(None, use_errno=True)


def close_inherited_at_exec() -> None:
    """In a child before exec: every descriptor but stdin, stdout and stderr is closed when it execs.

    uvloop ignores `close_fds`, so without this every inheritable descriptor of the server (whatever
    started it left open: a log, a socket, a secrets file) went on to bwrap, setpriv and Chromium, as
    the browser's uid. Marking them close-on-exec rather than closing them keeps the loop's own pipe
    that reports a failed exec.
    """
    every = ctypes.c_uint(0xFFFFFFFF)
    if _libc.syscall(_SYS_CLOSE_RANGE, ctypes.c_uint(3), every, _CLOSE_RANGE_CLOEXEC) == 0:
        return
    for name in os.listdir("/proc/self/fd"):  # kernels before 5.11
        if int(name) > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(int(name), False)


def remove_profile(profile: Path) -> None:
    """Delete a profile and the short temp dir its `tmp` link points to."""
    link = profile / "tmp"
    if link.is_symlink():
        target = Path(os.readlink(link))
        if target.parent == Path(tempfile.gettempdir()) and target.name.startswith(TMP_PREFIX):
            shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(profile, ignore_errors=True)


@dataclass(eq=False)
class Browser:
    """A running Chromium. `exited` resolves with its exit code however it ends.

    With `netns_fd` set, the browser lives in a network namespace of its own: its debugging port is
    reachable only through sockets this server creates there (`connect_socket`), and its only way out is
    its `egress` proxy. `view` translates paths between the host and what the browser sees; `uid` is the
    unprivileged user a jailed browser runs as, `groups` its cgroups (limits and the exact kill).

    The browser owns its two tasks (the exit watch, the stderr drain); `close()` ends them, and whoever
    holds a Browser must close it.
    """

    pid: int
    port: int
    ws_url: str
    profile_dir: Path
    proc: asyncio.subprocess.Process
    launch_ms: float
    netns_fd: int | None = None
    egress: EgressProxy | None = None
    view: View | None = None
    uid: int | None = None
    groups: cgroups.BrowserGroups | None = None
    on_closed: collections.abc.Callable[[Browser], None] | None = None
    agent: BrowserAgent | None = None  # applies the session's AppliedSpec (browsers/agent.py)
    extension_ids: tuple[str, ...] = ()  # Chromium's ids of the extensions it was launched with
    version: dict[str, Any] = field(default_factory=dict)
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    _watch: asyncio.Task[int] | None = None
    _drain: asyncio.Task[None] | None = None
    _tasks: Tasks = field(init=False)

    def __post_init__(self) -> None:
        self._tasks = Tasks(f"chromium-{self.pid}")

    def _supervise(self) -> None:
        """Watch for the exit at once (the exit status is asyncio's to collect, see `process.spawning`)."""
        self._watch = self._tasks.spawn(_wait(self.proc), "wait")

    def _keep_draining(self, tail: collections.deque[str]) -> None:
        # Chromium blocks once its stderr pipe is full (dbus noise): keep draining it.
        assert self.proc.stderr is not None
        self._drain = self._tasks.spawn(_drain(self.proc.stderr, tail), "stderr")

    async def connect_socket(self) -> socket.socket:
        """A TCP connection to the debugging port, made inside the browser's network namespace."""
        sock = netns.socket_in(self.netns_fd)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        return sock

    async def http_get(self, path: str, limit: int = 32 * 1024 * 1024) -> tuple[int, str, bytes]:
        """GET a path of the debugging port's HTTP server: (status, content type, body).

        Anything that goes wrong (an answer that is not HTTP, a socket that fails or closes early, a head
        over 1 MiB) is BrowserUnreachable.
        """
        try:
            answer = await localhttp.exchange(await self.connect_socket(), "GET", path, limit=limit)
        except (OSError, localhttp.LocalHttpError) as exc:
            raise BrowserUnreachable(f"GET {path} failed: {exc or type(exc).__name__}") from exc
        return answer.status, answer.content_type, answer.body

    async def _read_version(self) -> None:
        status, _kind, body = await self.http_get("/json/version")
        if status != 200:
            raise LaunchFailed(f"/json/version answered {status}")
        self.version = json.loads(body)

    @property
    def downloads_dir(self) -> Path:
        """Where downloads land, on the host (`seen` gives the browser's own name for it)."""
        return self.profile_dir / "downloads"

    @property
    def uploads_dir(self) -> Path:
        """Where the session's uploads are offered to the browser (read-only to it), on the host."""
        return self.profile_dir / "uploads"

    def seen(self, host_path: Path) -> str:
        """A path of this browser's profile as the browser itself names it."""
        return (self.view or View(self.profile_dir)).to_browser(host_path)

    def on_host(self, browser_path: str) -> Path | None:
        """The host path of a file the browser names, if it is inside its profile (lexically)."""
        return (self.view or View(self.profile_dir)).to_host(browser_path)

    @property
    def uploads_seen(self) -> str:
        return (self.view or View(self.profile_dir)).uploads

    @property
    def exited(self) -> asyncio.Task[int]:
        assert self._watch is not None
        return self._watch

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    async def close(self) -> None:
        """Kill the whole process tree, reap it and remove the profile. Safe to call twice.

        The kill and the reaping read every process's command line in /proc: they run in a thread."""
        if self.agent is not None:
            agent, self.agent = self.agent, None
            await agent.close()
        pids = await asyncio.to_thread(_kill, self.pid, self.profile_dir, self.groups)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.exited), timeout=10)
        if self._drain is not None:
            self._drain.cancel()
        # Children of the killed browser (a jail's init among them) were adopted by this process (a
        # subreaper): collect them until none is left, not even as a zombie.
        for _ in range(40):
            if not await asyncio.to_thread(_reap, pids):
                break
            await asyncio.sleep(0.05)
        if self.egress is not None:
            await self.egress.close()
            self.egress = None
        if self.netns_fd is not None:
            os.close(self.netns_fd)
            self.netns_fd = None
        if self.groups is not None:
            groups, self.groups = self.groups, None
            if not await asyncio.to_thread(groups.remove):
                log.warning("browser %s: cgroups still busy after the kill: %s", self.pid, groups.dirs)
                self.uid = None  # never hand its uid to another browser while something may run as it
        await asyncio.to_thread(remove_profile, self.profile_dir)
        # The drain is over; the watch too, unless the killed process never exited (then it is
        # abandoned here rather than left pending: a process stuck in the kernel has no exit to wait for).
        await self._tasks.close()
        if self.on_closed is not None:
            on_closed, self.on_closed = self.on_closed, None
            on_closed(self)


def _kill(pid: int, profile: Path, groups: cgroups.BrowserGroups | None) -> set[int]:
    """SIGKILL a browser's whole tree: the pids killed, but for the browser's own."""
    members: set[int] = set()
    if groups is not None:
        members = groups.pids()
        groups.kill()  # exact: every process of the browser, double-forked ones included
    return (members | set(process.kill_tree(pid, str(profile)))) - {pid}


def _reap(pids: set[int]) -> bool:
    """Collect adopted children that have exited; True while any of `pids` still exists."""
    process.reap_adopted()
    return any(psutil.pid_exists(pid) for pid in pids)


@dataclass(frozen=True)
class Walls:
    """What stands around each browser: the sandbox mode, its cgroups and their limits, the uids."""

    mode: Mode
    support: sandbox.Support | None = None
    hierarchy: cgroups.Hierarchy | None = None
    limits: cgroups.Limits = field(default_factory=cgroups.Limits)
    uid_base: int = 800_000
    uid_count: int = 4096
    refusal: str | None = None  # why no browser may start here (no sandbox, and the operator did not opt in)


class Launcher:
    def __init__(
        self,
        executable: str,
        extra_args: list[str],
        profiles_root: Path,
        timeout: float,
        isolate: bool,
        egress_rules: EgressRules | None = None,
        walls: Walls | None = None,
        provisioner: Provisioner | None = None,
    ) -> None:
        self.provisioner: Provisioner = provisioner or NoProvisioner()
        self.egress_rules = egress_rules or EgressRules()
        self.executable = executable
        self.extra_args = extra_args
        self.profiles_root = profiles_root
        self.timeout = timeout
        self.isolate = isolate
        self.walls = walls or Walls(Mode.UNSANDBOXED)
        self.uids = sandbox.UidPool(self.walls.uid_base, self.walls.uid_count)
        profiles_root.mkdir(parents=True, exist_ok=True)

    @property
    def jailed(self) -> bool:
        return self.walls.mode is Mode.JAILED

    def _make_profile(self, uid: int | None) -> Path:
        """A fresh profile: root-owned at the top (the browser cannot rename what the server reads), its
        subdirectories the browser's own, and `uploads` read-only to it."""
        profile = Path(tempfile.mkdtemp(prefix=PROFILE_PREFIX, dir=self.profiles_root))
        for sub in ("home", "downloads", "user-data", "xdg-config", "cache"):
            (profile / sub).mkdir()
            if uid is not None:
                os.chown(profile / sub, uid, uid)
        (profile / "uploads").mkdir(mode=0o755)
        trust.prepare(profile / "home", uid)  # so CA certificates can be added once it runs
        if uid is not None:
            profile.chmod(0o755)
        else:
            # Chromium keeps its process-singleton socket in a temp dir it cannot remove when killed
            # (thousands of /tmp/org.chromium.Chromium.* were left behind): keep it with the profile. The
            # socket's path must fit in 108 bytes, so the dir is a short one in /tmp, linked from here.
            # (A jailed browser has a private /tmp that goes with its mount namespace.)
            (profile / "tmp").symlink_to(tempfile.mkdtemp(prefix=TMP_PREFIX))
        return profile

    def _view(self, profile: Path) -> View:
        return View(profile, sandbox.INSIDE_PROFILE) if self.jailed else View(profile)

    def _command(
        self, profile: Path, uid: int | None, spec_args: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        extra = [*flags.EGRESS_FLAGS, *self.extra_args] if self.isolate else self.extra_args
        sandboxed = self.walls.mode is not Mode.UNSANDBOXED
        view = self._view(profile)
        chromium = flags.command_line(
            self.executable, view.to_browser(profile / "user-data"), extra, sandboxed, spec_args
        )
        if self.jailed:
            assert self.walls.support is not None and uid is not None
            return sandbox.jail_command(self.walls.support, chromium, profile, uid), {"PATH": "/usr/bin:/bin"}
        return chromium, sandbox.environment(profile, str((profile / "tmp").readlink()))

    async def launch(self, spec: LaunchSpec | None = None) -> Browser:
        """A browser started as `spec` says (the default spec if None), ready for CDP."""
        spec = spec or LaunchSpec()
        if self.walls.refusal is not None:
            raise LaunchFailed(self.walls.refusal)
        uid = self.uids.take() if self.jailed else None
        try:
            return await self._launch(uid, spec)
        except BaseException:
            if uid is not None:
                self.uids.give_back(uid)
            raise

    async def _launch(self, uid: int | None, spec: LaunchSpec) -> Browser:
        await trust.make_empty_database()  # once: what _make_profile copies for CA certificates
        profile = await asyncio.to_thread(self._make_profile, uid)
        groups: cgroups.BrowserGroups | None = None

        def undo() -> None:  # a launch that did not get as far as a Browser leaves nothing behind (a thread)
            if groups is not None:
                groups.kill()
                groups.remove()
            remove_profile(profile)

        try:
            if self.walls.hierarchy is not None and self.walls.hierarchy.usable:
                groups = await asyncio.to_thread(
                    cgroups.BrowserGroups.create, self.walls.hierarchy, profile.name, self.walls.limits
                )
            view = self._view(profile)
            fresh = FreshProfile(profile, view, uid)
            spec_args = [] if spec.pooled else await self.provisioner.provision(spec, fresh)
            command, env = self._command(profile, uid, spec_args)
        except OSError as exc:
            await asyncio.to_thread(undo)
            raise LaunchFailed("cannot prepare the browser's profile or cgroups", str(exc)) from exc
        except BaseException:
            await asyncio.shield(asyncio.to_thread(undo))
            raise
        isolate = self.isolate

        def in_child() -> None:  # between fork and exec: only what must happen before Chromium runs
            if isolate:
                netns.enter_new()
            if groups is not None:
                groups.join()
            close_inherited_at_exec()

        started = time.perf_counter()
        try:
            proc = await process.start(command, env, in_child, stderr=subprocess.PIPE)
        except (OSError, subprocess.SubprocessError) as exc:
            await asyncio.to_thread(undo)
            raise LaunchFailed("cannot start Chromium", f"{self.executable}: {exc}") from exc
        except BaseException:
            # Cancelled while spawning (the pool closing at shutdown): asyncio kills a process it was
            # still starting, but the profile and cgroups made for it are ours to remove.
            await asyncio.shield(asyncio.to_thread(undo))
            raise
        assert proc.stderr is not None
        tail: collections.deque[str] = collections.deque(maxlen=20)
        browser = Browser(
            pid=proc.pid,
            port=0,
            ws_url="",
            profile_dir=profile,
            proc=proc,
            launch_ms=0,
            stderr_tail=tail,
            view=view,
            uid=uid,
            groups=groups,
            on_closed=self._closed,
            extension_ids=tuple(fresh.extension_ids),
        )
        browser._supervise()
        try:
            if self.isolate:
                browser.netns_fd = netns.open_of(proc.pid)
                browser.egress = EgressProxy(self.egress_rules)
                await browser.egress.start_in(browser.netns_fd)
            browser.ws_url, browser.port = await asyncio.wait_for(
                _read_endpoint(proc.stderr, tail), self.timeout
            )
            await asyncio.wait_for(browser._read_version(), self.timeout)
        except (TimeoutError, LaunchFailed, BrowserUnreachable, OSError, ValueError) as exc:
            await browser.close()
            detail = " | ".join(tail) or str(exc) or "timed out"
            raise LaunchFailed("Chromium did not open its debugging endpoint", detail) from exc
        except BaseException:
            # Cancelled mid-launch (shutdown, a client gone): the half-started browser must not outlive us.
            await asyncio.shield(browser.close())
            raise
        browser.launch_ms = (time.perf_counter() - started) * 1000
        browser._keep_draining(tail)
        return browser

    def close(self) -> None:
        """After every browser has been closed: remove the server's parent cgroups."""
        if self.walls.hierarchy is not None:
            self.walls.hierarchy.remove()

    def _closed(self, browser: Browser) -> None:
        if browser.uid is not None:
            self.uids.give_back(browser.uid)

    def reap_orphans(self) -> int:
        """Kill browsers a previous server left running on this data dir and remove their profiles.

        Blocking (it scans /proc and waits for cgroups to empty): call it in a thread."""
        killed: set[int] = set()
        hierarchy = self.walls.hierarchy
        left = cgroups.leftovers(hierarchy) if hierarchy is not None else []
        for groups in left:
            killed.update(groups.pids())
            groups.kill()
        for proc in process.mentioning(str(self.profiles_root)):
            if proc.pid not in killed:
                killed.update(process.kill_tree(proc.pid))
        process.reap_adopted()
        for groups in left:
            groups.remove()
            process.reap_adopted()
        for path in self.profiles_root.glob(PROFILE_PREFIX + "*"):
            remove_profile(path)
        return len(killed)


async def _wait(proc: asyncio.subprocess.Process) -> int:
    try:
        return await proc.wait()
    finally:
        process.collected(proc.pid)


async def _read_endpoint(stream: asyncio.StreamReader, tail: collections.deque[str]) -> tuple[str, int]:
    while line := await stream.readline():
        match = _LISTENING.search(line)
        if match:
            return match.group(1).decode(), int(match.group(2))
        tail.append(line.decode(errors="replace").strip())
    raise LaunchFailed("Chromium exited before it was ready")


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line over the stream's limit, dropped: draining must go on regardless
            continue
        if not line:
            return
        tail.append(line.decode(errors="replace").strip())
