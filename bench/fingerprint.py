"""What fingerprints cost: `POST /v1/sessions` for the default session, one with only a viewport (what
Stagehand sends) and one with a full fingerprint request, warm pool, paced; then in one session of each,
how long Playwright's `new_page()` takes (a tab the agent pauses until its overrides are set) and
`new_page()` + `goto` of a local page. Generation alone (drawing and mapping a fingerprint, no browser)
is timed in-process.

With `BENCH_BASELINE=<another tree>/src`, a second server runs that tree's code (before fingerprints: no
agent), and every create and tab alternates between the two, so both see the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import httpx
from playwright.async_api import async_playwright

from bench.common import (
    Deadline,
    Report,
    Stats,
    default_pool_size,
    ms_since,
    run_alone,
    run_timed,
    scaled,
    serving,
    site,
    stats_table,
)

N_CREATE = scaled(30)
N_TABS = scaled(20)
N_DRAW = scaled(500)
PACE_S = 1.0
BUDGET_S = 400.0
BASELINE = os.environ.get("BENCH_BASELINE", "")
VARIANTS: dict[str, dict[str, Any]] = {
    "default session (no settings)": {},
    "viewport only (1288x711, as Stagehand sends)": {
        "browserSettings": {"viewport": {"width": 1288, "height": 711}}
    },
    "os mac + locales de-DE + viewport": {
        "browserSettings": {
            "os": "mac",
            "viewport": {"width": 1288, "height": 711},
            "fingerprint": {"locales": ["de-DE"]},
        }
    },
}


def generation() -> Stats | None:
    """Drawing and mapping one fingerprint in-process (None on a tree without browsers/fingerprint.py)."""
    try:
        from browserfleet.browsers import fingerprint
        from browserfleet.browsers.spec import AppliedSpec, Viewport
    except ImportError:
        return None
    applied = AppliedSpec(os="mac", viewport=Viewport(1288, 711), fingerprint={"locales": ["de-DE"]})
    samples = []
    for i in range(N_DRAW + 20):
        start = time.perf_counter()
        fingerprint.check(applied)
        fingerprint.generate(fingerprint.wanted(applied), "Chrome/156.0.8078.114")
        if i >= 20:  # warm-up: the caches of the first draws
            samples.append(ms_since(start))
    return Stats.of(samples)


async def tabs(connect_urls: dict[str, str], page_url: str) -> dict[str, tuple[list[float], list[float]]]:
    """`new_page()` and `new_page()` + `goto` times in one session per server, alternating between them."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in connect_urls}
    async with async_playwright() as pw:
        browsers = {name: await pw.chromium.connect_over_cdp(url) for name, url in connect_urls.items()}
        for _ in range(N_TABS):
            for name, browser in browsers.items():
                start = time.perf_counter()
                page = await browser.contexts[0].new_page()
                out[name][0].append(ms_since(start))
                await page.goto(page_url)
                out[name][1].append(ms_since(start))
                await page.close()
        for browser in browsers.values():
            await browser.close()
    return out


def measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    pool = default_pool_size()
    trees: dict[str, dict[str, str]] = {"this tree": {}}
    if BASELINE:
        trees["baseline"] = {"PYTHONPATH": f"{BASELINE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    creates: dict[str, list[float]] = {f"{label}, {tree}": [] for label in VARIANTS for tree in trees}
    new_tab: dict[str, list[float]] = {}
    tab_goto: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(site())
        running = {tree: stack.enter_context(serving(env, notes=report.notes)) for tree, env in trees.items()}
        for server in running.values():
            server.wait_for_browsers(pool)
        clients = {
            tree: stack.enter_context(httpx.Client(base_url=s.url, headers=s.headers, timeout=60))
            for tree, s in running.items()
        }
        for label, body in VARIANTS.items():
            last: dict[str, dict[str, Any]] = {}
            for i in range(N_CREATE + 1):
                if deadline.expired:
                    break
                for tree, http in clients.items():  # alternating: both see the same machine
                    start = time.perf_counter()
                    response = http.post("/v1/sessions", json=body)
                    elapsed = ms_since(start)
                    if response.status_code != 201:
                        raise RuntimeError(f"create failed: {response.status_code} {response.text[:300]}")
                    session = response.json()
                    if i:  # the first is a warm-up
                        creates[f"{label}, {tree}"].append(elapsed)
                    if i == N_CREATE:
                        last[tree] = session
                    else:
                        http.post(f"/v1/sessions/{session['id']}", json={"status": "REQUEST_RELEASE"})
                time.sleep(PACE_S)
            if len(last) == len(clients):
                measured = asyncio.run(
                    tabs({t: s["connectUrl"] for t, s in last.items()}, f"{base}/index.html")
                )
                for tree, (opened, loaded) in measured.items():
                    new_tab[f"{label}, {tree}"], tab_goto[f"{label}, {tree}"] = opened, loaded
            for tree, session in last.items():
                clients[tree].post(f"/v1/sessions/{session['id']}", json={"status": "REQUEST_RELEASE"})
    compared = f" and on `{BASELINE}` (baseline), alternating request by request" if BASELINE else ""
    report.add(
        f"Warm pool of {pool}, creates {PACE_S:.0f} s apart (the first of each variant not counted), on "
        f"this tree's server{compared}. In the last session of each variant, {N_TABS} tabs opened one "
        "after another with Playwright (`connect_over_cdp`, then `context.new_page()`, `goto` of "
        "`tests/site/index.html`, `close`)."
    )
    report.add("`POST /v1/sessions` (ms):\n\n" + stats_table([(k, Stats.of(v)) for k, v in creates.items()]))
    report.add("`context.new_page()` (ms):\n\n" + stats_table([(k, Stats.of(v)) for k, v in new_tab.items()]))
    report.add(
        "`context.new_page()` + `goto` (ms):\n\n"
        + stats_table([(k, Stats.of(v)) for k, v in tab_goto.items()])
    )
    drawn = generation()
    if drawn is not None:
        report.add(
            f"Checking and drawing one fingerprint in-process (os mac, de-DE, viewport; {drawn.n} after a "
            "warm-up of 20; ms):\n\n" + stats_table([("check + generate", drawn)])
        )


def run() -> Report:
    return run_timed("fingerprint", "Fingerprint cost", measure)


if __name__ == "__main__":
    run_alone(run)
