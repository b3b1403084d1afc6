"""The per-session disk quota (BROWSERFLEET_SESSION_DISK_MB): downloads and uploads together. A
download that would pass it is cancelled in the browser (or deleted, if it finished first), an upload
that would is refused with 413, and nothing of either is left on disk. Real Chromium, real HTTP."""

from __future__ import annotations

import http.server
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Server, session_browser, wait_for

KIB = 1024
SMALL = 200 * KIB
BIG = 3 * 1024 * KIB
STREAMED = 8 * 1024 * KIB
PAGE = b"""<!doctype html><title>downloads</title>
<a id="small" href="/small.bin" download>small</a>
<a id="big" href="/big.bin" download>big</a>
<a id="stream" href="/stream.bin" download>stream</a>"""


class Files(http.server.BaseHTTPRequestHandler):
    """A page of download links: a small and a big file with their sizes, and one of unknown size."""

    protocol_version = "HTTP/1.1"
    streamed = 0  # bytes of /stream.bin written before the browser hung up (or all of them)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/":
            self._send(PAGE, "text/html")
        elif self.path == "/small.bin":
            self._send(b"s" * SMALL, "application/octet-stream")
        elif self.path == "/big.bin":
            self._send(b"b" * BIG, "application/octet-stream")
        elif self.path == "/stream.bin":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for _ in range(STREAMED // (64 * KIB)):
                    self.wfile.write(b"10000\r\n" + b"x" * (64 * KIB) + b"\r\n")
                    self.wfile.flush()
                    type(self).streamed += 64 * KIB
                    time.sleep(0.02)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            self.close_connection = True
        else:
            self.send_error(404)

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


@pytest.fixture
def files_site() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def downloads_total(srv: Server, session_id: str) -> int:
    with srv.http(srv.api_key) as http:
        return int(http.get("/v1/downloads", params={"sessionId": session_id}).json()["total"])


def download(page: Any, link: str) -> str | None:
    """Click a download link; Playwright's failure reason (None: it completed)."""
    with page.expect_download() as started:
        page.click(link)
    return started.value.failure()  # type: ignore[no-any-return]


def test_downloads_and_uploads_share_the_sessions_disk_quota(
    make_server: Any, files_site: str, playwright: Any
) -> None:
    srv: Server = make_server("quota", BROWSERFLEET_SESSION_DISK_MB="1", BROWSERFLEET_POOL_SIZE="1").start()
    session = srv.sdk().sessions.create(keep_alive=True)
    folder = srv.data_dir / "sessions" / session.id
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(files_site)

    # Under the quota: saved.
    assert download(page, "#small") is None
    wait_for(lambda: downloads_total(srv, session.id) == 1)
    # Announced as larger than what is left: cancelled in the browser.
    assert download(page, "#big") == "canceled"
    # Of unknown size: cancelled once what arrived passes the quota, long before the end.
    assert download(page, "#stream") == "canceled"
    assert 0 < Files.streamed < STREAMED / 2, Files.streamed
    # The browser removed what it had written of them (and saved nothing).
    _, profile = session_browser(srv, session.id)
    wait_for(lambda: sum(p.stat().st_size for p in (profile / "downloads").rglob("*") if p.is_file()) == 0)
    # In a browser context a client made, too (Browser.cancelDownload needs its id).
    other = browser.new_context()
    other_page = other.new_page()
    other_page.goto(files_site)
    assert download(other_page, "#big") == "canceled"
    other.close()

    with srv.http(srv.api_key) as http:
        uploads = f"/v1/sessions/{session.id}/uploads"
        # 200 KiB downloaded + 900 KiB > 1 MiB: refused whole, by its Content-Length or as it streams.
        refused = http.post(uploads, files={"file": ("too-much.bin", b"u" * (900 * KIB))})
        assert refused.status_code == 413, refused.text
        body = refused.json()
        assert body["statusCode"] == 413 and "upload quota" in body["message"], body

        def chunks() -> Iterator[bytes]:
            boundary = b"--bf-quota-boundary"
            yield (
                boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="streamed.bin"\r\n\r\n'
            )
            for _ in range(90):
                yield b"v" * (10 * KIB)
            yield b"\r\n" + boundary + b"--\r\n"

        streamed = http.post(
            uploads,
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=bf-quota-boundary"},
        )
        assert streamed.status_code == 413 and "upload quota" in streamed.json()["message"], streamed.text
        assert sorted(p.name for p in (folder / "uploads").iterdir()) == []  # no partial file left

        # 200 + 500 KiB fit; sending the same name again replaces it, so it still fits.
        for _ in range(2):
            fits = http.post(uploads, files={"file": ("notes.bin", b"n" * (500 * KIB))})
            assert fits.status_code == 200, fits.text

    # 200 + 500 + 200 KiB fit; one more small download does not (cancelled, or deleted if it finished).
    assert download(page, "#small") is None
    wait_for(lambda: downloads_total(srv, session.id) == 2)
    download(page, "#small")
    time.sleep(1)
    assert downloads_total(srv, session.id) == 2
    browser.close()

    with srv.http(srv.api_key) as http:
        archive = zipfile.ZipFile(io.BytesIO(http.get(f"/v1/sessions/{session.id}/downloads").content))
        names = sorted(archive.namelist())
        assert len(names) == 2 and all(n.startswith("small-") for n in names), names
        assert all(len(archive.read(n)) == SMALL for n in names)
    assert len(list((folder / "downloads").iterdir())) == 2
    assert [p.name for p in (folder / "uploads").iterdir()] == ["notes.bin"]
    srv.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


def test_the_default_quota_is_sized_to_the_disk(tmp_path: Any) -> None:
    from browserfleet.config import Settings, default_session_disk_mb

    expected = default_session_disk_mb(tmp_path / "not-yet" / "made")  # the nearest existing parent counts
    assert 1 <= expected <= 10 * 1024
    quota = Settings(data_dir=tmp_path).session_disk_quota()
    assert quota is not None and abs(quota // (1024 * 1024) - expected) <= 2  # free space moves a little
    assert Settings(data_dir=tmp_path, session_disk_mb=0).session_disk_quota() is None
    assert Settings(data_dir=tmp_path, session_disk_mb=5).session_disk_quota() == 5 * 1024 * 1024
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path, session_disk_mb=-1)
