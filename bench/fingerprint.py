"""What fingerprints cost: `POST /v1/sessions` for the default session, one with only a viewport (what
Stagehand sends) and one with a full fingerprint request, warm pool, paced; then in one session of each,
how long Playwright's `new_page()` takes (a tab the agent pauses until its overrides are set) and
`new_page()` + `goto` of a local page. Generation alone (drawing and mapping a fingerprint, no browser)
is timed in-process.

Run it against another tree (`PYTHONPATH=<tree>/src`) to compare with a server that has no agent.
"""

from __future__ import annotations

import asyncio
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
BUDGET_S = 300.0
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


async def tabs(connect_url: str, page_url: str) -> tuple[list[float], list[float]]:
    new_page: list[float] = []
    with_goto: list[float] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.connect_over_cdp(connect_url)
        context = browser.contexts[0]
        for _ in range(N_TABS):
            start = time.perf_counter()
            page = await context.new_page()
            new_page.append(ms_since(start))
            await page.goto(page_url)
            with_goto.append(ms_since(start))
            await page.close()
        await browser.close()
    return new_page, with_goto


def measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    pool = default_pool_size()
    creates: dict[str, list[float]] = {label: [] for label in VARIANTS}
    new_tab: dict[str, list[float]] = {}
    tab_goto: dict[str, list[float]] = {}
    with site() as base, serving(notes=report.notes) as server:
        server.wait_for_browsers(pool)
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as http:
            for label, body in VARIANTS.items():
                for i in range(N_CREATE + 1):
                    if deadline.expired:
                        break
                    start = time.perf_counter()
                    response = http.post("/v1/sessions", json=body)
                    elapsed = ms_since(start)
                    if response.status_code != 201:
                        raise RuntimeError(f"create failed: {response.status_code} {response.text[:300]}")
                    session = response.json()
                    if i:  # the first is a warm-up
                        creates[label].append(elapsed)
                    if i == N_CREATE:
                        new_tab[label], tab_goto[label] = asyncio.run(
                            tabs(session["connectUrl"], f"{base}/index.html")
                        )
                    http.post(f"/v1/sessions/{session['id']}", json={"status": "REQUEST_RELEASE"})
                    time.sleep(PACE_S)
    report.add(
        f"Warm pool of {pool}, creates {PACE_S:.0f} s apart (the first of each variant not counted). In "
        f"the last session of each variant, {N_TABS} tabs opened one after another with Playwright "
        "(`connect_over_cdp`, then `context.new_page()`, `goto` of `tests/site/index.html`, `close`)."
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
