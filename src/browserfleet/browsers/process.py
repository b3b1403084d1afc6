"""Killing whole process trees and reaping what they leave behind."""

from __future__ import annotations

import ctypes
import os
import signal

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants, so killed browsers' children are reaped here, not left as zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(pid: int) -> list[int]:
    """SIGKILL the process group led by `pid` and every descendant; returns the pids signalled."""
    members = tree(pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for member in members:
        try:
            member.kill()
        except psutil.Error:
            pass
    return [member.pid for member in members]


def reap(pids: list[int]) -> None:
    """Collect exit statuses of adopted children so none stays a zombie."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
