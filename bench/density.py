"""Density: memory per idle session, and what each costs the server process.

No warm pool (`BROWSERFLEET_POOL_SIZE=0`), so every browser counted belongs to a session. Sessions
are opened one at a time (keepAlive, connected once with Playwright, left at about:blank, then the
client disconnects) up to 30 or until available memory would drop below 4 GB. At checkpoints, after
a settle, every session's browser is measured: the browser pid's whole tree plus its crash handlers
(processes whose command line has a `--flag=value` under the session's profile dir).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

from bench.common import (
    CHROMIUM,
    DASH,
    MB,
    Deadline,
    Memory,
    Report,
    Server,
    Stats,
    Target,
    browser_processes,
    create_session,
    memory,
    num,
    pool_env,
    release_session,
    run_alone,
    run_timed,
    scaled,
    serving,
    stats_table,
    table,
)

MAX_SESSIONS = scaled(30)
CHECKPOINTS = sorted({1, MAX_SESSIONS // 3, 2 * MAX_SESSIONS // 3, MAX_SESSIONS})
MIN_AVAILABLE = 4 * 1024 * MB
MARGIN = 400 * MB  # what one more session might take, so available memory stays above the floor
SETTLE_S = 5.0
BUDGET_S = 150.0


@dataclass
class Checkpoint:
    sessions: int
    per_session: list[Memory]
    server_rss: int
    available: int
    browser_processes: int
    chromium_processes: int  # every Chromium process on the machine, as a cross-check


def _chromium_processes() -> int:
    count = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        count += bool(cmdline) and cmdline[0].startswith(str(Path(CHROMIUM).parent))
    return count


def _measure_at(server: Server, browsers: list[tuple[int, Path]]) -> Checkpoint:
    time.sleep(SETTLE_S)
    per_session = [memory(group) for group in browser_processes(browsers)]
    return Checkpoint(
        sessions=len(browsers),
        per_session=per_session,
        server_rss=int(server.process().memory_info().rss),
        available=int(psutil.virtual_memory().available),
        browser_processes=sum(m.processes for m in per_session),
        chromium_processes=_chromium_processes(),
    )


def measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    env = pool_env(0, concurrency=str(MAX_SESSIONS + 5))
    checkpoints: list[Checkpoint] = []
    stop_reason = f"reached {MAX_SESSIONS} sessions"
    with serving(env, notes=report.notes) as server, sync_playwright() as pw:
        time.sleep(SETTLE_S)
        rss_before = int(server.process().memory_info().rss)
        available_before = int(psutil.virtual_memory().available)
        sessions: list[str] = []
        browsers: list[tuple[int, Path]] = []
        open_ms: list[float] = []
        with server.client() as http:
            try:
                while len(sessions) < MAX_SESSIONS:
                    if psutil.virtual_memory().available - MARGIN < MIN_AVAILABLE:
                        stop_reason = f"stopped at {len(sessions)}: available memory near 4 GB"
                        break
                    if deadline.expired:
                        stop_reason = f"stopped at {len(sessions)}: time budget"
                        break
                    start = time.perf_counter()
                    session = create_session(http, keepAlive=True, timeout=900)
                    sessions.append(session["id"])
                    client = pw.chromium.connect_over_cdp(session["connectUrl"])
                    url = client.contexts[0].pages[0].url
                    client.close()  # keepAlive: the session and its browser stay
                    open_ms.append((time.perf_counter() - start) * 1000)
                    if url != "about:blank":
                        report.notes.append(f"session {len(sessions)} was at {url}, not about:blank")
                    browsers.append(server.session_browser(session["id"]))
                    if len(sessions) in CHECKPOINTS:
                        checkpoints.append(_measure_at(server, browsers))
                if not checkpoints or checkpoints[-1].sessions != len(sessions):
                    checkpoints.append(_measure_at(server, browsers))
            finally:
                release_start = time.perf_counter()
                for session_id in sessions:
                    release_session(http, session_id)
                release_s = time.perf_counter() - release_start
    _write(report, checkpoints, rss_before, available_before, stop_reason, open_ms, release_s)


def _write(
    report: Report,
    checkpoints: list[Checkpoint],
    rss_before: int,
    available_before: int,
    stop_reason: str,
    open_ms: list[float],
    release_s: float,
) -> None:
    report.add(
        f"`BROWSERFLEET_POOL_SIZE=0`, network isolation as the host allows (on here: each browser has "
        f"its own namespace and egress proxy). {stop_reason.capitalize()}. Settle before each "
        f"measurement: {SETTLE_S:.0f} s. Server RSS before the first session: {num(rss_before / MB, 'MB')}. "
        "PSS splits shared pages among all processes that map them (so it falls per session as "
        "sessions are added); USS counts only pages no other process maps (what ending the session frees)."
    )
    rows = []
    for cp in checkpoints:
        pss = Stats.of([m.pss / MB for m in cp.per_session])
        uss = Stats.of([m.uss / MB for m in cp.per_session])
        total_pss = sum(m.pss for m in cp.per_session) / MB
        rows.append(
            [
                str(cp.sessions),
                num(cp.browser_processes / cp.sessions),
                num(pss.median, "MB"),
                f"{num(pss.min)}{DASH}{num(pss.max, 'MB')}",
                num(total_pss / cp.sessions, "MB"),
                num(uss.median, "MB"),
                num((cp.server_rss - rss_before) / MB / cp.sessions, "MB"),
                num((available_before - cp.available) / MB / cp.sessions, "MB"),
            ]
        )
    report.add(
        "Per idle session, at each checkpoint:\n\n"
        + table(
            (
                "sessions",
                "processes each",
                "PSS median",
                f"PSS min{DASH}max",
                "PSS total / count",
                "USS median",
                "server RSS growth / session",
                "available memory drop / session",
            ),
            rows,
        )
    )
    report.add(
        "Opening a session (create + connect + disconnect, no pool) and releasing them all:\n\n"
        + stats_table([("open one idle session", Stats.of(open_ms))])
        + f"\n\nReleasing all {len(open_ms)}: {release_s:.1f} s."
    )
    for cp in checkpoints:
        if cp.browser_processes != cp.chromium_processes:
            report.notes.append(
                f"at {cp.sessions} sessions, {cp.browser_processes} processes were counted as the sessions' "
                f"but {cp.chromium_processes} Chromium processes were running"
            )
    last = checkpoints[-1]
    pss = Stats.of([m.pss / MB for m in last.per_session])
    report.targets += [
        Target(
            f"idle PSS per session at {last.sessions} sessions",
            pss.median,
            130.0,
            "MB",
            f"median over {last.sessions} sessions (total / count: "
            f"{num(sum(m.pss for m in last.per_session) / MB / last.sessions, 'MB')})",
        ),
        Target(
            f"server RSS per session at {last.sessions} sessions",
            (last.server_rss - rss_before) / MB / last.sessions,
            2.0,
            "MB",
            "(RSS after - RSS before) / sessions",
        ),
    ]


def run() -> Report:
    return run_timed("density", "4. Density: memory per idle session", measure)


if __name__ == "__main__":
    run_alone(run)
