"""Gateway overhead: the same browser and page, reached directly and through browserfleet's gateway.

One keepAlive session; two Playwright clients on its page (one on the browser's own debugging port,
one on `connectUrl`), and two raw CDP WebSockets (same two routes) attached to the page with a
flattened session. Rounds alternate between the routes so drift hits both alike.

Then the CDP log tap: two more sessions created alike (`recordSession: false`) but for `logSession`,
both reached through the gateway, the same round trips and screenshots alternating between them.

The server runs with BROWSERFLEET_ISOLATE_NETWORK=false: with isolation on, each browser lives in a
network namespace of its own and its debugging port cannot be reached from the host at all, so
there would be no direct route to compare with.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    MB,
    NOISE_SIZE,
    TIMES,
    Deadline,
    Report,
    Server,
    Stats,
    Target,
    create_session,
    num,
    pool_env,
    ratio,
    release_session,
    run_alone,
    run_timed,
    scaled,
    serving,
    site,
    stats_table,
    table,
    times,
)

ROUNDS = 5
N_EVALUATE = scaled(200)  # page.evaluate per round and route
N_RAW = scaled(500)  # raw Runtime.evaluate per round and route
N_SCREENSHOTS = scaled(10)  # per format and route
BUDGET_S = 120.0
ROUTES = ("direct", "gateway")
# The CDP log comparison: two gateway sessions alike but for browserSettings.logSession.
LOG_ROUTES = ("log on", "log off")
LOG_ROUNDS = 10  # more, shorter rounds than above: the difference sought is small next to drift
LOG_EVALUATE = scaled(100)
LOG_RAW = scaled(250)
LOG_SCREENSHOTS = scaled(15)  # per client and session
# JPEG: the tap keeps at most 16 KiB of a message whatever its size, so a 1.1 MB answer takes the same
# path as a 5 MB PNG one, and its screenshots take a third of the time: more of them fit the budget.
LOG_SHOT_KINDS = (("Playwright", "jpeg"), ("raw CDP", "jpeg"))
LOG_BUDGET_S = 55.0


# -- finding the browser's debugging port ----------------------------------------------------------


def port_from_file(profile: Path) -> tuple[int, str]:
    """(port, browser path) from <profile>/user-data/DevToolsActivePort."""
    lines = (profile / "user-data" / "DevToolsActivePort").read_text().splitlines()
    return int(lines[0]), lines[1]


def ports_from_proc(pid: int) -> set[int]:
    """Ports `pid` listens on: LISTEN sockets in /proc/<pid>/net/tcp whose inode is one of its fds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


# -- raw CDP ---------------------------------------------------------------------------------------


class RawCdp:
    """A browser-level CDP WebSocket, attached (flattened) to one page target."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.session_id = ""

    async def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> Any:
        message: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session_id
        await self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result")

    async def attach_to_page(self, url_part: str) -> None:
        targets = (await self.call("Target.getTargets"))["targetInfos"]
        page = next(t for t in targets if t["type"] == "page" and url_part in t["url"])
        attached = await self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})
        self.session_id = attached["sessionId"]


async def _open_raw(url: str) -> RawCdp:
    ws = await connect(url, compression=None, max_size=None, ping_interval=None)
    return RawCdp(ws)


# -- measuring -------------------------------------------------------------------------------------


def _orders(rounds: int, routes: tuple[str, str] = ROUTES) -> list[tuple[str, str]]:
    """Which route goes first in each round: alternating."""
    return [routes if r % 2 == 0 else routes[::-1] for r in range(rounds)]


async def _evaluate_rounds(
    pages: dict[str, Page],
    deadline: Deadline,
    routes: tuple[str, str] = ROUTES,
    count: int = ROUNDS,
    per: int = N_EVALUATE,
) -> dict[str, list[list[float]]]:
    rounds: dict[str, list[list[float]]] = {route: [] for route in routes}
    for order in _orders(count, routes):
        for route in order:
            samples = []
            for _ in range(per):
                start = time.perf_counter()
                await pages[route].evaluate("1+1")
                samples.append((time.perf_counter() - start) * 1000)
            rounds[route].append(samples)
        if deadline.expired:
            break
    return rounds


async def _raw_rounds(
    raw: dict[str, RawCdp],
    deadline: Deadline,
    routes: tuple[str, str] = ROUTES,
    count: int = ROUNDS,
    per: int = N_RAW,
) -> dict[str, list[list[float]]]:
    rounds: dict[str, list[list[float]]] = {route: [] for route in routes}
    params = {"expression": "1+1", "returnByValue": True}
    for order in _orders(count, routes):
        for route in order:
            samples = []
            for _ in range(per):
                start = time.perf_counter()
                result = await raw[route].call("Runtime.evaluate", params, session=True)
                samples.append((time.perf_counter() - start) * 1000)
            if result["result"].get("value") != 2:
                raise RuntimeError(f"unexpected Runtime.evaluate result: {result}")
            rounds[route].append(samples)
        if deadline.expired:
            break
    return rounds


SHOT_KINDS = (("Playwright", "png"), ("Playwright", "jpeg"), ("raw CDP", "png"), ("raw CDP", "jpeg"))
ShotKey = tuple[str, str, str]  # (client, format, route)


async def _shoot(client: str, kind: str, page: Page, raw: RawCdp) -> int:
    """One full-page screenshot; returns the image size in bytes."""
    if client == "Playwright":
        return len(await page.screenshot(full_page=True, type=kind))  # type: ignore[arg-type]
    width, height = NOISE_SIZE
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    params = {"format": kind, "captureBeyondViewport": True, "clip": clip}
    result = await raw.call("Page.captureScreenshot", params, session=True)
    return len(result["data"]) * 3 // 4  # base64


async def _screenshots(
    pages: dict[str, Page],
    raw: dict[str, RawCdp],
    deadline: Deadline,
    routes: tuple[str, str] = ROUTES,
    count: int = N_SCREENSHOTS,
    kinds: tuple[tuple[str, str], ...] = SHOT_KINDS,
) -> tuple[dict[ShotKey, list[float]], dict[ShotKey, list[int]]]:
    timings: dict[ShotKey, list[float]] = {}
    sizes: dict[ShotKey, list[int]] = {}
    for order in _orders(count, routes):
        for client, kind in kinds:
            for route in order:
                start = time.perf_counter()
                size = await _shoot(client, kind, pages[route], raw[route])
                timings.setdefault((client, kind, route), []).append((time.perf_counter() - start) * 1000)
                sizes.setdefault((client, kind, route), []).append(size)
        if deadline.expired:
            break
    return timings, sizes


async def _compression(url: str) -> str:
    """What a client offering permessage-deflate (as Playwright does) gets from this endpoint."""
    async with connect(url, max_size=None, ping_interval=None) as ws:
        headers = ws.response.headers if ws.response is not None else {}
        return headers.get("Sec-WebSocket-Extensions") or "none"


async def _measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    env = pool_env(1, isolate_network="false")
    with site() as base, serving(env, notes=report.notes) as server:
        server.wait_for_browsers(1)
        with server.client() as http:
            session = create_session(http, keepAlive=True, timeout=900)
            try:
                await _with_session(report, server, session, f"{base}/noise.html", deadline)
            finally:
                release_session(http, session["id"])
            await _logging(report, server, http, f"{base}/noise.html")


async def _with_session(
    report: Report, server: Server, session: dict[str, Any], page_url: str, deadline: Deadline
) -> None:
    pid, profile = server.session_browser(session["id"])
    file_port, browser_path = port_from_file(profile)
    proc_ports = ports_from_proc(pid)
    agree = "agree" if proc_ports == {file_port} else f"disagree (/proc: {sorted(proc_ports)})"
    direct_ws = f"ws://127.0.0.1:{file_port}{browser_path}"

    async with async_playwright() as pw:
        browsers = {
            "direct": await pw.chromium.connect_over_cdp(direct_ws),
            "gateway": await pw.chromium.connect_over_cdp(session["connectUrl"]),
        }
        pages = {route: browser.contexts[0].pages[0] for route, browser in browsers.items()}
        await pages["direct"].goto(page_url)
        await pages["direct"].wait_for_function("document.title === 'ready'")
        if pages["gateway"].url != page_url:
            raise RuntimeError(f"the two clients see different pages: {pages['gateway'].url}")
        raw = {"direct": await _open_raw(direct_ws), "gateway": await _open_raw(session["connectUrl"])}
        try:
            for client in raw.values():
                await client.attach_to_page("noise.html")
            for route in ROUTES:  # warm-up, not counted
                for _ in range(20):
                    await pages[route].evaluate("1+1")
                    await raw[route].call("Runtime.evaluate", {"expression": "1+1"}, session=True)
            evaluate = await _evaluate_rounds(pages, deadline)
            raw_rounds = await _raw_rounds(raw, deadline)
            shots, sizes = await _screenshots(pages, raw, deadline)
        finally:
            for client in raw.values():
                await client.ws.close()
            for browser in browsers.values():
                await browser.close()

    compression = {
        "direct": await _compression(direct_ws),
        "gateway": await _compression(session["connectUrl"]),
    }
    report.add(
        "**Network isolation was off for this run** (`BROWSERFLEET_ISOLATE_NETWORK=false`): with it on, "
        "each browser runs in a network namespace of its own and its debugging port is unreachable from "
        "the host, so there is no direct route to compare with. The gateway's relay is the same code "
        "either way; with isolation on, its socket to the browser is opened inside the browser's "
        "namespace."
    )
    report.add(
        f"One keepAlive session with default settings (the CDP log and the screencast recording on; "
        f"browser pid {pid}). Its debugging port, read from "
        f"`<profile>/user-data/DevToolsActivePort`: {file_port}; the LISTEN sockets of pid {pid} in "
        f"`/proc/{pid}/net/tcp` (matched by inode through `/proc/{pid}/fd`): {agree}. Direct clients "
        f"connect to `{direct_ws.replace(browser_path, '/devtools/browser/<id>')}`, gateway clients to "
        "`connectUrl`. Both Playwright clients drive the same page (`noise.html`, a "
        f"{NOISE_SIZE[0]}{TIMES}{NOISE_SIZE[1]} canvas of random noise)."
    )
    _round_trip_section(report, "`page.evaluate('1+1')` (Playwright)", evaluate, N_EVALUATE)
    _round_trip_section(
        report, "raw `Runtime.evaluate` (flattened session, one WebSocket)", raw_rounds, N_RAW
    )
    _screenshot_section(report, shots, sizes, compression)


def _round_trip_section(report: Report, what: str, rounds: dict[str, list[list[float]]], per: int) -> None:
    stats = {route: Stats.of([v for r in rounds[route] for v in r]) for route in ROUTES}
    medians = {route: " / ".join(num(Stats.of(r).median) for r in rounds[route]) for route in ROUTES}
    diff_median = stats["gateway"].median - stats["direct"].median
    diff_p90 = stats["gateway"].p90 - stats["direct"].p90
    report.add(
        f"**{what}**, {len(rounds['direct'])} alternating rounds of {per} per route (ms per round trip):\n\n"
        + stats_table([(route, stats[route]) for route in ROUTES])
        + "\n\n"
        + table(
            ("", "gateway - direct", "gateway / direct"),
            [
                [
                    "median",
                    num(diff_median, "ms"),
                    times(ratio(stats["gateway"].median, stats["direct"].median)),
                ],
                ["p90", num(diff_p90, "ms"), times(ratio(stats["gateway"].p90, stats["direct"].p90))],
            ],
        )
        + f"\n\nMedian of each round, direct: {medians['direct']} ms; gateway: {medians['gateway']} ms."
    )
    report.targets.append(
        Target(
            f"gateway overhead per round trip, {what}",
            diff_median,
            0.1,
            "ms",
            f"median gateway {num(stats['gateway'].median, 'ms')} - median direct "
            f"{num(stats['direct'].median, 'ms')}",
        )
    )


def _screenshot_section(
    report: Report,
    shots: dict[ShotKey, list[float]],
    sizes: dict[ShotKey, list[int]],
    compression: dict[str, str],
) -> None:
    rows = []
    diffs = []
    for client, kind in SHOT_KINDS:
        label = f"{client}, {kind.upper()}"
        size = Stats.of([s / MB for route in ROUTES for s in sizes[(client, kind, route)]])
        for route in ROUTES:
            rows.append((f"{label}, {route}", Stats.of(shots[(client, kind, route)])))
        direct, gateway = (Stats.of(shots[(client, kind, route)]) for route in ROUTES)
        diffs.append(
            [
                label,
                num(size.median, "MB"),
                num(gateway.median - direct.median, "ms"),
                times(ratio(gateway.median, direct.median)),
            ]
        )
        report.targets.append(
            Target(
                f"full-page screenshot ({label}) through the gateway no slower than direct",
                gateway.median,
                direct.median,
                "ms",
                f"median gateway vs median direct, n={gateway.n} each",
            )
        )
    report.add(
        "**Full-page screenshots**, alternating routes: Playwright `page.screenshot(full_page=True)`, "
        "and raw `Page.captureScreenshot` (captureBeyondViewport, clip = the whole canvas) on the "
        "flattened sessions above (ms):\n\n"
        + stats_table(rows)
        + "\n\n"
        + table(("screenshot", "image size (median)", "gateway - direct (median)", "gateway / direct"), diffs)
    )
    report.add(
        "WebSocket compression differs between the routes. A client offering permessage-deflate (as "
        f"Playwright does) gets, directly from Chromium: `{compression['direct']}`; from the gateway: "
        f"`{compression['gateway']}`. So Playwright's direct connection has Chromium deflate every "
        "large message (Playwright's threshold is 10 KB) and its client inflate it, while through the "
        "gateway nothing is compressed. The raw CDP rows have compression off on both routes "
        "(websockets `compression=None`): they compare the relay alone."
    )


# -- the CDP log: the same gateway, with and without it ---------------------------------------------


async def _logging(report: Report, server: Server, http: httpx.Client, page_url: str) -> None:
    """Two sessions created alike but for `logSession`, alternating rounds: what the log tap costs."""
    deadline = Deadline(LOG_BUDGET_S)
    sessions: dict[str, dict[str, Any]] = {}
    try:
        for route in LOG_ROUTES:
            settings = {"logSession": route == "log on", "recordSession": False}
            sessions[route] = create_session(http, keepAlive=True, timeout=900, browserSettings=settings)
        server.wait_for_browsers(len(sessions) + 1)  # both sessions' browsers and the refilled pool
        async with async_playwright() as pw:
            browsers = {
                route: await pw.chromium.connect_over_cdp(session["connectUrl"])
                for route, session in sessions.items()
            }
            pages = {route: browser.contexts[0].pages[0] for route, browser in browsers.items()}
            raw: dict[str, RawCdp] = {}
            try:
                for page in pages.values():
                    await page.goto(page_url)
                    await page.wait_for_function("document.title === 'ready'")
                for route, session in sessions.items():
                    raw[route] = await _open_raw(session["connectUrl"])
                    await raw[route].attach_to_page("noise.html")
                for route in LOG_ROUTES:  # warm-up, not counted
                    for _ in range(20):
                        await pages[route].evaluate("1+1")
                        await raw[route].call("Runtime.evaluate", {"expression": "1+1"}, session=True)
                evaluate = await _evaluate_rounds(pages, deadline, LOG_ROUTES, LOG_ROUNDS, LOG_EVALUATE)
                raw_rounds = await _raw_rounds(raw, deadline, LOG_ROUTES, LOG_ROUNDS, LOG_RAW)
                shots, sizes = await _screenshots(
                    pages, raw, deadline, LOG_ROUTES, LOG_SCREENSHOTS, LOG_SHOT_KINDS
                )
            finally:
                for client in raw.values():
                    await client.ws.close()
                for browser in browsers.values():
                    await browser.close()
        async with server.async_client() as api:
            entries = {
                route: len((await api.get(f"/v1/sessions/{session['id']}/logs")).json())
                for route, session in sessions.items()
            }
    finally:
        for session in sessions.values():
            release_session(http, session["id"])
    _logging_section(report, evaluate, raw_rounds, shots, sizes, entries, deadline)


def _logging_section(
    report: Report,
    evaluate: dict[str, list[list[float]]],
    raw_rounds: dict[str, list[list[float]]],
    shots: dict[ShotKey, list[float]],
    sizes: dict[ShotKey, list[int]],
    entries: dict[str, int],
    deadline: Deadline,
) -> None:
    on, off = LOG_ROUTES
    measured: list[tuple[str, list[float], list[float]]] = [
        (
            "raw `Runtime.evaluate`",
            [v for r in raw_rounds[on] for v in r],
            [v for r in raw_rounds[off] for v in r],
        ),
        (
            "Playwright `page.evaluate('1+1')`",
            [v for r in evaluate[on] for v in r],
            [v for r in evaluate[off] for v in r],
        ),
    ]
    for client, kind in LOG_SHOT_KINDS:
        size = Stats.of([s / MB for route in LOG_ROUTES for s in sizes[(client, kind, route)]]).median
        measured.append(
            (
                f"{client} full-page {kind.upper()} screenshot ({num(size, 'MB')})",
                shots[(client, kind, on)],
                shots[(client, kind, off)],
            )
        )
    rows = []
    for what, with_log, without in measured:
        a, b = Stats.of(with_log), Stats.of(without)
        rows.append(
            [
                what,
                f"{a.n} / {b.n}",
                num(a.median, "ms"),
                num(b.median, "ms"),
                num(a.median - b.median, "ms"),
                times(ratio(a.median, b.median)),
                num(a.p90 - b.p90, "ms"),
            ]
        )

    def round_medians(rounds: dict[str, list[list[float]]], route: str) -> str:
        return " / ".join(num(Stats.of(r).median) for r in rounds[route])

    report.add(
        "**The CDP log tap** (`browserSettings.logSession`, on by default). Two more keepAlive sessions "
        "on the same server, created alike (`recordSession: false` in both, so no screencast runs and "
        "adds noise) except `logSession`: true in one, false in the other. Each has its own Playwright "
        "client and raw CDP WebSocket through `connectUrl`, on `noise.html`; rounds alternate between "
        f"the two sessions ({len(raw_rounds[on])} rounds of {LOG_RAW} raw and {len(evaluate[on])} of "
        f"{LOG_EVALUATE} Playwright round trips per session, then {LOG_SCREENSHOTS} alternating "
        "screenshots of each kind; this comparison took "
        f"{time.monotonic() - deadline.end + deadline.seconds:.0f} s in all). The log tap copies the "
        "head of each message (at most 16 KiB), so a screenshot's answer is where a copy per message "
        "would show; JPEG rather than PNG because that work does not grow past 16 KiB and a JPEG "
        "screenshot takes a third of the time, so more fit the budget. The two sessions are two "
        "browsers (same binary, flags and page): a difference also holds whatever differs between two "
        "Chromium instances.\n\n"
        + table(
            (
                "ms per round trip",
                "n (on / off)",
                "log on (median)",
                "log off (median)",
                "on - off",
                "on / off",
                "on - off (p90)",
            ),
            rows,
        )
        + f"\n\nMedian of each round, raw `Runtime.evaluate`, log on: {round_medians(raw_rounds, on)} ms; "
        f"log off: {round_medians(raw_rounds, off)} ms. Playwright, log on: {round_medians(evaluate, on)} "
        f"ms; log off: {round_medians(evaluate, off)} ms. Entries in each session's CDP log "
        f"(`GET /v1/sessions/{{id}}/logs`) afterwards: log on {entries[on]:,}, log off {entries[off]:,}."
    )
    if deadline.expired:
        report.notes.append(
            f"the CDP log comparison ran out of its {LOG_BUDGET_S:.0f} s budget: rounds left out"
        )


def run() -> Report:
    return run_timed("gateway", "3. Gateway overhead", lambda report: asyncio.run(_measure(report)))


if __name__ == "__main__":
    run_alone(run)
