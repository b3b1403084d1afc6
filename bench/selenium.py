"""Selenium through browserfleet against chromedriver driving a local Chromium directly, in one run.

- New session: `webdriver.Remote` with an API key alone (the command creates the browserfleet session,
  takes a pooled browser and starts its chromedriver) against `webdriver.Chrome` (a local chromedriver
  launching its own Chromium), each until the driver is ready, then quit. Paced 1 s apart.
- Command round trip: the same commands (`title`, `execute_script("return 1")`, `find_element`) on one
  open session of each, alternating, many times.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.client_config import ClientConfig
from selenium.webdriver.remote.remote_connection import RemoteConnection

from bench.common import (
    CHROMIUM,
    DIRECT_ARGS,
    Deadline,
    Report,
    Stats,
    Target,
    create_session,
    default_pool_size,
    ratio,
    run_alone,
    run_timed,
    scaled,
    serving,
    site,
    stats_table,
    table,
    times,
)

N_SESSIONS = scaled(15)
N_COMMANDS = scaled(300)
PACE_S = 1.0
BUDGET_S = 300.0
CHROMEDRIVER = "/usr/bin/chromedriver"


# Like the direct Chromium, the sessions record nothing: what is compared is the WebDriver path.
UNRECORDED = {"browserSettings": {"recordSession": False}}


def _remote(url: str, headers: dict[str, str]) -> webdriver.Remote:
    options = Options()
    options.set_capability("bb:options", UNRECORDED)  # used by a new-session command that creates one
    config = ClientConfig(remote_server_addr=url, extra_headers=headers, timeout=60)
    return webdriver.Remote(command_executor=RemoteConnection(client_config=config), options=options)


def _direct(tmp: Path) -> webdriver.Chrome:
    """chromedriver launching its own Chromium; their temp dirs go in `tmp` (removed after the run)."""
    options = Options()
    options.binary_location = CHROMIUM
    for arg in DIRECT_ARGS:
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, env={**os.environ, "TMPDIR": str(tmp)})
    return webdriver.Chrome(service=service, options=options)


def _timed(start: Callable[[], webdriver.Remote]) -> tuple[float, webdriver.Remote]:
    t0 = time.perf_counter()
    driver = start()
    return (time.perf_counter() - t0) * 1000, driver


def _commands(driver: webdriver.Remote) -> dict[str, Callable[[], object]]:
    return {
        "title": lambda: driver.title,
        "execute_script": lambda: driver.execute_script("return 1"),
        "find_element": lambda: driver.find_element(By.TAG_NAME, "h1"),
    }


def _measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    pool = default_pool_size()
    starts: dict[str, list[float]] = {"browserfleet (Remote, API key)": [], "direct (local chromedriver)": []}
    trips: dict[str, dict[str, list[float]]] = {}
    with (
        site() as base,
        serving(notes=report.notes) as server,
        tempfile.TemporaryDirectory(prefix="bench-selenium-") as scratch,
    ):
        tmp = Path(scratch)
        page = f"{base}/index.html"
        fleet_url, fleet_headers = f"{server.url}/webdriver", {"x-bb-api-key": server.api_key}
        for driver in (_remote(fleet_url, fleet_headers), _direct(tmp)):  # warm-up: caches, pool refill
            driver.quit()
        short_waits = 0
        for _ in range(N_SESSIONS):
            if deadline.expired:
                report.notes.append("time budget spent during new-session")
                break
            for label, start in (
                ("browserfleet (Remote, API key)", lambda: _remote(fleet_url, fleet_headers)),
                ("direct (local chromedriver)", lambda: _direct(tmp)),
            ):
                if not server.wait_for_browsers(pool, timeout=10):
                    short_waits += 1
                time.sleep(PACE_S)
                ms, driver = _timed(start)
                driver.quit()
                starts[label].append(ms)
        if short_waits:
            report.notes.append(
                f"{short_waits} new-session commands began before the pool was full again (10 s wait)"
            )
        with server.client() as http:
            made = create_session(http, **UNRECORDED)
        drivers = {
            "browserfleet, API key": _remote(fleet_url, fleet_headers),
            "browserfleet, signing key": _remote(
                made["seleniumRemoteUrl"], {"x-bb-signing-key": made["signingKey"]}
            ),
            "direct": _direct(tmp),
        }
        try:
            for driver in drivers.values():
                driver.get(page)
            for label, driver in drivers.items():
                trips[label] = {name: [] for name in _commands(driver)}
            for _ in range(N_COMMANDS):
                for label, driver in drivers.items():
                    for name, call in _commands(driver).items():
                        t0 = time.perf_counter()
                        call()
                        trips[label][name].append((time.perf_counter() - t0) * 1000)
        finally:
            for driver in drivers.values():
                driver.quit()
    report.add(
        f"Pool size {pool} (the default). New session: n={N_SESSIONS} each, paced {PACE_S:.0f} s, after one "
        f"warm-up; browserfleet's is one `webdriver.Remote` with an API key (it creates the session), the "
        f"direct one `webdriver.Chrome` starting `{CHROMEDRIVER}` and `{CHROMIUM}` (headless, no sandbox). "
        f"Round trips: n={N_COMMANDS} of each command on one session of each, alternating, on a local page."
    )
    start_stats = {k: Stats.of(v) for k, v in starts.items()}
    report.add("New session (until the driver is ready):\n\n" + stats_table(list(start_stats.items())))
    rows = []
    fleet_labels = [label for label in trips if label != "direct"]
    for name in trips.get("direct", {}):
        theirs = Stats.of(trips["direct"][name]).median
        row = [name, f"{theirs:.2f}"]
        for label in fleet_labels:
            ours = Stats.of(trips[label][name]).median
            row += [f"{ours:.2f}", times(ratio(ours, theirs))]
        rows.append(row)
    header = ["command", "direct"] + [x for label in fleet_labels for x in (label, "ratio")]
    report.add("Command round trip (ms, medians):\n\n" + table(header, rows))
    fleet_start, direct_start = start_stats.values()
    report.targets.append(
        Target(
            "new session / direct chromedriver launch",
            ratio(fleet_start.median, direct_start.median),
            0.5,
            "x",
            f"medians of {fleet_start.n} paced new-session commands",
        )
    )
    if trips:
        worst = max(
            ratio(Stats.of(trips[label][n]).median, Stats.of(trips["direct"][n]).median)
            for label in fleet_labels
            for n in trips["direct"]
        )
        report.targets.append(
            Target(
                "command round trip / direct chromedriver",
                worst,
                1.15,
                "x",
                f"worst ratio of medians, {len(trips['direct'])} commands, both credentials, n={N_COMMANDS}",
            )
        )


def run() -> Report:
    return run_timed(
        "selenium", "Selenium: new session and command round trips vs chromedriver direct", _measure
    )


if __name__ == "__main__":
    run_alone(run)
