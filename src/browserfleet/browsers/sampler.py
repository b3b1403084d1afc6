"""CPU and memory of one browser's whole process tree (the browser, its renderers, GPU and utility
processes), measured with psutil. Pure measurement: where samples go is the caller's business."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Sample:
    cpu_percent: float  # of one core, since the previous sample
    memory_bytes: int  # proportional set size: shared pages split among the processes sharing them


class TreeSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu: dict[int, float] = {}  # cumulative CPU seconds per live process at the last sample
        self._at = time.monotonic()

    def sample(self, with_memory: bool = True) -> Sample | None:
        """None once the browser itself is gone. Without `with_memory`, only CPU is read (PSS means reading
        every process's smaps, which costs milliseconds per process), and `memory_bytes` is 0."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        now = time.monotonic()
        cpu: dict[int, float] = {}
        memory = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu[proc.pid] = times.user + times.system
                    if with_memory:
                        memory += proc.memory_full_info().pss
            except psutil.Error:
                continue
        used = sum(cpu[pid] - self._cpu.get(pid, 0.0) for pid in cpu)
        elapsed = max(now - self._at, 1e-6)
        self._cpu, self._at = cpu, now
        return Sample(cpu_percent=max(0.0, used) * 100 / elapsed, memory_bytes=memory)
