"""Node.js clients, unmodified, against the server: the Browserbase Node SDK, Playwright and Puppeteer.

Each script in tests/node prints one JSON line of what it saw; these tests assert on it. The npm packages
come from tests/node/package-lock.json (`make node-deps`); missing node or packages fail the tests, never
skip them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Server

NODE_DIR = Path(__file__).resolve().parent / "node"
PACKAGES = ("@browserbasehq/sdk", "playwright-core", "puppeteer-core")


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not on PATH: install Node.js (>= 20) to run the Node client tests")
    missing = [p for p in PACKAGES if not (NODE_DIR / "node_modules" / p / "package.json").exists()]
    if missing:
        pytest.fail(
            f"npm packages missing in {NODE_DIR}/node_modules: {', '.join(missing)}; run `make node-deps` "
            "(cd tests/node && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund)"
        )
    return path


def run_script(
    node: str, script: str, server: Server, site: str, api_key: str | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROWSERBASE_")}
    env |= {
        "BF_URL": server.url,
        "BF_WS": server.ws_url,
        "BF_API_KEY": api_key or server.api_key,
        "SITE_URL": site,
        "BF_SCRIPT_TIMEOUT_MS": "80000",
    }
    try:
        result = subprocess.run(
            [node, script], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=90
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} timed out; stderr:\n{exc.stderr}")
    assert result.returncode == 0, (
        f"{script} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    lines = result.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing; stderr:\n{result.stderr}"
    print(f"{script}: {lines[-1]}")  # shown by pytest when an assertion below fails
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def test_sdk_create_then_playwright_connect_over_cdp(node: str, server: Server, site: str) -> None:
    out = run_script(node, "sdk_playwright.mjs", server, site)
    assert out["createdStatus"] == "RUNNING"
    assert out["connectUrl"].startswith(server.ws_url + "/")
    assert out["keepAlive"] is False
    assert out["contexts"] >= 1 and out["pages"] >= 1
    assert out["indexTitle"] == "Museum of Local Art"
    assert out["title"] == "Tickets | Museum of Local Art"
    assert out["heading"] == "Tickets"
    assert out["url"] == f"{site}/tickets.html"
    assert out["listedRunning"] is True
    assert out["finalStatus"] == "COMPLETED"
    assert out["endedAt"]
    assert out["listed"] is True and out["listedCompleted"] is True


def test_puppeteer_connect_creates_session_implicitly(node: str, server: Server, site: str) -> None:
    # A project of its own: the script finds its implicit session as the one new RUNNING session.
    _project_id, key = server.new_project("node-puppeteer", concurrency=2)
    out = run_script(node, "puppeteer_connect.mjs", server, site, api_key=key)
    visit = out["wsEndpoint"]
    assert visit["pages"] >= 1
    assert visit["heading"] == "Museum of Local Art"
    assert visit["title"] == "Museum of Local Art"
    assert visit["finalStatus"] == "COMPLETED"
    with server.http(key) as http:
        row = http.get(f"/v1/sessions/{visit['sessionId']}").json()
    assert row["status"] == "COMPLETED"
    # puppeteer.connect({browserURL}) drops the query string when it fetches /json/version, so an apiKey there
    # never reaches the server: a client-side limitation, documented rather than worked around. If a Puppeteer
    # release starts keeping the query, this fails and the variant should be asserted like the one above.
    assert out["browserURL"]["connected"] is False, out["browserURL"]
    assert "/json/version" in out["browserURL"]["error"]
    assert "Unauthorized" in out["browserURL"]["error"]


def test_keep_alive_session_survives_disconnect_and_resumes(node: str, server: Server, site: str) -> None:
    out = run_script(node, "keepalive.mjs", server, site)
    assert out["keepAlive"] is True
    assert out["firstUrl"] == f"{site}/tickets.html?visit=1"
    assert out["statusAfterDisconnect"] == "RUNNING"
    assert out["resumedPages"] >= 1
    assert out["resumedUrl"] == out["firstUrl"]
    assert out["resumedTitle"] == "Tickets | Museum of Local Art"
    assert out["cookie"] == out["sessionId"]
    assert out["statusAfterSecondDisconnect"] == "RUNNING"
    assert out["releasedStatus"] == "COMPLETED"
    assert out["finalStatus"] == "COMPLETED"
    assert "410" in out["reconnectAfterRelease"]
    assert out["releasedAgainStatus"] == "COMPLETED"


def test_concurrency_limit_raises_rate_limit_error(node: str, server: Server, site: str) -> None:
    _project_id, key = server.new_project("node-rate-limit", concurrency=1)
    out = run_script(node, "rate_limit.mjs", server, site, api_key=key)
    assert out["errorClass"] == "RateLimitError"
    assert out["isRateLimitError"] is True and out["isAPIError"] is True
    assert out["status"] == 429
    assert out["message"].startswith("429 ")
    assert out["retryAfter"] is not None and 1 <= int(out["retryAfter"]) <= 60
    assert out["rateLimitLimit"] == "1"
    assert out["rateLimitRemaining"] == "0"
    assert out["releasedStatus"] == "COMPLETED"
    assert out["thirdStatus"] == "RUNNING"
