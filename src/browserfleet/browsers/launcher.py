"""Starting Chromium with a fresh profile and handing out a supervised `Browser`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from browserfleet.browsers import flags, process

log = logging.getLogger(__name__)

_LISTENING = re.compile(rb"DevTools listening on (ws://127\.0\.0\.1:(\d+)/devtools/browser/[\w-]+)")
PROFILE_PREFIX = "browser-"


class LaunchError(RuntimeError):
    pass


@dataclass(eq=False)
class Browser:
    """A running Chromium. `exited` resolves with its exit code however it ends."""

    pid: int
    port: int
    ws_url: str
    profile_dir: Path
    proc: asyncio.subprocess.Process
    launch_ms: float
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    _watch: asyncio.Task[int] | None = None
    _drain: asyncio.Task[None] | None = None

    @property
    def downloads_dir(self) -> Path:
        return self.profile_dir / "downloads"

    @property
    def uploads_dir(self) -> Path:
        return self.profile_dir / "uploads"

    @property
    def exited(self) -> asyncio.Task[int]:
        assert self._watch is not None
        return self._watch

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    async def close(self) -> None:
        """Kill the whole process tree, reap it and remove the profile. Safe to call twice."""
        pids = process.kill_tree(self.pid, str(self.profile_dir))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.exited), timeout=10)
        if self._drain is not None:
            self._drain.cancel()
        # Children of the killed browser were adopted by this process (subreaper); collect them.
        for _ in range(40):
            process.reap_adopted(keep=_watched)
            if not any(_exists(pid) for pid in pids if pid != self.pid):
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(shutil.rmtree, self.profile_dir, True)


# Browser pids asyncio's child watcher waits for: reaping them here would steal their exit codes.
_watched: set[int] = set()


def _exists(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _environment(profile: Path) -> dict[str, str]:
    # Chromium writes crash reports, caches and default downloads under HOME and the XDG dirs: keep all
    # of it in the profile, so it goes with it, and so its crash handlers' command lines name the profile.
    return {
        **os.environ,
        "HOME": str(profile / "home"),
        "XDG_CONFIG_HOME": str(profile / "xdg-config"),
        "XDG_CACHE_HOME": str(profile / "xdg-cache"),
    }


class Launcher:
    def __init__(self, executable: str, extra_args: list[str], profiles_root: Path, timeout: float) -> None:
        self.executable = executable
        self.extra_args = extra_args
        self.profiles_root = profiles_root
        self.timeout = timeout
        profiles_root.mkdir(parents=True, exist_ok=True)

    async def launch(self) -> Browser:
        profile = Path(tempfile.mkdtemp(prefix=PROFILE_PREFIX, dir=self.profiles_root))
        for sub in ("home", "downloads", "uploads"):
            (profile / sub).mkdir()
        started = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *flags.command_line(self.executable, profile / "user-data", self.extra_args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: one killpg takes the whole tree
                env=_environment(profile),
            )
        except OSError as exc:
            shutil.rmtree(profile, ignore_errors=True)
            raise LaunchError(f"cannot start {self.executable}: {exc}") from exc
        assert proc.stderr is not None
        tail: collections.deque[str] = collections.deque(maxlen=20)
        try:
            ws_url, port = await asyncio.wait_for(_read_endpoint(proc.stderr, tail), self.timeout)
        except (TimeoutError, LaunchError) as exc:
            process.kill_tree(proc.pid)
            await proc.wait()
            shutil.rmtree(profile, ignore_errors=True)
            detail = " | ".join(tail) or str(exc) or "timed out"
            raise LaunchError(f"Chromium did not open its debugging endpoint: {detail}") from exc
        browser = Browser(
            pid=proc.pid,
            port=port,
            ws_url=ws_url,
            profile_dir=profile,
            proc=proc,
            launch_ms=(time.perf_counter() - started) * 1000,
            stderr_tail=tail,
        )
        _watched.add(proc.pid)
        browser._watch = asyncio.create_task(_wait(proc), name=f"chromium-{proc.pid}-wait")
        # Chromium blocks once its stderr pipe is full (dbus noise): keep draining it.
        browser._drain = asyncio.create_task(_drain(proc.stderr, tail), name=f"chromium-{proc.pid}-stderr")
        return browser

    def reap_orphans(self) -> int:
        """Kill browsers a previous server left running on this data dir and remove their profiles."""
        killed = 0
        for proc in process.mentioning(str(self.profiles_root)):
            killed += len(process.kill_tree(proc.pid))
        process.reap_adopted(keep=_watched)
        for path in self.profiles_root.glob(PROFILE_PREFIX + "*"):
            shutil.rmtree(path, ignore_errors=True)
        return killed


async def _wait(proc: asyncio.subprocess.Process) -> int:
    try:
        return await proc.wait()
    finally:
        _watched.discard(proc.pid)


async def _read_endpoint(stream: asyncio.StreamReader, tail: collections.deque[str]) -> tuple[str, int]:
    while line := await stream.readline():
        match = _LISTENING.search(line)
        if match:
            return match.group(1).decode(), int(match.group(2))
        tail.append(line.decode(errors="replace").strip())
    raise LaunchError("Chromium exited before it was ready")


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    while line := await stream.readline():
        tail.append(line.decode(errors="replace").strip())
