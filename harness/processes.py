"""Finding a server's browsers among the machine's processes, by what their command lines name."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil


def mentioning(root: Path) -> list[psutil.Process]:
    """Processes (but this one) with a path under `root` in their command line: browsers, their
    crash handlers, anything started on a data dir."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(str(root) in arg for arg in proc.info.get("cmdline") or []):
            found.append(proc)
    return found


def browser_pids(server_pid: int) -> set[int]:
    """Pids of the Chromium browser processes among a server's direct children (none once it is gone)."""
    pids = set()
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(server_pid).children():
            with contextlib.suppress(psutil.Error):
                cmdline = child.cmdline()
                # Chromium's helpers (zygotes, renderers) carry --type=; the browser process does not.
                if any(a.startswith("--user-data-dir=") for a in cmdline) and not any(
                    a.startswith("--type=") for a in cmdline
                ):
                    pids.add(child.pid)
    return pids
