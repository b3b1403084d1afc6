"""`POST /v1/fetch` against pages served by the test on 127.0.0.1: `raw` returns the response as sent,
`markdown` the rendered page, redirects are followed only when asked, a body over the limit and a page
too slow are refused, and every error is the contract's body with an `id`."""

from __future__ import annotations

import datetime
import gzip
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserbase
import httpx
import pytest
from conftest import Server, wait_for

SCRIPTED = (
    b"<!doctype html><html><head><title>Fetched</title></head><body><h1>A heading</h1>"
    b"<p>Some <b>bold</b> text and <a href='/next'>a link</a>.</p>"
    b"<script>document.body.insertAdjacentHTML('beforeend', '<p>' + 'written ' + 'by script' + '</p>')"
    b"</script></body></html>"
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


class Site(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/page":
            self._send(200, SCRIPTED, "text/html; charset=utf-8", {"X-Site": "yes"})
        elif path == "/redirect":
            self._send(302, b"<p>moved</p>", "text/html", {"Location": "/page"})
        elif path == "/latin1":
            self._send(200, "café crème".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif path == "/image":
            self._send(200, PNG, "image/png")
        elif path == "/gzip":
            self._send(200, gzip.compress(b'{"ok": true}'), "application/json", {"Content-Encoding": "gzip"})
        elif path == "/download":
            self._send(200, b"a,b\n1,2\n", "text/csv", {"Content-Disposition": "attachment; filename=x.csv"})
        elif path == "/big":
            self._send(200, b"x" * (1024 * 1024 + 1), "text/plain")
        elif path == "/slow":
            time.sleep(30)
            self._send(200, b"late", "text/plain")
        elif path == "/slowish":
            time.sleep(2)
            self._send(200, b"in time", "text/plain")
        else:
            self._send(404, b"<h1>no such page</h1>", "text/html")

    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch(server: Server, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    with server.http(key or server.api_key) as http:
        return http.post("/v1/fetch", json=body)


def test_raw_returns_the_response_as_the_site_sent_it(server: Server, pages: str) -> None:
    _, key = server.new_project("fetching", concurrency=2)
    result = server.sdk(key).fetch_api.create(url=f"{pages}/page")  # strict: the SDK's own model
    assert result.status_code == 200
    assert result.content == SCRIPTED.decode()  # unchanged: nothing of the page ran into it
    assert (result.content_type, result.encoding) == ("text/html; charset=utf-8", "utf-8")
    assert result.headers["x-site"] == "yes"
    # The fetch ran in a session of its own, ended by now; its id is the session's.
    [session] = server.sdk(key).sessions.list()
    assert (session.id, session.status) == (result.id, "COMPLETED")
    row = server.read_store(lambda store: store.session(result.id))
    assert row is not None and row.end_reason == "released by request"
    assert row.create_params == {"fetch": True, "recordSession": False, "logSession": False}


def test_markdown_is_the_rendered_page(server: Server, pages: str) -> None:
    result = server.sdk().fetch_api.create(url=f"{pages}/page", format="markdown")
    assert result.status_code == 200
    assert "# A heading" in result.content
    assert "Some **bold** text and [a link](/next)." in result.content
    assert "written by script" in result.content  # the page's script ran before the DOM was read
    assert "<script" not in result.content


def test_redirects_are_followed_only_when_asked(server: Server, pages: str) -> None:
    kept = fetch(server, {"url": f"{pages}/redirect"}).json()
    assert kept["statusCode"] == 302
    assert kept["headers"]["location"] == "/page"
    followed = fetch(server, {"url": f"{pages}/redirect", "allowRedirects": True}).json()
    assert followed["statusCode"] == 200 and followed["content"] == SCRIPTED.decode()


@pytest.mark.parametrize(
    ("path", "content", "encoding", "status"),
    [
        ("/latin1", "café crème", "iso-8859-1", 200),
        ("/image", None, "base64", 200),
        ("/gzip", '{"ok": true}', "utf-8", 200),  # decoded from its content-encoding
        ("/download", "a,b\n1,2\n", "utf-8", 200),  # an attachment is fetched, not downloaded
        ("/missing", "<h1>no such page</h1>", "utf-8", 404),  # the site's 404 is a fetch that worked
    ],
)
def test_bodies_in_their_encoding(
    server: Server, pages: str, path: str, content: str | None, encoding: str, status: int
) -> None:
    import base64

    answer = fetch(server, {"url": pages + path})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["statusCode"], result["encoding"]) == (status, encoding)
    if content is None:
        assert base64.b64decode(result["content"]) == PNG
    else:
        assert result["content"] == content


def error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"statusCode", "error", "message", "id"}
    assert body["statusCode"] == status and len(body["id"]) == 36
    return body


def test_bad_requests_and_what_is_not_offered(server: Server, pages: str) -> None:
    assert "json" in error(fetch(server, {"url": f"{pages}/page", "format": "json"}), 501)["message"]
    assert "schema" in error(fetch(server, {"url": f"{pages}/page", "schema": {}}), 400)["message"]
    for url in (
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "javascript:1",
        "/relative",
        "",
        "http://h:99999/",
    ):
        error(fetch(server, {"url": url}), 400)
    error(fetch(server, {}), 400)
    assert error(fetch(server, {"url": f"{pages}/page"}, key="bf_wrong"), 401)
    with pytest.raises(browserbase.APIStatusError) as refused:
        server.sdk(max_retries=0).fetch_api.create(url=f"{pages}/page", format="json")
    assert refused.value.status_code == 501
    assert refused.value.response.headers["x-should-retry"] == "false"


def test_the_egress_rules_hold(server: Server) -> None:
    # A private address no allow-list admits: refused before the browser tries, as the contract's 403.
    body = error(fetch(server, {"url": "http://10.255.255.1:8080/"}), 403)
    assert "may not reach 10.255.255.1:8080" in body["message"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_errors_unless_insecure_ssl_is_allowed(server: Server, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{httpd.server_address[1]}/page"
    try:
        refused = error(fetch(server, {"url": url}), 502)
        assert "ERR_CERT" in refused["message"], refused
        allowed = fetch(server, {"url": url, "allowInsecureSsl": True}).json()
        assert allowed["statusCode"] == 200 and allowed["content"] == SCRIPTED.decode()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_site_that_cannot_be_reached_is_a_502(server: Server) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        plain = error(fetch(server, {"url": f"http://127.0.0.1:{port}/"}), 502)
        tunnelled = error(fetch(server, {"url": f"https://127.0.0.1:{port}/"}), 502)
    # Plain http: the egress proxy's own answer is told apart from a site's page.
    assert f"cannot connect to 127.0.0.1:{port}" in plain["message"], plain
    assert "could not be loaded" in tunnelled["message"], tunnelled


def test_a_fetch_counts_against_the_concurrency(server: Server, pages: str) -> None:
    _, key = server.new_project("fetch-full", concurrency=1)
    held = server.sdk(key).sessions.create()
    body = error(fetch(server, {"url": f"{pages}/page"}, key), 429)
    assert "concurrent sessions" in body["message"]
    server.sdk(key).sessions.update(held.id, status="REQUEST_RELEASE")
    assert fetch(server, {"url": f"{pages}/page"}, key).status_code == 200


def test_too_large_and_too_slow(make_server: Any, pages: str) -> None:
    limits = {"BROWSERFLEET_FETCH_MAX_MB": "1", "BROWSERFLEET_FETCH_TIMEOUT": "3"}
    # A connect window shorter than a fetch: the fetch is its session's client, so the window spares it.
    limits["BROWSERFLEET_CONNECT_WINDOW"] = "1"
    srv: Server = make_server("fetch-limits", BROWSERFLEET_POOL_SIZE="1", **limits).start()
    in_time = fetch(srv, {"url": f"{pages}/slowish"})
    assert in_time.status_code == 200 and in_time.json()["content"] == "in time", in_time.text
    big = error(fetch(srv, {"url": f"{pages}/big"}), 502)
    assert "larger than the limit of 1048576 bytes" in big["message"]
    started = time.monotonic()
    slow = error(fetch(srv, {"url": f"{pages}/slow"}), 504)
    # Long before the site answers (30 s), whatever a cold launch on a busy machine took.
    assert "did not load within 3 s" in slow["message"] and time.monotonic() - started < 25
    # Both sessions ended: a refused fetch leaves nothing running.
    wait_for(lambda: srv.sdk().sessions.list(status="RUNNING") == [])
    assert {s.status for s in srv.sdk().sessions.list()} == {"COMPLETED"}
