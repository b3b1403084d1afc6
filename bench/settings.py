"""What launch-time and applied settings cost: create and lifecycle (create → connect → goto →
release) p50 for a default session, one with a context, one with an extension, one with a fingerprint.

A context or an extension is a launch-time setting (its browser starts cold, with the profile filled
first); a fingerprint is applied over CDP to a pooled browser. Each variant runs paced (1 s apart) on one
server with the default pool, in the order default → fingerprint → extension → context, so the pool is
full before each warm one. The context was persisted once (a login cookie and localStorage) before its
sessions read it (`persist: false`).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from typing import Any

import httpx
from playwright.async_api import Playwright, async_playwright

from bench.common import (
    Deadline,
    Report,
    Stats,
    default_pool_size,
    run_alone,
    run_timed,
    scaled,
    serving,
    site,
    stats_table,
)

N = scaled(15)
PACE_S = 1.0
BUDGET_S = 300.0

FINGERPRINT = {
    "browsers": ["chrome"],
    "devices": ["desktop"],
    "operatingSystems": ["windows"],
    "locales": ["de-DE"],
    "screen": {"minWidth": 1280, "maxWidth": 1920, "minHeight": 720, "maxHeight": 1080},
}


def extension_zip() -> bytes:
    """A minimal MV3 extension with a content script."""
    manifest = {
        "manifest_version": 3,
        "name": "bench extension",
        "version": "1.0",
        "content_scripts": [{"matches": ["<all_urls>"], "js": ["content.js"]}],
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr("content.js", "document.documentElement.dataset.bench = '1';")
    return out.getvalue()


async def _cycle(
    pw: Playwright, http: httpx.AsyncClient, page_url: str, body: dict[str, Any]
) -> dict[str, float]:
    t0 = time.perf_counter()
    response = await http.post("/v1/sessions", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"create failed: {response.status_code} {response.text[:300]}")
    session = response.json()
    t1 = time.perf_counter()
    browser = await pw.chromium.connect_over_cdp(session["connectUrl"])
    page = browser.contexts[0].pages[0]
    await page.goto(page_url)
    released = await http.post(f"/v1/sessions/{session['id']}", json={"status": "REQUEST_RELEASE"})
    if released.status_code != 200:
        raise RuntimeError(f"release failed: {released.status_code} {released.text[:300]}")
    t2 = time.perf_counter()
    await browser.close()
    return {"create": (t1 - t0) * 1000, "total": (t2 - t0) * 1000}


async def _saved_context(pw: Playwright, http: httpx.AsyncClient, page_url: str) -> str:
    """A context with a cookie and localStorage in it, persisted by one session."""
    context_id = (await http.post("/v1/contexts", json={})).raise_for_status().json()["id"]
    body = {"browserSettings": {"context": {"id": context_id, "persist": True}}}
    session = (await http.post("/v1/sessions", json=body)).raise_for_status().json()
    browser = await pw.chromium.connect_over_cdp(session["connectUrl"])
    page = browser.contexts[0].pages[0]
    await page.goto(page_url)
    await page.evaluate("document.cookie = 'login=yes; max-age=86400'; localStorage.setItem('user', 'bench')")
    await http.post(f"/v1/sessions/{session['id']}", json={"status": "REQUEST_RELEASE"})
    await browser.close()
    # The save happens as the session ends; a create with the context waits for nothing, so give it time.
    for _ in range(100):
        sessions = (await http.get("/v1/sessions", params={"status": "RUNNING"})).json()
        if not sessions:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    return str(context_id)


async def _measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    pool = default_pool_size()
    results: dict[str, dict[str, list[float]]] = {}
    with site() as base, serving(notes=report.notes) as server:
        page_url = f"{base}/index.html"
        async with async_playwright() as pw, server.async_client() as http:
            extension = await http.post(
                "/v1/extensions", files={"file": ("bench.zip", extension_zip(), "application/zip")}
            )
            extension_id = extension.raise_for_status().json()["id"]
            context_id = await _saved_context(pw, http, page_url)
            variants: dict[str, dict[str, Any]] = {
                "default": {},
                "fingerprint": {"browserSettings": {"fingerprint": FINGERPRINT}},
                "extension": {"extensionId": extension_id},
                "context (read)": {"browserSettings": {"context": {"id": context_id, "persist": False}}},
            }
            for label, body in variants.items():
                server.wait_for_browsers(pool, timeout=60)
                await _cycle(pw, http, page_url, body)  # warm-up, not counted
                samples: dict[str, list[float]] = {"create": [], "total": []}
                for _ in range(N):
                    if deadline.expired:
                        report.notes.append(f"time budget spent during {label!r}")
                        break
                    await asyncio.sleep(PACE_S)
                    for stage, value in (await _cycle(pw, http, page_url, body)).items():
                        samples[stage].append(value)
                results[label] = samples
    report.add(
        f"Pool size {pool} (the default); each variant paced {PACE_S:.0f} s apart, n={N} after one "
        "warm-up. `create` is `POST /v1/sessions` until its answer; `lifecycle` adds connect_over_cdp, "
        "goto of a local page and the release."
    )
    report.add("Create:\n\n" + stats_table([(k, Stats.of(v["create"])) for k, v in results.items()]))
    report.add("Lifecycle:\n\n" + stats_table([(k, Stats.of(v["total"])) for k, v in results.items()]))


def run() -> Report:
    return run_timed("settings", "Sessions with settings: default, fingerprint, extension, context", _run)


def _run(report: Report) -> None:
    asyncio.run(_measure(report))


if __name__ == "__main__":
    run_alone(run)
