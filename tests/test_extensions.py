"""Extensions: the zip checks, the `/v1/extensions` API, and an uploaded MV3 extension in a real browser.

The browser tests run on a server of their own with the default egress rules (no loopback): its pages
reach the test site only as `ext.test` (an egress host map and allow-list entry), so what an extension
reaches on this host it reaches through the route pinned for it, and nothing else.
"""

from __future__ import annotations

import asyncio
import io
import json
import stat
import statistics
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from conftest import Server, wait_for

from browserfleet.artifacts import zips
from browserfleet.artifacts.extensions import chromium_id, manifest_of
from browserfleet.browsers.addresses import EgressRules, HostAddresses
from browserfleet.browsers.egress import EgressProxy, Pin, PinnedPeers
from browserfleet.errors import InvalidRequest
from browserfleet.gateway.policy import Policy

MANIFEST = {
    "manifest_version": 3,
    "name": "Probe",
    "version": "1.2.3",
    "host_permissions": ["<all_urls>"],
    "background": {"service_worker": "worker.js"},
    "content_scripts": [{"matches": ["<all_urls>"], "js": ["content.js"], "run_at": "document_start"}],
}
FILES = {
    "worker.js": "globalThis.probeWorker = 'up';",
    "content.js": "document.documentElement.dataset.probe = 'ran';",
    "page.html": "<!doctype html><title>probe page</title>",
}


def make_zip(members: dict[str, str | bytes], *, unix_modes: dict[str, int] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = (unix_modes or {}).get(name)
            if mode is not None:
                info.create_system = 3
                info.external_attr = mode << 16
            archive.writestr(info, content)
    return out.getvalue()


def extension_zip(manifest: dict[str, Any] | None = None, **extra: str) -> bytes:
    return make_zip({"manifest.json": json.dumps(manifest or MANIFEST), **FILES, **extra})


# -- the zip and manifest checks ------------------------------------------------------------------


def bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(MANIFEST))
        archive.writestr("zeros.bin", b"\x00" * (64 * 1024 * 1024))  # 64 MiB in ~64 KiB
    return out.getvalue()


def many_members() -> bytes:
    return make_zip({"manifest.json": json.dumps(MANIFEST), **{f"f{i}.txt": "" for i in range(10_001)}})


BAD_ZIPS: list[tuple[str, Any, str]] = [
    ("not a zip", lambda: b"just some text, not an archive", "not a valid zip"),
    ("empty", lambda: b"", "not a valid zip"),
    ("no manifest", lambda: make_zip(FILES), "no manifest.json at its root"),
    (
        "manifest in a folder",
        lambda: make_zip({"probe/manifest.json": json.dumps(MANIFEST)}),
        "there is one at 'probe/manifest.json'",
    ),
    ("manifest not JSON", lambda: make_zip({"manifest.json": "{name: probe"}), "not valid JSON"),
    ("manifest a list", lambda: make_zip({"manifest.json": "[]"}), "must hold a JSON object"),
    (
        "manifest without a name",
        lambda: extension_zip({**MANIFEST, "name": ""}),
        "has no name",
    ),
    (
        "manifest version 2",
        lambda: extension_zip({**MANIFEST, "manifest_version": 2}),
        "manifest_version is 2",
    ),
    (
        "missing service worker",
        lambda: extension_zip({**MANIFEST, "background": {"service_worker": "gone.js"}}),
        "names 'gone.js', which is not in the zip",
    ),
    ("path traversal", lambda: extension_zip(**{"../evil.js": "x"}), "path traversal"),
    ("nested traversal", lambda: extension_zip(**{"a/../../evil.js": "x"}), "path traversal"),
    ("absolute path", lambda: extension_zip(**{"/etc/evil.js": "x"}), "absolute path"),
    ("backslash", lambda: extension_zip(**{"..\\evil.js": "x"}), "backslash"),
    (
        "symbolic link",
        lambda: make_zip(
            {"manifest.json": json.dumps(MANIFEST), **FILES, "link": "/etc/passwd"},
            unix_modes={"link": stat.S_IFLNK | 0o777},
        ),
        "is a symbolic link",
    ),
    (
        "device",
        lambda: make_zip(
            {"manifest.json": json.dumps(MANIFEST), **FILES, "dev": ""},
            unix_modes={"dev": stat.S_IFCHR | 0o666},
        ),
        "not a regular file",
    ),
    ("zip bomb (ratio)", bomb, "compressed over 200 to 1"),
    ("too many members", many_members, "at most 10000 are allowed"),
]


@pytest.mark.parametrize("case, data, complaint", BAD_ZIPS, ids=[case for case, _, _ in BAD_ZIPS])
def test_each_bad_zip_is_refused_saying_which_rule(case: str, data: Any, complaint: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        manifest_of(data())
    assert complaint in refused.value.message, (case, refused.value.message)


def test_a_zip_bomb_by_total_size_is_refused_and_extract_writes_only_under_its_dest(tmp_path: Path) -> None:
    data = make_zip({"manifest.json": json.dumps(MANIFEST), **{f"{i}.bin": b"a" * 1000 for i in range(20)}})
    with pytest.raises(zips.UnsafeZip, match="unpacks to over"):
        zips.check(data, zips.ZipLimits(max_total_bytes=10_000))
    dest = tmp_path / "out"
    zips.extract(extension_zip(), dest)
    written = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert written == sorted(["manifest.json", *FILES])
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in dest.iterdir())
    with pytest.raises(zips.UnsafeZip, match="traversal"):
        zips.extract(extension_zip(**{"../x": "y"}), tmp_path / "other")
    assert not (tmp_path / "x").exists()


def test_a_good_extension_passes_and_its_chromium_id_is_chromiums() -> None:
    manifest = manifest_of(extension_zip())
    assert (manifest.name, manifest.version, manifest.key) == ("Probe", "1.2.3", None)
    # Chromium's id of an unpacked extension at /tmp/extx/ext (read from Extensions.getExtensions).
    assert chromium_id("/tmp/extx/ext") == "oodngpnoooflibjkaknomoniodcfgdpe"


OWN, OTHER = "a" * 32, "b" * 32


@pytest.mark.parametrize(
    "url, allowed",
    [
        (f"chrome-extension://{OWN}/page.html", True),
        (f"chrome-extension://{OWN}", True),
        (f"chrome-extension://{OTHER}/page.html", False),
        (f"chrome-extension://{OWN}@{OTHER}/page.html", False),
        (f"chrome-extension://%61{OWN[1:]}/page.html", False),
        (f"CHROME-EXTENSION://{OTHER}/page.html", False),
        ("chrome://version", False),
        ("devtools://devtools/bundled/inspector.html", False),
        ("about:blank", True),
    ],
)
def test_the_policy_opens_only_the_sessions_own_extension_pages(url: str, allowed: bool) -> None:
    policy = Policy("/d", "/u", frozenset({OWN}))
    out = policy.apply(
        json.dumps({"id": 1, "method": "Target.createTarget", "params": {"url": url}}).encode()
    )
    assert (out is None) is allowed, out
    # Navigating a tab there stays refused (only new targets may open an extension's page).
    nav = policy.apply(json.dumps({"id": 2, "method": "Page.navigate", "params": {"url": url}}).encode())
    assert (nav is None) is url.startswith("about:"), nav


def test_the_policy_passes_only_the_read_only_extensions_method() -> None:
    policy = Policy("/d", "/u", frozenset({OWN}))
    for method in ("Extensions.loadUnpacked", "Extensions.uninstall", "Extensions.getStorageItems"):
        out = policy.apply(json.dumps({"id": 1, "method": method, "params": {"id": OWN}}).encode())
        assert out is not None and b"browserfleet: " in out, method
    assert policy.apply(b'{"id":1,"method":"Extensions.getExtensions","params":{}}') is None


# -- the pinned route, in this process --------------------------------------------------------------


def test_a_pinned_route_reaches_exactly_its_host_and_port_and_registers_its_connections() -> None:
    async def main() -> tuple[bytes, bytes, bytes, bool, bool]:
        seen: list[tuple[str, int]] = []
        peers = PinnedPeers()

        async def gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            seen.append(peer)
            await reader.readuntil(b"\r\n\r\n")  # the gateway looks once the request is in, as here
            known = peers.proxy_of(peer) is proxy
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                + (b"known" if known else b"other")
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(gateway, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy = EgressProxy(EgressRules(host_addresses=HostAddresses(lambda: frozenset())))
        proxy.pinned[("gateway.test", 4242)] = Pin(("127.0.0.1", port), peers)
        await proxy.start_in(None, port=0)

        async def ask(data: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(data)
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer

        try:
            pinned = await ask(b"GET http://GATEWAY.test:4242/json/version HTTP/1.1\r\nHost: x\r\n\r\n")
            other_port = await ask(b"CONNECT gateway.test:4243 HTTP/1.1\r\n\r\n")
            by_address = await ask(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n".encode())
            for _ in range(200):  # refused clients linger up to a second
                if proxy.connections == 0:
                    break
                await asyncio.sleep(0.02)
            open_after = len(peers) > 0
        finally:
            await proxy.close()
            server.close()
        return pinned, other_port, by_address, open_after, len(seen) == 1

    pinned, other_port, by_address, open_after, once = run(main())
    assert pinned.startswith(b"HTTP/1.1 200") and pinned.endswith(b"known"), pinned
    assert other_port.startswith(b"HTTP/1.1 502"), other_port  # gateway.test resolves to nothing here
    assert by_address.startswith(b"HTTP/1.1 403") and b"loopback" in by_address, by_address
    assert once and not open_after  # only the pinned request arrived; its registration is gone with it


# -- the API ----------------------------------------------------------------------------------------


def upload(client: httpx.Client, data: bytes, name: str = "probe.zip") -> httpx.Response:
    return client.post("/v1/extensions", files={"file": (name, data, "application/zip")})


def test_upload_retrieve_delete(server: Server) -> None:
    with server.client() as client:
        created = upload(client, extension_zip())
        assert created.status_code == 200, created.text
        body = created.json()
        assert set(body) == {"id", "createdAt", "updatedAt", "fileName", "projectId"}
        assert body["fileName"] == "probe.zip"
        got = client.get(f"/v1/extensions/{body['id']}")
        assert got.status_code == 200 and got.json() == body
        assert client.delete(f"/v1/extensions/{body['id']}").status_code == 204
        for answer in (
            client.get(f"/v1/extensions/{body['id']}"),
            client.delete(f"/v1/extensions/{body['id']}"),
        ):
            assert answer.status_code == 404 and answer.json()["statusCode"] == 404
        assert client.get("/v1/extensions/not-a-uuid").status_code == 404


def test_the_sdk_round_trip_parses_strictly(server: Server) -> None:
    sdk = server.sdk()
    extension = sdk.extensions.create(file=("probe.zip", extension_zip()))
    assert sdk.extensions.retrieve(extension.id).file_name == "probe.zip"
    sdk.extensions.delete(extension.id)


@pytest.mark.parametrize("case, data, complaint", BAD_ZIPS[:3] + BAD_ZIPS[9:10] + BAD_ZIPS[15:16])
def test_bad_uploads_are_400_saying_which(server: Server, case: str, data: Any, complaint: str) -> None:
    with server.client() as client:
        answer = upload(client, data())
    assert answer.status_code == 400, (case, answer.text)
    assert complaint in answer.json()["message"] and answer.json()["error"] == "Bad Request"


def test_uploads_that_are_not_one_zip_in_field_file(server: Server) -> None:
    with server.client() as client:
        no_field = client.post("/v1/extensions", files={"other": ("x.zip", extension_zip())})
        not_multipart = client.post("/v1/extensions", content=extension_zip())
        too_large = client.post(
            "/v1/extensions",
            files={"file": ("big.zip", b"\x00" * (100 * 1024 * 1024 + 1))},
        )
    assert no_field.status_code == 400 and "'file'" in no_field.json()["message"]
    assert not_multipart.status_code == 400 and "multipart" in not_multipart.json()["message"]
    assert too_large.status_code == 413 and "100 MB" in too_large.json()["message"]


def test_another_projects_extension_is_not_found(server: Server) -> None:
    _project, key = server.new_project("extensions-other")
    with server.client() as client:
        mine = upload(client, extension_zip()).json()["id"]
    with server.http(key) as other:
        assert other.get(f"/v1/extensions/{mine}").status_code == 404
        assert other.delete(f"/v1/extensions/{mine}").status_code == 404
        for body in ({"extensionId": mine}, {"browserSettings": {"extensionId": mine}}):
            answer = other.post("/v1/sessions", json=body)
            assert answer.status_code == 404 and mine in answer.json()["message"], answer.text
    with server.client() as client:
        assert client.get(f"/v1/extensions/{mine}").status_code == 200
        client.delete(f"/v1/extensions/{mine}")


def test_create_with_an_unknown_or_deleted_extension_is_404(server: Server) -> None:
    with server.client() as client:
        gone = upload(client, extension_zip()).json()["id"]
        client.delete(f"/v1/extensions/{gone}")
        for ident in (gone, "0b5a2a35-0000-4000-8000-000000000000", "nonsense"):
            for body in ({"extensionId": ident}, {"browserSettings": {"extensionId": ident}}):
                answer = client.post("/v1/sessions", json=body)
                assert answer.status_code == 404, answer.text
                assert f"Extension {ident} not found" in answer.json()["message"]


# -- in a real browser ------------------------------------------------------------------------------

SITE_NAME = "ext.test"


@pytest.fixture(scope="module")
def strict(suite_root: Path, site: str) -> Iterator[Server]:
    """Default egress rules (no loopback); the site reachable as ext.test only."""
    site_port = urlsplit(site).port
    srv = Server(
        suite_root / "extensions",
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


def site_page(site: str, path: str = "index.html") -> str:
    return f"http://{SITE_NAME}:{urlsplit(site).port}/{path}"


class Cdp:
    """A raw CDP client with flat sessions (what Stagehand's own client does)."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self.socket.send(json.dumps(message))
        while True:
            answer = json.loads(await asyncio.wait_for(self.socket.recv(), 30))
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']['message']}")
                return answer["result"]
            self.events.append(answer)

    async def evaluate(self, expression: str, session: str) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(
                result["exceptionDetails"].get("exception", {}).get("description", "exception")
            )
        return result["result"].get("value")

    async def page(self, url: str) -> str:
        """A new tab at `url`, attached: its session id, once it has loaded."""
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))[
            "sessionId"
        ]
        await self.send("Page.navigate", {"url": url}, session)
        for _ in range(100):
            if await self.evaluate("document.readyState", session) == "complete":
                return str(session)
            await asyncio.sleep(0.05)
        raise AssertionError(f"{url} did not load")

    async def service_worker(self, extension: str) -> str:
        for _ in range(100):
            infos = (await self.send("Target.getTargets"))["targetInfos"]
            for info in infos:
                if info["type"] == "service_worker" and info["url"].startswith(
                    f"chrome-extension://{extension}/"
                ):
                    attached = await self.send(
                        "Target.attachToTarget", {"targetId": info["targetId"], "flatten": True}
                    )
                    return str(attached["sessionId"])
            await asyncio.sleep(0.1)
        raise AssertionError("no service worker")


@asynccontextmanager
async def cdp(url: str) -> AsyncIterator[Cdp]:
    async with websockets.connect(url, max_size=None, compression=None) as socket:
        yield Cdp(socket)


def run(coro: Any) -> Any:
    from harness.server import run_async

    return run_async(lambda: coro)


def dial(url: str) -> str:
    return f"""new Promise((resolve) => {{
        const ws = new WebSocket({json.dumps(url)});
        ws.onopen = () => ws.send(JSON.stringify({{id: 1, method: "Browser.getVersion"}}));
        ws.onmessage = (e) => {{ globalThis.kept = ws; resolve(JSON.parse(e.data).result.product); }};
        ws.onerror = () => resolve("error");
    }})"""


def listed(extensions: dict[str, Any], name: str) -> dict[str, Any]:
    found = [e for e in extensions["extensions"] if e["name"] == name]
    assert len(found) == 1, extensions
    return found[0]


def test_an_uploaded_extension_runs_in_the_session_and_survives_its_deletion(
    strict: Server, site: str
) -> None:
    sdk = strict.sdk()
    extension = sdk.extensions.create(file=("probe.zip", extension_zip()))
    session = sdk.sessions.create(extension_id=extension.id)

    async def check() -> tuple[dict[str, Any], str, str]:
        async with cdp(session.connect_url) as client:
            extensions = await client.send("Extensions.getExtensions")
            page = await client.page(site_page(site))
            before = await client.evaluate("document.documentElement.dataset.probe", page)
            sdk.extensions.delete(extension.id)  # while the session runs with it
            later = await client.page(site_page(site, "tickets.html"))
            after = await client.evaluate("document.documentElement.dataset.probe", later)
            return extensions, before, after

    extensions, before, after = run(check())
    probe = listed(extensions, "Probe")
    assert probe["enabled"] is True and probe["version"] == "1.2.3"
    assert before == "ran" and after == "ran"
    sdk.sessions.update(session.id, status="REQUEST_RELEASE")


def test_the_extension_reaches_its_own_session_and_nothing_else(strict: Server, site: str) -> None:
    """From inside the browser: the connectUrl works (and does not keep the session alive); another
    session's connectUrl, the REST API, another port of this host and the same port by name do not."""
    sdk = strict.sdk()
    extension = sdk.extensions.create(file=("probe.zip", extension_zip()))
    session = sdk.sessions.create(extension_id=extension.id)
    other = sdk.sessions.create()
    with httpx.Client() as plain:
        assert plain.get(f"{strict.url}/v1/projects").status_code == 401  # from outside: only unauthenticated

    def fetch(url: str) -> str:
        return f"fetch({json.dumps(url)}).then(r => String(r.status), e => 'error: ' + e.message)"

    async def from_inside() -> dict[str, Any]:
        async with cdp(session.connect_url) as client:
            ident = listed(await client.send("Extensions.getExtensions"), "Probe")["id"]
            worker = await client.service_worker(ident)
            out = {
                "own": await client.evaluate(dial(session.connect_url), worker),
                "other": await client.evaluate(dial(other.connect_url), worker),
                "api": await client.evaluate(fetch(f"{strict.url}/v1/projects"), worker),
                "by name": await client.evaluate(
                    fetch(f"http://localhost:{strict.port}/v1/projects"), worker
                ),
                "site port": await client.evaluate(fetch(f"http://127.0.0.1:{urlsplit(site).port}/"), worker),
                "own page": (
                    await client.send("Target.createTarget", {"url": f"chrome-extension://{ident}/page.html"})
                )["targetId"],
            }
            for url in (f"chrome-extension://{'p' * 32}/page.html", "chrome://version"):
                try:
                    await client.send("Target.createTarget", {"url": url})
                    out[url] = "opened"
                except RuntimeError as exc:
                    out[url] = str(exc)
        return out

    out = run(from_inside())
    assert out["own"].startswith("HeadlessChrome/") or out["own"].startswith("Chrome/"), out
    assert out["other"] == "error", out
    assert out["api"] == "403" and out["by name"] == "403" and out["site port"] == "403", out
    assert out["own page"]
    assert "browserfleet: Target.createTarget" in out[f"chrome-extension://{'p' * 32}/page.html"]
    assert "browserfleet: Target.createTarget" in out["chrome://version"]
    # The outside client left: the session ends although its extension's own socket was still open.
    wait_for(lambda: sdk.sessions.retrieve(session.id).status == "COMPLETED", timeout=15)
    sdk.sessions.update(other.id, status="REQUEST_RELEASE")
    sdk.extensions.delete(extension.id)


def test_an_extension_chromium_will_not_load_is_a_400_at_create(strict: Server) -> None:
    """It passes the upload's checks, but Chromium refuses its match pattern: never a session without it."""
    bad = {**MANIFEST, "content_scripts": [{"matches": ["not a pattern"], "js": ["content.js"]}]}
    with strict.client() as client:
        ident = upload(client, extension_zip(bad)).json()["id"]
        answer = client.post("/v1/sessions", json={"extensionId": ident})
        assert answer.status_code == 400, answer.text
        assert "Chromium did not load the session's extension" in answer.json()["message"]
        client.delete(f"/v1/extensions/{ident}")
    assert not strict.browser_pids()


def test_an_extension_session_starts_in_time(strict: Server) -> None:
    """Create (launch cold, unpack, load) to an answered CDP command, three times: the median is printed."""
    sdk = strict.sdk()
    extension = sdk.extensions.create(file=("probe.zip", extension_zip()))
    times: dict[str, list[float]] = {"cold, no extension": [], "with an extension": []}
    for _ in range(3):
        for kind, ident in (("cold, no extension", None), ("with an extension", extension.id)):
            started = time.perf_counter()
            session = sdk.sessions.create(extension_id=ident) if ident else sdk.sessions.create()

            async def ready(url: str = session.connect_url) -> None:
                async with cdp(url) as client:
                    await client.send("Browser.getVersion")

            run(ready())
            times[kind].append(time.perf_counter() - started)
            sdk.sessions.update(session.id, status="REQUEST_RELEASE")
    sdk.extensions.delete(extension.id)
    for kind, seconds in times.items():
        print(f"{kind}: create → first CDP answer, median {statistics.median(seconds) * 1000:.0f} ms")
    assert statistics.median(times["with an extension"]) < 10


def test_without_network_isolation_the_extensions_own_origin_marks_it_inside(make_server: Any) -> None:
    """No egress proxy, so no pinned route: the Origin Chromium gives the extension's socket tells it
    apart, and the session still ends when the last client from outside leaves."""
    srv = make_server(
        "extensions-shared-net", BROWSERFLEET_ISOLATE_NETWORK="false", BROWSERFLEET_POOL_SIZE="0"
    )
    srv.start()
    sdk = srv.sdk()
    extension = sdk.extensions.create(file=("probe.zip", extension_zip()))
    session = sdk.sessions.create(extension_id=extension.id)

    async def from_inside() -> str:
        async with cdp(session.connect_url) as client:
            ident = listed(await client.send("Extensions.getExtensions"), "Probe")["id"]
            worker = await client.service_worker(ident)
            return str(await client.evaluate(dial(session.connect_url), worker))

    assert run(from_inside()) != "error"
    wait_for(lambda: sdk.sessions.retrieve(session.id).status == "COMPLETED", timeout=15)
    sdk.extensions.delete(extension.id)
