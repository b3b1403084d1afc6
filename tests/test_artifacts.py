"""What a session leaves behind, through the API: downloads, uploads, CDP logs, debug URLs, video
replays and their MP4 export, CPU and memory. Real Chromium, real clients."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import websockets
from conftest import SITE, Server, wait_for


def in_thread(coro: Any) -> Any:
    with ThreadPoolExecutor(1) as thread:  # the sync Playwright fixture holds this thread's loop
        return thread.submit(asyncio.run, coro).result()


def release(server: Server, session_id: str) -> None:
    server.sdk().sessions.update(session_id, status="REQUEST_RELEASE")


def downloads_total(server: Server, session_id: str) -> int:
    with server.http(server.api_key) as http:
        return int(http.get("/v1/downloads", params={"sessionId": session_id}).json()["total"])


# -- downloads -----------------------------------------------------------------------------------


def test_downloads_by_link_and_attribute_are_zipped_with_their_bytes(
    server: Server, site: str, playwright: Any
) -> None:
    bb = server.sdk()
    session = bb.sessions.create(keep_alive=True)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/download.html")
    with page.expect_download():
        page.click("#dl")  # the `download` attribute
    with page.expect_download():
        page.click("#bin")  # a plain link to a file the browser does not show
    wait_for(lambda: downloads_total(server, session.id) == 2)

    # During the session, through the SDK: a zip named as Browserbase names them.
    archive = zipfile.ZipFile(io.BytesIO(bb.sessions.downloads.list(session.id).read()))
    names = sorted(archive.namelist())
    assert re.fullmatch(r"data-\d{13}\.bin", names[0]), names
    assert re.fullmatch(r"report-\d{13}\.txt", names[1]), names
    assert archive.read(names[0]) == (SITE / "data.bin").read_bytes()
    assert archive.read(names[1]) == (SITE / "report.txt").read_bytes()
    browser.close()
    release(server, session.id)

    # After the session: still there, with metadata, bytes and checksums.
    with server.http(server.api_key) as http:
        listing = http.get("/v1/downloads", params={"sessionId": session.id, "mimeType": "text/plain"}).json()
        assert listing["total"] == 1 and listing["limit"] == 20 and listing["offset"] == 0
        report = listing["downloads"][0]
        assert report["filename"] == "report.txt" and report["sessionId"] == session.id
        expected = (SITE / "report.txt").read_bytes()
        assert report["size"] == len(expected)
        assert report["checksum"] == hashlib.sha256(expected).hexdigest()
        assert http.get(f"/v1/downloads/{report['id']}").json() == report
        raw = http.get(f"/v1/downloads/{report['id']}", headers={"Accept": "application/octet-stream"})
        assert raw.content == expected
        # Another project sees none of it.
        _, other_key = server.new_project("downloads-outsider")
        assert (
            http.get(f"/v1/downloads/{report['id']}", headers={"X-BB-API-Key": other_key}).status_code == 404
        )
        assert (
            http.get(f"/v1/sessions/{session.id}/downloads", headers={"X-BB-API-Key": other_key}).status_code
            == 404
        )
        # Bad queries are 400s.
        assert http.get("/v1/downloads").status_code == 400
        assert http.get("/v1/downloads", params={"sessionId": session.id, "limit": "500"}).status_code == 400
        # One deleted, then all.
        assert http.delete(f"/v1/downloads/{report['id']}").status_code == 204
        assert http.get(f"/v1/downloads/{report['id']}").status_code == 404
        assert downloads_total(server, session.id) == 1
        assert http.delete(f"/v1/sessions/{session.id}/downloads").status_code == 204
        empty = http.get(f"/v1/sessions/{session.id}/downloads")
        assert empty.headers["content-type"] == "application/zip"
        assert zipfile.ZipFile(io.BytesIO(empty.content)).namelist() == []
    assert list((server.data_dir / "sessions" / session.id / "downloads").iterdir()) == []


def test_a_client_chosen_relative_download_path_lands_in_the_session(server: Server, site: str) -> None:
    """Stagehand and the Browserbase examples send downloadPath "downloads"; it means the session's folder."""
    session = server.sdk().sessions.create()

    async def go() -> None:
        async with websockets.connect(session.connect_url, compression=None, max_size=None) as ws:
            answers: dict[int, Any] = {}

            async def call(number: int, method: str, params: dict[str, Any], on: str | None = None) -> Any:
                message: dict[str, Any] = {"id": number, "method": method, "params": params}
                if on is not None:
                    message["sessionId"] = on
                await ws.send(json.dumps(message))
                while number not in answers:
                    answer = json.loads(await ws.recv())
                    if "id" in answer:
                        answers[answer["id"]] = answer
                return answers[number]["result"]

            behavior = {"behavior": "allow", "downloadPath": "downloads", "eventsEnabled": True}
            await call(1, "Browser.setDownloadBehavior", behavior)
            target = (await call(2, "Target.createTarget", {"url": f"{site}/download.html"}))["targetId"]
            on = (await call(3, "Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
            found = {"expression": "!!document.getElementById('dl')"}
            for number in range(100, 400):  # the new tab is about:blank until the page has loaded
                if (await call(number, "Runtime.evaluate", found, on))["result"].get("value"):
                    break
                await asyncio.sleep(0.05)
            click = {"expression": "document.getElementById('dl').click()", "userGesture": True}
            await call(4, "Runtime.evaluate", click, on)
            # Stay connected until it is saved: leaving at once would end the session (no keepAlive)
            # before the download has even begun.
            await asyncio.to_thread(wait_for, lambda: downloads_total(server, session.id) == 1)

    in_thread(go())
    folder = server.data_dir / "sessions" / session.id / "downloads"
    saved = [p.name for p in folder.iterdir()]
    assert len(saved) == 1 and re.fullmatch(r"report-\d{13}\.txt", saved[0]), saved
    assert not (Path.cwd() / "downloads").exists()


# -- uploads -------------------------------------------------------------------------------------


def test_an_upload_feeds_a_file_input_through_playwright_and_cdp(
    server: Server, site: str, playwright: Any
) -> None:
    bb = server.sdk()
    session = bb.sessions.create()
    answer = bb.sessions.uploads.create(session.id, file=("notes.txt", b"hello from the API"))
    assert "/tmp/.uploads/notes.txt" in answer.message
    host_path = server.data_dir / "sessions" / session.id / "uploads" / "notes.txt"
    assert host_path.read_bytes() == b"hello from the API"

    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/upload.html")
    # Playwright, with the file's path on this host.
    page.set_input_files("#file", str(host_path))
    page.wait_for_function("document.getElementById('out').textContent !== ''")
    assert page.inner_text("#out") == "notes.txt:hello from the API"
    # Raw CDP, with Browserbase's documented path.
    page.reload()
    cdp = page.context.new_cdp_session(page)
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#file"})["nodeId"]
    cdp.send("DOM.setFileInputFiles", {"nodeId": node, "files": ["/tmp/.uploads/notes.txt"]})
    page.wait_for_function("document.getElementById('out').textContent !== ''")
    assert page.inner_text("#out") == "notes.txt:hello from the API"
    browser.close()


def test_uploads_refuse_bad_requests_clearly(server: Server, make_server: Any) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    with server.http(server.api_key) as http:
        path = f"/v1/sessions/{session.id}/uploads"
        assert http.post(path, content=b"not multipart").status_code == 400
        assert http.post(path, files={"other": ("a.txt", b"x")}).status_code == 400
        assert http.post("/v1/sessions/nope/uploads", files={"file": ("a.txt", b"x")}).status_code == 404
    release(server, session.id)
    with server.http(server.api_key) as http:
        ended = http.post(f"/v1/sessions/{session.id}/uploads", files={"file": ("a.txt", b"x")})
        assert ended.status_code == 410 and ended.json()["statusCode"] == 410

    small = make_server("small-uploads", BROWSERFLEET_MAX_UPLOAD_MB="1", BROWSERFLEET_POOL_SIZE="0").start()
    small_session = small.sdk().sessions.create(keep_alive=True)
    with small.http(small.api_key) as http:
        too_big = http.post(
            f"/v1/sessions/{small_session.id}/uploads", files={"file": ("big.bin", b"x" * (2 * 1024 * 1024))}
        )
        assert too_big.status_code == 413, too_big.text
        assert too_big.json()["message"].startswith("File is too large")
    uploads = small.data_dir / "sessions" / small_session.id / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []  # no partial file left
    release(small, small_session.id)


# -- CDP logs ------------------------------------------------------------------------------------


def test_logs_hold_the_navigate_the_client_sent_with_its_result(
    server: Server, site: str, playwright: Any
) -> None:
    bb = server.sdk()
    session = bb.sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/index.html")
    page.goto(f"{site}/animated.html")
    page.screenshot(full_page=True)  # 4000 px of gradient: far more than a log entry keeps
    browser.close()
    wait_for(lambda: bb.sessions.retrieve(session.id).status == "COMPLETED")

    logs = bb.sessions.logs.list(session.id)  # strict response validation: the SessionLog shape
    navigates = [log for log in logs if log.method == "Page.navigate"]
    assert len(navigates) == 2, [log.method for log in logs][:50]
    navigate = navigates[0]
    assert navigate.request is not None and navigate.response is not None
    assert navigate.request.params["url"] == f"{site}/index.html"
    assert navigate.response.result["frameId"] == navigate.frame_id
    assert navigate.page_id == 0 and navigate.session_id == session.id
    assert navigate.request.timestamp <= navigate.response.timestamp
    # A big answer (the screenshot) is kept by its size, not its bytes.
    shots = [log for log in logs if log.method == "Page.captureScreenshot"]
    assert shots and shots[0].response is not None
    assert shots[0].response.result["truncated"] is True and shots[0].response.result["size"] > 16384
    assert "truncated" in shots[0].response.raw_body
    # Page events are kept too.
    assert any(log.method == "Page.frameNavigated" for log in logs)


def test_logs_and_recording_can_be_turned_off(server: Server, site: str, playwright: Any) -> None:
    bb = server.sdk()
    session = bb.sessions.create(browser_settings={"log_session": False, "record_session": False})
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    browser.contexts[0].pages[0].goto(f"{site}/index.html")
    browser.close()
    wait_for(lambda: bb.sessions.retrieve(session.id).status == "COMPLETED")
    assert bb.sessions.logs.list(session.id) == []
    with server.http(server.api_key) as http:
        answer = http.post(f"/v1/sessions/{session.id}/recording/downloads")
        assert answer.status_code == 422, answer.text


# -- debug URLs and DevTools -----------------------------------------------------------------------


def test_debug_lists_every_tab_and_its_devtools_work(server: Server, site: str, playwright: Any) -> None:
    bb = server.sdk()
    session = bb.sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    context = browser.contexts[0]
    context.pages[0].goto(f"{site}/index.html")
    second = context.new_page()
    second.goto(f"{site}/tickets.html")

    debug = bb.sessions.debug(session.id)
    titles = [p.title for p in debug.pages]
    assert titles == ["Museum of Local Art", "Tickets | Museum of Local Art"], titles
    assert debug.pages[1].url == f"{site}/tickets.html"
    assert debug.pages[0].favicon_url == f"{site}/favicon.ico"
    assert debug.debugger_fullscreen_url == debug.pages[0].debugger_fullscreen_url
    with httpx.Client(timeout=30) as http:
        frontend = http.get(debug.pages[1].debugger_url)
        assert frontend.status_code == 200 and "<title>DevTools</title>" in frontend.text
        assert (
            http.get(debug.pages[1].debugger_url.replace("inspector.html", "../../../etc/passwd")).status_code
            == 404
        )

    socket = "ws://" + re.search(r"[?&]ws=([^&]+)", debug.pages[1].debugger_url).group(1)  # type: ignore[union-attr]

    async def evaluate(url: str, session_id: str | None = None) -> Any:
        async with websockets.connect(url, compression=None, max_size=None) as ws:
            message: dict[str, Any] = {
                "id": 1,
                "method": "Runtime.evaluate",
                "params": {"expression": "document.title"},
            }
            await ws.send(json.dumps(message))
            while True:
                answer = json.loads(await ws.recv())
                if answer.get("id") == 1:
                    return answer

    assert in_thread(evaluate(socket))["result"]["result"]["value"] == "Tickets | Museum of Local Art"

    # The browser-level wsUrl works too, and neither socket counts as a client.
    async def version() -> str:
        async with websockets.connect(debug.ws_url, compression=None, max_size=None) as ws:
            await ws.send('{"id": 1, "method": "Browser.getVersion"}')
            return str(json.loads(await ws.recv())["result"]["product"])

    assert in_thread(version()).startswith("Chrome/")
    assert bb.sessions.retrieve(session.id).status == "RUNNING"

    # Expired, read-only, foreign and garbled tokens are refused.
    short = bb.sessions.debug(session.id, extra_query={"expiresIn": 1})
    token = re.search(r"/debug/([^/]+)/devtools", short.debugger_url).group(1)  # type: ignore[union-attr]
    time.sleep(2.1)
    with httpx.Client(timeout=30) as http:
        assert http.get(short.debugger_url).status_code == 401
        read_only = bb.sessions.debug(session.id, extra_query={"readOnly": "true"})
        assert http.get(read_only.debugger_url).status_code == 403
        forged = token.replace(token.split(".")[1], str(int(time.time()) + 3600))
        assert http.get(f"{server.url}/debug/{forged}/devtools/inspector.html").status_code == 401
        assert http.get(f"{server.url}/debug/garbage/devtools/inspector.html").status_code == 401
        bad = httpx.get(
            f"{server.url}/v1/sessions/{session.id}/debug?expiresIn=0",
            headers={"X-BB-API-Key": server.api_key},
        )
        assert bad.status_code == 400
    browser.close()


# -- recording -----------------------------------------------------------------------------------


def decode(data: bytes) -> tuple[int, float]:
    """(frames, seconds) of a video, decoded frame by frame."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert stream.time_base is not None
    first, last = frames[0], frames[-1]
    assert first.pts is not None and last.pts is not None
    duration = (last.pts - first.pts) * stream.time_base + (last.duration or 0) * stream.time_base
    return len(frames), float(duration)


def test_a_scrolled_animated_session_replays_and_exports(server: Server, site: str, playwright: Any) -> None:
    bb = server.sdk()
    session = bb.sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/animated.html")
    for _ in range(3):
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(400)
    page.wait_for_timeout(800)
    with server.http(server.api_key) as http:
        running = http.post(f"/v1/sessions/{session.id}/recording/downloads")
        assert running.status_code == 409 and running.headers["x-should-retry"] == "false"
        assert http.get(f"/v1/sessions/{session.id}/recording").json() == []
    browser.close()
    wait_for(lambda: bb.sessions.retrieve(session.id).status == "COMPLETED")

    # Encodes run one at a time after their sessions: this one may wait behind the suite's others.
    wait_for(lambda: bb.sessions.replays.retrieve(session.id).page_count == 1, timeout=180)
    replay = bb.sessions.replays.retrieve(session.id).pages[0]
    with server.http(server.api_key) as http:
        recorded = http.get(f"/v1/sessions/{session.id}/pages").json()[0]
        playlist = http.get(replay.url)
    assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert "#EXT-X-ENDLIST" in playlist.text
    # A player fetches the init segment and media segments without the API key: their URLs carry a token.
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist.text).group(1)  # type: ignore[union-attr]
    segments = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
    with httpx.Client(timeout=30) as player:
        video = b"".join(player.get(url).raise_for_status().content for url in [init, *segments])
        assert player.get(segments[0].split("?")[0]).status_code == 401
        # A live-view token (here of this very session) opens no recording.
        view = re.search(r"[?&]t=([^&]+)", bb.sessions.debug(session.id).debugger_fullscreen_url)
        assert view is not None
        assert player.get(segments[0].split("?")[0] + f"?t={view.group(1)}").status_code == 401
        assert player.get(segments[0].replace(session.id, "0" * 8 + session.id[8:])).status_code in (401, 404)
    frames, seconds = decode(video)
    assert frames == recorded["frames"] and frames >= 10, recorded
    assert abs(seconds * 1000 - (replay.end_time_ms - replay.start_time_ms)) <= 150, (seconds, replay)

    bb.sessions.recording.downloads.create(session.id)
    wait_for(
        lambda: bb.sessions.recording.downloads.list(session.id).downloads[0].status == "COMPLETED",
        timeout=120,
    )
    export = bb.sessions.recording.downloads.list(session.id).downloads[0]
    assert export.page_id == "0" and export.download_url and export.completed_at
    mp4 = httpx.get(export.download_url, timeout=30).raise_for_status().content
    assert decode(mp4) == (frames, pytest.approx(seconds, abs=0.002))


# -- CPU and memory ------------------------------------------------------------------------------


def test_sampled_cpu_rises_while_a_page_burns_cpu(server: Server, site: str, playwright: Any) -> None:
    bb = server.sdk()
    session = bb.sessions.create(keep_alive=True)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/busy.html")
    page.wait_for_timeout(2500)  # idle samples first
    page.evaluate("burn(3500)")
    page.wait_for_timeout(1500)

    def samples() -> list[dict[str, Any]]:
        with server.http(server.api_key) as http:
            return list(http.get(f"/v1/sessions/{session.id}/metrics").json()["samples"])

    series = samples()
    cpu = [s["cpuPercent"] for s in series]
    assert max(cpu) >= 60, cpu  # one core busy for the whole of at least one sample
    assert min(cpu) <= 30, cpu
    assert all(s["memoryBytes"] > 20 * 1024 * 1024 for s in series), series
    raw = httpx.get(f"{server.url}/v1/sessions/{session.id}", headers={"X-BB-API-Key": server.api_key}).json()
    assert raw["avgCpuUsage"] > 0 and raw["memoryUsage"] >= max(s["memoryBytes"] for s in series)
    browser.close()
    release(server, session.id)
    usage = bb.projects.usage(raw["projectId"])
    assert usage.browser_minutes >= 1


def test_artifact_routes_need_a_key_and_hide_other_projects(server: Server) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    _, other_key = server.new_project("artifacts-outsider")
    paths = [
        "downloads",
        "logs",
        "debug",
        "recording",
        "replays",
        "replays/0",
        "recording/downloads",
        "metrics",
        "pages",
    ]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path in paths:
            url = f"/v1/sessions/{session.id}/{path}"
            assert http.get(url).status_code == 401, path
            assert http.get(url, headers={"X-BB-API-Key": other_key}).status_code == 404, path
    release(server, session.id)
