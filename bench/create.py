"""Create latency alone: `POST /v1/sessions` until its response (sent once the browser is ready to
connect), with a warm pool (paced, default pool size) and with no pool (every create launches).
Each session is released after its create; the release is not timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from bench.common import (
    Deadline,
    Report,
    Server,
    Stats,
    Target,
    create_session,
    default_pool_size,
    ms_since,
    num,
    pool_env,
    ratio,
    release_session,
    run_alone,
    run_timed,
    scaled,
    serving,
    stats_table,
    table,
    times,
)

N_WARM = scaled(50)
N_QUIET = scaled(15)
N_COLD = scaled(20)
PACE_S = 1.0
QUIET_PACE_S = 3.0
BUDGET_S = 220.0


@dataclass
class Series:
    label: str
    planned: int
    latencies: list[float] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)  # idle browsers with their port open, before each
    cpu: list[float] = field(default_factory=list)  # machine CPU use (%) in the pause before each


def creates(server: Server, series: Series, pace: float, deadline: Deadline) -> Series:
    with server.client() as http:
        release_session(http, create_session(http)["id"])  # warm-up, not counted
        time.sleep(pace)
        psutil.cpu_percent()
        for _ in range(series.planned):
            if deadline.expired:
                break
            if pace:
                series.cpu.append(psutil.cpu_percent())  # over the pause since the last release
            series.ready.append(server.ready_browsers())
            start = time.perf_counter()
            session = create_session(http)
            series.latencies.append(ms_since(start))
            release_session(http, session["id"])
            psutil.cpu_percent()
            time.sleep(pace)
    return series


def measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    pool = default_pool_size()
    warm = Series(f"warm pool (size {pool}), {PACE_S:.0f} s apart", N_WARM)
    quiet = Series(f"warm pool (size {pool}), {QUIET_PACE_S:.0f} s apart", N_QUIET)
    cold = Series("no pool (size 0), back-to-back", N_COLD)
    with serving(notes=report.notes) as server:
        server.wait_for_browsers(pool)
        creates(server, warm, PACE_S, deadline)
        creates(server, quiet, QUIET_PACE_S, deadline)
    with serving(pool_env(0), notes=report.notes) as server:
        creates(server, cold, 0, deadline)

    report.add(
        f"Warm: default pool size ({pool}); the next create starts ~{PACE_S:.0f} s (and, in a second "
        f"series, ~{QUIET_PACE_S:.0f} s) after the previous release, so the pool has refilled. Cold: "
        "`BROWSERFLEET_POOL_SIZE=0`, creates back to back, each launching its browser. Each session "
        "is released right after its create (not timed)."
    )
    stats = {s.label: Stats.of(s.latencies) for s in (warm, quiet, cold)}
    report.add(
        "`POST /v1/sessions` round trip (ms):\n\n"
        + stats_table(list(stats.items()))
        + "\n\n"
        + table(
            ("", "no pool / warm pool (1 s apart)"),
            [
                ["median", times(ratio(stats[cold.label].median, stats[warm.label].median))],
                ["p99", times(ratio(stats[cold.label].p99, stats[warm.label].p99))],
            ],
        )
    )
    rows = [
        [
            s.label,
            f"{min(s.ready, default=0)}",
            f"{sum(1 for n in s.ready if n == 0)} of {len(s.ready)}",
            num(Stats.of(s.cpu).median, "%"),
        ]
        for s in (warm, quiet, cold)
    ]
    report.add(
        "Conditions before each create: idle browsers with their debugging port open, and the machine's "
        "CPU use during the pause since the previous release (each create has the pool launch a "
        "replacement, which keeps working after its port opens):\n\n"
        + table(("series", "idle browsers, min", "creates with none", "CPU use, median"), rows)
    )
    for s in (warm, quiet, cold):
        if len(s.latencies) < s.planned:
            report.notes.append(f"{s.label}: stopped at {len(s.latencies)} of {s.planned} (time budget)")
    warm_stats = stats[warm.label]
    report.targets += [
        Target(
            "create p50, warm pool",
            warm_stats.median,
            30.0,
            "ms",
            f"median of {warm_stats.n}, {PACE_S:.0f} s apart",
        ),
        Target(
            "create p99, warm pool",
            warm_stats.p99,
            100.0,
            "ms",
            f"p99 of {warm_stats.n}, {PACE_S:.0f} s apart",
        ),
    ]


def run() -> Report:
    return run_timed("create", "2. Create latency", measure)


if __name__ == "__main__":
    run_alone(run)
