"""Killing whole process trees and reaping what they leave behind.

The scans here (`mentioning`, `kill_tree`, `reap_adopted`) walk /proc and may be called from a thread:
`spawning` keeps asyncio's own children (browsers, encoders), whose exit status asyncio collects
itself, apart from the orphans this process adopts as a subreaper, which `reap_adopted` collects.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import psutil

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def become_subreaper() -> bool:
    """Adopt orphaned descendants, so killed browsers' children are reaped here, not left as zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """In a child before exec: the kernel kills it when the server dies, however the server dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _flag_under(arg: str, root: str) -> bool:
    """`--name=<path under root>` (how Chromium and its crash handler are told their profile), or the
    path itself as an argument (how bubblewrap is told what to bind into a jail)."""
    name, sep, value = arg.partition("=")
    if sep and name.startswith("--"):
        return _under(value, root)
    return arg.startswith("/") and _under(arg, root)


def mentioning(root: str) -> list[psutil.Process]:
    """Processes given a path under `root` as an argument (a browser profile, its crash database)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(_flag_under(arg, root) for arg in proc.info.get("cmdline") or []):
            found.append(proc)
    return found


def kill_tree(pid: int, marker: str | None = None) -> list[int]:
    """SIGKILL the process group led by `pid`, its descendants, and (given a marker) every process that
    mentions it: Chromium's crash handlers double-fork into groups of their own. Returns the pids."""
    members = {p.pid: p for p in tree(pid)}
    if marker:
        members.update((p.pid, p) for p in mentioning(marker))
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for member in members.values():
        try:
            member.kill()
        except psutil.Error:
            pass
    return list(members)


# Children spawned through asyncio that asyncio has not collected yet: reaping one here would steal its
# exit status, and whoever awaits it would wait forever.
_spawned: set[int] = set()
_spawns = 0  # spawns under way: a child may already exist whose pid is not in `_spawned` yet


@contextlib.contextmanager
def spawning() -> Iterator[Callable[[int], None]]:
    """Around an asyncio spawn, on the loop: call what it yields with the child's pid as soon as the spawn
    returns, and `collected(pid)` once asyncio has its exit status."""
    global _spawns
    _spawns += 1
    try:
        yield _spawned.add
    finally:
        _spawns -= 1


async def start(
    command: list[str], env: dict[str, str], in_child: Callable[[], None], stderr: int = subprocess.DEVNULL
) -> asyncio.subprocess.Process:
    """Spawn `command` in a session and process group of its own (one killpg takes its whole tree),
    registered with `spawning`; `in_child` runs between fork and exec. stdin and stdout are /dev/null."""
    with spawning() as spawned:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            env=env,
            preexec_fn=in_child,
        )
        spawned(proc.pid)
    return proc


def collected(pid: int) -> None:
    """asyncio has the exit status of `pid`, a child registered through `spawning`."""
    _spawned.discard(pid)


def reap_adopted() -> None:
    """Collect the exit status of every dead child of this process that asyncio is not waiting for, so
    processes adopted as subreaper never linger as zombies. Safe in a thread: the children are listed
    before the spawns are checked, so a child the listing saw is either registered or its spawn is still
    under way, and then nothing is reaped this time."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    if _spawns:
        return
    for child in children:
        if child.pid in _spawned:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass
