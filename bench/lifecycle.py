"""Session lifecycle: create → connect → goto → release, against a direct cold launch of Chromium.

browserfleet (default pool size, network isolation as the host allows):
- paced: sequential, ~1 s between iterations, so the warm pool has refilled before each create;
- back-to-back: sequential with no pause, so creates can outrun the pool's refill (one launch at a time);
- 5 at a time: five clients, each running its share of the n=50 iterations back to back.

Direct: Playwright `launch` of the same Chromium binary → `new_page` → `goto` → `close`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from playwright.async_api import Playwright, async_playwright

from bench.common import (
    CHROMIUM,
    DIRECT_ARGS,
    Deadline,
    Report,
    Server,
    Stats,
    Target,
    default_pool_size,
    num,
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

N_SEQUENTIAL = scaled(50)
N_CONCURRENT = scaled(50)
CONCURRENCY = 5
N_DIRECT = scaled(30)
PACE_S = 1.0
SLOW_CREATE_MS = 150.0
BUDGET_S = 300.0

STAGES = ("create", "connect", "goto", "release", "total")
DIRECT_STAGES = ("launch", "new_page", "goto", "close", "total")


@dataclass
class Variant:
    label: str
    stages: tuple[str, ...]
    samples: dict[str, list[float]] = field(default_factory=dict)
    wall_s: float = 0.0
    planned: int = 0
    ready_before: list[int] = field(default_factory=list)  # idle browsers with their port open

    def add(self, sample: dict[str, float]) -> None:
        for stage, value in sample.items():
            self.samples.setdefault(stage, []).append(value)

    def stats(self, stage: str) -> Stats:
        return Stats.of(self.samples.get(stage, []))

    @property
    def done(self) -> int:
        return len(self.samples.get("total", []))


async def _cycle(pw: Playwright, http: httpx.AsyncClient, page_url: str) -> dict[str, float]:
    t0 = time.perf_counter()
    response = await http.post("/v1/sessions", json={})
    if response.status_code != 201:
        raise RuntimeError(f"create failed: {response.status_code} {response.text[:300]}")
    session = response.json()
    t1 = time.perf_counter()
    browser = await pw.chromium.connect_over_cdp(session["connectUrl"])
    page = browser.contexts[0].pages[0]
    t2 = time.perf_counter()
    await page.goto(page_url)
    t3 = time.perf_counter()
    released = await http.post(f"/v1/sessions/{session['id']}", json={"status": "REQUEST_RELEASE"})
    if released.status_code != 200:
        raise RuntimeError(f"release failed: {released.status_code} {released.text[:300]}")
    t4 = time.perf_counter()
    await browser.close()  # already disconnected by the release; frees Playwright's side
    return {
        "create": (t1 - t0) * 1000,
        "connect": (t2 - t1) * 1000,
        "goto": (t3 - t2) * 1000,
        "release": (t4 - t3) * 1000,
        "total": (t4 - t0) * 1000,
    }


async def _direct(pw: Playwright, page_url: str) -> dict[str, float]:
    t0 = time.perf_counter()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=DIRECT_ARGS)
    t1 = time.perf_counter()
    page = await browser.new_page()
    t2 = time.perf_counter()
    await page.goto(page_url)
    t3 = time.perf_counter()
    await browser.close()
    t4 = time.perf_counter()
    return {
        "launch": (t1 - t0) * 1000,
        "new_page": (t2 - t1) * 1000,
        "goto": (t3 - t2) * 1000,
        "close": (t4 - t3) * 1000,
        "total": (t4 - t0) * 1000,
    }


async def _sequential(
    variant: Variant, pw: Playwright, server: Server, page_url: str, pace: float, deadline: Deadline
) -> None:
    async with server.async_client() as http:
        started = time.perf_counter()
        for _ in range(variant.planned):
            if deadline.expired:
                break
            variant.ready_before.append(server.ready_browsers())
            variant.add(await _cycle(pw, http, page_url))
            if pace:
                await asyncio.sleep(pace)
        variant.wall_s = time.perf_counter() - started


async def _concurrent(
    variant: Variant, pw: Playwright, server: Server, page_url: str, deadline: Deadline
) -> None:
    share = [variant.planned // CONCURRENCY + (i < variant.planned % CONCURRENCY) for i in range(CONCURRENCY)]

    async def worker(count: int) -> None:
        async with server.async_client() as http:
            for _ in range(count):
                if deadline.expired:
                    return
                variant.add(await _cycle(pw, http, page_url))

    started = time.perf_counter()
    await asyncio.gather(*(worker(count) for count in share))
    variant.wall_s = time.perf_counter() - started


async def _measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    pool = default_pool_size()
    paced = Variant(f"browserfleet, sequential paced ({PACE_S:.0f} s apart)", STAGES, planned=N_SEQUENTIAL)
    b2b = Variant("browserfleet, sequential back-to-back", STAGES, planned=N_SEQUENTIAL)
    conc = Variant(f"browserfleet, {CONCURRENCY} at a time", STAGES, planned=N_CONCURRENT)
    direct = Variant("direct cold launch", DIRECT_STAGES, planned=N_DIRECT)
    warm_counts: list[int] = []

    with site() as base, serving(notes=report.notes) as server:
        page_url = f"{base}/index.html"

        def warm() -> None:
            if not server.wait_for_browsers(pool, timeout=60):
                report.notes.append(f"the pool did not reach {pool} idle browsers within 60 s")
            warm_counts.append(server.ready_browsers())

        async with async_playwright() as pw:
            warm()
            async with server.async_client() as http:
                await _cycle(pw, http, page_url)  # warm-up, not counted
            await asyncio.sleep(PACE_S)
            warm()
            await _sequential(paced, pw, server, page_url, PACE_S, deadline)
            warm()
            await _sequential(b2b, pw, server, page_url, 0, deadline)
            warm()
            await _concurrent(conc, pw, server, page_url, deadline)
            warm()
            started = time.perf_counter()
            for _ in range(N_DIRECT):
                if deadline.expired:
                    break
                direct.add(await _direct(pw, page_url))
            direct.wall_s = time.perf_counter() - started

    _write(report, pool, warm_counts, [paced, b2b, conc], direct)


def _write(report: Report, pool: int, warm_counts: list[int], fleet: list[Variant], direct: Variant) -> None:
    report.add(
        f"Pool size: **{pool}** (the default, `browserfleet.config.default_pool_size()` on this machine); "
        f"idle browsers the server held before each variant: {warm_counts}. "
        f"Page: `tests/site/index.html` served on 127.0.0.1. Each browserfleet iteration is "
        f"`POST /v1/sessions` → `connect_over_cdp(connectUrl)` + `contexts[0].pages[0]` → `goto` → "
        f"`POST /v1/sessions/{{id}}` REQUEST_RELEASE; the direct one is Playwright `launch` of "
        f"`{CHROMIUM}` → `new_page` → `goto` → `close`. Network isolation was left to the server "
        f"(on when the host allows it, so pages load through each browser's egress proxy)."
    )
    for variant in [*fleet, direct]:
        head = (
            f"**{variant.label}**: {variant.done} of {variant.planned} iterations in {variant.wall_s:.1f} s"
        )
        if variant.done < variant.planned:
            head += " (stopped early: time budget)"
            report.notes.append(f"{variant.label}: stopped after {variant.done} iterations (time budget)")
        if variant.wall_s and variant.done:
            head += f", {variant.done / variant.wall_s:.2f} iterations/s"
        rows = [(stage, variant.stats(stage)) for stage in variant.stages]
        report.add(head + "\n\n" + stats_table(rows))
        if variant in fleet:
            slow = sum(1 for v in variant.samples.get("create", []) if v > SLOW_CREATE_MS)
            text = f"Creates slower than {SLOW_CREATE_MS:.0f} ms: {slow} of {variant.done}."
            if variant.ready_before:
                empty = sum(1 for n in variant.ready_before if n == 0)
                text += (
                    " Idle browsers with their debugging port open just before each create: "
                    f"min {min(variant.ready_before)}, median {Stats.of(variant.ready_before).median:g}; "
                    f"none before {empty} of the creates."
                )
            report.add(text)

    direct_total = direct.stats("total")
    ratios: list[list[str]] = []
    for variant in fleet:
        total = variant.stats("total")
        ratios.append(
            [
                variant.label,
                num(total.median, "ms"),
                num(direct_total.median, "ms"),
                times(ratio(total.median, direct_total.median)),
                times(ratio(total.p90, direct_total.p90)),
            ]
        )
    report.add(
        "Ratio browserfleet total / direct cold launch total:\n\n"
        + table(("variant", "median", "direct median", "ratio of medians", "ratio of p90s"), ratios)
    )
    for variant in fleet[:2]:
        total = variant.stats("total")
        report.targets.append(
            Target(
                f"lifecycle p50, {variant.label}",
                total.median,
                200.0,
                "ms",
                f"median total of {total.n}",
            )
        )
        report.targets.append(
            Target(
                f"lifecycle / direct cold launch, {variant.label}",
                ratio(total.median, direct_total.median),
                0.4,
                "x",
                f"median {num(total.median, 'ms')} / direct median {num(direct_total.median, 'ms')}",
            )
        )


def run() -> Report:
    return run_timed("lifecycle", "1. Session lifecycle", lambda report: asyncio.run(_measure(report)))


if __name__ == "__main__":
    run_alone(run)
