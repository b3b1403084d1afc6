"""What the sandbox costs a launch: the same `Launcher` launching Chromium unsandboxed (root,
`--no-sandbox`, as before the sandbox), jailed without cgroups, and jailed with its cgroups (the
default), in alternating rounds. Each launch is timed from spawn to the answer of `/json/version`
(what the warm pool waits for), with the CPU its process tree had used by then, and the close (kill,
reap, profile and cgroups removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.common import (
    CHROMIUM,
    Report,
    Stats,
    num,
    ratio,
    run_alone,
    run_timed,
    scaled,
    stats_table,
    table,
    times,
)
from browserfleet.browsers import cgroups, sandbox
from browserfleet.browsers.addresses import EgressRules
from browserfleet.browsers.launcher import Launcher, Walls
from browserfleet.browsers.sandbox import Mode
from browserfleet.config import default_session_cpus
from harness.server import RESOLVER_RULES

ROUNDS = scaled(15)
UID_BASE = 810_000


@dataclass
class Variant:
    label: str
    walls: Walls
    launch_ms: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    close_ms: list[float] = field(default_factory=list)


def _tree_cpu(pid: int) -> float:
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                cpu = proc.cpu_times()
                total += cpu.user + cpu.system
    return total


async def _measure(variants: list[Variant], data_dir: Path) -> None:
    for round_no in range(ROUNDS + 1):  # round 0 warms the page cache and is not counted
        for variant in variants:
            launcher = Launcher(
                CHROMIUM,
                shlex.split(RESOLVER_RULES),
                data_dir / "profiles",
                30.0,
                isolate=True,
                egress_rules=EgressRules.from_settings("", allow_loopback=True),
                walls=variant.walls,
            )
            browser = await launcher.launch()
            cpu = _tree_cpu(browser.pid)
            started = time.perf_counter()
            await browser.close()
            if round_no:
                variant.launch_ms.append(browser.launch_ms)
                variant.cpu_s.append(cpu)
                variant.close_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.3)


def measure(report: Report) -> None:
    support = sandbox.probe(UID_BASE)
    if support.best is not Mode.JAILED:
        report.notes.append(f"this host cannot jail browsers ({support.missing()}): nothing to compare")
        return
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        data_dir = Path(tmp)
        hierarchy = cgroups.detect(data_dir)
        limits = cgroups.Limits(memory_bytes=4096 * 1024 * 1024, cpu_cores=default_session_cpus(), pids=2048)
        variants = [
            Variant("unsandboxed (root, --no-sandbox; before)", Walls(Mode.UNSANDBOXED)),
            Variant("jailed, no cgroups", Walls(Mode.JAILED, support, uid_base=UID_BASE)),
            Variant(
                "jailed + cgroups (default)",
                Walls(Mode.JAILED, support, hierarchy, limits, uid_base=UID_BASE + 100),
            ),
        ]
        asyncio.run(_measure(variants, data_dir))
        hierarchy.remove()
    report.add(
        f"{ROUNDS} rounds (plus one not counted), each launching once in every variant in turn, all "
        "with a network namespace and egress proxy as in production. Launch: spawn → `/json/version` "
        "answered; CPU: user + system seconds of the browser's process tree at that moment; close: "
        "kill, reap, remove profile (and cgroups)."
    )
    launch = [(v.label, Stats.of(v.launch_ms)) for v in variants]
    report.add("Launch (ms):\n\n" + stats_table(launch))
    report.add("Close (ms):\n\n" + stats_table([(v.label, Stats.of(v.close_ms)) for v in variants]))
    base = Stats.of(variants[0].launch_ms).median
    base_cpu = Stats.of(variants[0].cpu_s).median
    rows = [
        [
            v.label,
            num(Stats.of(v.launch_ms).median - base, "ms"),
            times(ratio(Stats.of(v.launch_ms).median, base)),
            num(Stats.of(v.cpu_s).median, "s"),
            times(ratio(Stats.of(v.cpu_s).median, base_cpu)),
        ]
        for v in variants
    ]
    report.add(
        "Against the unsandboxed launch (medians):\n\n"
        + table(("variant", "launch +", "launch ratio", "CPU at ready", "CPU ratio"), rows)
    )


def run() -> Report:
    return run_timed("sandbox", "Sandbox launch cost", measure)


if __name__ == "__main__":
    run_alone(run)
