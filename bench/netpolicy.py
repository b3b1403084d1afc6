"""What the network settings cost (docs/network-policy.md): the ad-blocking engine's build and load,
the server's pause while it loads, and page loads with and without the browser agent's interception.

Variants, in alternating rounds on one server (pool of 2): `enablePdfViewer: true` (no agent at all),
the default (the agent pauses document responses, to download PDFs), and `blockAds: true` (every
request paused and matched). Each round: create, connect, `goto` a page of 100 images and a script
(each a distinct URL) until `load`, then 100 sequential `fetch()`es of a small file from the page
(the mean of each is one sample), then `goto` the small `index.html`, release.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from playwright.sync_api import sync_playwright

from bench.common import (
    Deadline,
    Report,
    Server,
    Stats,
    create_session,
    ms_since,
    num,
    pool_env,
    release_session,
    run_alone,
    run_timed,
    scaled,
    serving,
    site,
    stats_table,
)

IMAGES = 100
FETCHES = 100  # sequential, so each one's added round trip shows
ROUNDS = scaled(8)
BUDGET_S = 240.0
MANY = "<!doctype html><title>many</title><script src='report.txt?s'></script>" + "".join(
    f"<img src='report.txt?{i}' width=1 height=1>" for i in range(IMAGES)
)
SEQUENTIAL = """async (n) => {
  const started = performance.now();
  for (let i = 0; i < n; i++) await (await fetch(`report.txt?f${i}-${Math.random()}`)).text();
  return (performance.now() - started) / n;
}"""
VARIANTS: dict[str, dict[str, Any]] = {
    "no agent (enablePdfViewer: true)": {"enablePdfViewer": True},
    "default (PDF downloads)": {},
    "blockAds: true": {"blockAds": True},
}


class Pings:
    """GET /v1/projects every 20 ms from a thread: the longest answer shows the server's event loop
    pausing (the engine load)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.server.client() as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                http.get("/v1/projects")
                self.longest = max(self.longest, ms_since(started))
                time.sleep(0.02)

    def __enter__(self) -> Pings:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def body(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    with site({"many.html": MANY}) as url, serving(pool_env(2), report.notes) as server:
        server.wait_for_browsers(2)
        with server.client() as http, sync_playwright() as pw:
            # The first blockAds session waits for the engine: build (child process) and load (here).
            with Pings(server) as pings:
                started = time.perf_counter()
                first = create_session(http, browserSettings={"blockAds": True})
                first_create = ms_since(started)
            release_session(http, first["id"])
            log = server.log.read_text(errors="replace")
            found = re.search(r"built in ([\d.]+) s, loaded in ([\d.]+) s", log)
            build_s, load_s = (float(found[1]), float(found[2])) if found else (float("nan"), float("nan"))

            creates: dict[str, list[float]] = {name: [] for name in VARIANTS}
            many: dict[str, list[float]] = {name: [] for name in VARIANTS}
            small: dict[str, list[float]] = {name: [] for name in VARIANTS}
            fetches: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for _ in range(ROUNDS):
                if deadline.expired:
                    report.notes.append("stopped early: the time budget ran out")
                    break
                for name, settings in VARIANTS.items():
                    time.sleep(1.0)  # let the pool refill
                    started = time.perf_counter()
                    made = create_session(http, browserSettings={"recordSession": False, **settings})
                    creates[name].append(ms_since(started))
                    browser = pw.chromium.connect_over_cdp(made["connectUrl"])
                    page = browser.contexts[0].pages[0]
                    started = time.perf_counter()
                    page.goto(f"{url}/many.html", wait_until="load")
                    many[name].append(ms_since(started))
                    fetches[name].append(page.evaluate(SEQUENTIAL, FETCHES))
                    started = time.perf_counter()
                    page.goto(f"{url}/index.html", wait_until="load")
                    small[name].append(ms_since(started))
                    browser.close()
                    release_session(http, made["id"])

    report.add(
        "The ad-blocking engine (EasyList + EasyPrivacy, adblock-rust), once per server process:\n\n"
        f"- built in a child process in {num(build_s * 1000, 'ms')}, loaded (deserialised) in the server in "
        f"{num(load_s * 1000, 'ms')}\n"
        f"- the first blockAds create, which waits for both: {num(first_create, 'ms')}; the longest API "
        f"answer meanwhile (a GET every 20 ms): {num(pings.longest, 'ms')}"
    )
    report.add(
        "`POST /v1/sessions`, warm pool:\n\n" + stats_table([(n, Stats.of(v)) for n, v in creates.items()])
    )
    report.add(
        f"`goto` of a page with {IMAGES} images and a script until `load`:\n\n"
        + stats_table([(n, Stats.of(v)) for n, v in many.items()])
    )
    report.add(
        "`goto` of `index.html` until `load`:\n\n" + stats_table([(n, Stats.of(v)) for n, v in small.items()])
    )
    report.add(
        f"One `fetch()` of a small file, the mean of {FETCHES} in a row (each round one sample):\n\n"
        + stats_table([(n, Stats.of(v)) for n, v in fetches.items()])
    )
    base, blocked = Stats.of(fetches["default (PDF downloads)"]), Stats.of(fetches["blockAds: true"])
    if base.n and blocked.n:
        report.add(
            f"blockAds' interception adds {num(blocked.median - base.median, 'ms')} to a request "
            "(difference of the medians of the sequential fetches)."
        )


def run() -> Report:
    return run_timed("netpolicy", "Network settings: interception and ad blocking", body)


if __name__ == "__main__":
    run_alone(run)
