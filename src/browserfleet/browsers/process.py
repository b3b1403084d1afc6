"""Killing whole process trees and reaping what they leave behind."""

from __future__ import annotations

import ctypes
import os
import signal

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


def reap_adopted(keep: set[int]) -> None:
    """Collect the exit status of every dead child of this process except `keep` (pids that asyncio
    is waiting for), so processes adopted as subreaper never linger as zombies."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        if child.pid in keep:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass
