"""Control groups: one per browser, for its memory, CPU and process-count limits and an exact kill.

What a host offers differs (`detect`): cgroup v1 controllers (`memory`, `cpu`, `pids`) mounted under
`/sys/fs/cgroup/<controller>`, and cgroup v2 (the unified hierarchy, at `/sys/fs/cgroup` or
`/sys/fs/cgroup/unified`) with `cgroup.kill` and whichever controllers it has enabled. Limits are set
through whichever hierarchy holds that controller; the kill uses `cgroup.kill` where there is one, else
every pid listed in the groups.

Every group lives under `browserfleet-<tag>/`, where the tag names the data dir, so a restarted server
finds (and kills) exactly the browsers a previous run on the same data dir left, and nothing else.
A browser joins its groups in the child between fork and exec (`BrowserGroups.join`), before it can
fork anything of its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    """Per-browser limits; None leaves one unset."""

    memory_bytes: int | None = None
    cpu_cores: float | None = None
    pids: int | None = None


@dataclass(frozen=True)
class Hierarchy:
    """Where each controller can be written, and the v2 group dir that has `cgroup.kill` (if any)."""

    controllers: dict[str, Path] = field(default_factory=dict)  # controller → the dir our groups go under
    unified: Path | None = None  # a v2 dir with cgroup.kill (for the exact kill), if the host has one

    def remove(self) -> None:
        """Remove this server's parent groups, once the browsers' own are gone (at shutdown)."""
        for parent in {*self.controllers.values(), *([self.unified] if self.unified else [])}:
            with contextlib.suppress(OSError):
                parent.rmdir()

    @property
    def usable(self) -> bool:
        return bool(self.controllers) or self.unified is not None

    def describe(self) -> str:
        parts = [
            f"{name} (v{'2' if (path / 'cgroup.controllers').exists() else '1'})"
            for name, path in self.controllers.items()
        ]
        if self.unified is not None:
            parts.append("cgroup.kill (v2)")
        return ", ".join(parts) or "none"


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _read_words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _v2_root() -> Path | None:
    for path in (ROOT, ROOT / "unified"):
        if (path / "cgroup.controllers").exists():
            return path
    return None


def detect(data_dir: Path) -> Hierarchy:
    """What this host lets the server use, with the parent dirs made (`browserfleet-<tag>`)."""
    tag = "browserfleet-" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    controllers: dict[str, Path] = {}
    unified: Path | None = None
    v2 = _v2_root()
    if v2 is not None and _writable(v2):
        enabled = _read_words(v2 / "cgroup.subtree_control")
        parent = v2 / tag
        with contextlib.suppress(OSError):
            parent.mkdir(exist_ok=True)
            # Controllers must be enabled on each level for the groups below to have their files.
            wanted = [c for c in CONTROLLERS if c in enabled]
            if wanted:
                with contextlib.suppress(OSError):
                    (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            have = _read_words(parent / "cgroup.subtree_control")
            for name in CONTROLLERS:
                if name in have:
                    controllers[name] = parent
            if (parent / "cgroup.kill").exists():
                unified = parent
    for name in CONTROLLERS:
        if name in controllers:
            continue
        mount = ROOT / name
        v1 = (mount / "cgroup.procs").exists() and not (mount / "cgroup.controllers").exists()
        if v1 and _writable(mount):
            with contextlib.suppress(OSError):
                (mount / tag).mkdir(exist_ok=True)
                controllers[name] = mount / tag
    return Hierarchy(controllers, unified)


@dataclass
class BrowserGroups:
    """The groups of one browser: made before launch, joined by the child, removed after the kill."""

    name: str
    dirs: list[Path]
    kill_dir: Path | None

    @classmethod
    def create(cls, hierarchy: Hierarchy, name: str, limits: Limits) -> BrowserGroups:
        dirs: list[Path] = []
        for parent in {*hierarchy.controllers.values(), *([hierarchy.unified] if hierarchy.unified else [])}:
            path = parent / name
            path.mkdir(exist_ok=True)
            dirs.append(path)
        groups = cls(name, dirs, hierarchy.unified / name if hierarchy.unified else None)
        try:
            groups._limit(hierarchy, limits)
        except OSError:
            groups.remove()
            raise
        return groups

    def _limit(self, hierarchy: Hierarchy, limits: Limits) -> None:
        memory, cpu, pids = (hierarchy.controllers.get(c) for c in CONTROLLERS)
        if memory is not None and limits.memory_bytes is not None:
            if (memory / "cgroup.controllers").exists():
                (memory / self.name / "memory.max").write_text(str(limits.memory_bytes))
                with contextlib.suppress(OSError):
                    (memory / self.name / "memory.swap.max").write_text("0")
            else:
                (memory / self.name / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
        if cpu is not None and limits.cpu_cores is not None:
            quota = max(1000, int(limits.cpu_cores * CPU_PERIOD_US))
            if (cpu / "cgroup.controllers").exists():
                (cpu / self.name / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            else:
                (cpu / self.name / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (cpu / self.name / "cpu.cfs_quota_us").write_text(str(quota))
        if pids is not None and limits.pids is not None:
            (pids / self.name / "pids.max").write_text(str(limits.pids))

    def join(self) -> None:
        """In the child before exec: move this process into every group (only async-signal-safe calls)."""
        pid = str(os.getpid()).encode()
        for path in self.dirs:
            fd = os.open(path / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in (path / "cgroup.procs").read_text().split())
        return found

    def kill(self) -> None:
        """SIGKILL every process in the groups, however it got there (double forks included)."""
        if self.kill_dir is not None:
            with contextlib.suppress(OSError):
                (self.kill_dir / "cgroup.kill").write_text("1")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, wait: float = 2.0) -> bool:
        """Remove the (emptied) groups; a group is busy until its last process has been reaped."""
        deadline = time.monotonic() + wait
        left = list(self.dirs)
        while left:
            for path in list(left):
                try:
                    path.rmdir()
                    left.remove(path)
                except FileNotFoundError:
                    left.remove(path)
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        left.remove(path)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.dirs = left
        return not left

    def memory_limit_hit(self) -> int:
        """How many times a process in the group was OOM-killed (0 where the host does not say)."""
        for path in self.dirs:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                with contextlib.suppress(OSError, ValueError):
                    for line in (path / name).read_text().splitlines():
                        field_name, _, value = line.partition(" ")
                        if field_name == key:
                            return int(value)
        return 0


def leftovers(hierarchy: Hierarchy) -> list[BrowserGroups]:
    """Groups a previous server on this data dir left behind (to kill and remove at start-up)."""
    by_name: dict[str, list[Path]] = {}
    parents = {*hierarchy.controllers.values(), *([hierarchy.unified] if hierarchy.unified else [])}
    for parent in parents:
        with contextlib.suppress(OSError):
            for child in parent.iterdir():
                if child.is_dir():
                    by_name.setdefault(child.name, []).append(child)
    return [
        BrowserGroups(name, dirs, hierarchy.unified / name if hierarchy.unified else None)
        for name, dirs in by_name.items()
    ]
