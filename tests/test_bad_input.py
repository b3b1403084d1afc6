"""Bad input gets a 4xx in the contract's error shape, never a 500 or a traceback in the server log.

Every case here answered 500 once (or stored something it should not have). One server of this module's
own, so its log holds only what these requests caused: the last test reads it. Raw sockets send what
an HTTP client would refuse to (bytes that are not UTF-8 in headers, bodies that break off).
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, browser_pids, wait_for

SHAPE = {"statusCode", "error", "message"}
UNKNOWN = "00000000-0000-4000-8000-000000000000"  # well-formed, but no session's
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.fixture(scope="module")
def srv(suite_root: Path) -> Iterator[Server]:
    server = Server(suite_root / "bad-input", env={"BROWSERFLEET_POOL_SIZE": "1"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(srv: Server) -> Iterator[httpx.Client]:
    with srv.http(srv.api_key) as client:
        yield client


@pytest.fixture(scope="module")
def session_id(http: httpx.Client) -> Iterator[str]:
    """A running session, for the routes that need one."""
    created = http.post("/v1/sessions", json={"keepAlive": True})
    assert created.status_code == 201, created.text
    yield created.json()["id"]
    http.post(f"/v1/sessions/{created.json()['id']}", json={"status": "REQUEST_RELEASE"})


def assert_error(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, object]:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == SHAPE and body["statusCode"] == response.status_code, body
    return body  # type: ignore[no-any-return]


def raw_request(srv: Server, data: bytes, close_after: bool = False) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a request sent byte for byte; `close_after`: hang up once it is sent.

    The response is read by its Content-Length (or to the close): half-closing our side would make the
    server drop the request unanswered."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(data)
        if close_after:
            return 0, {}, b""
        received = b""
        while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "-1"))
        while (length < 0 or len(body) < length) and (chunk := sock.recv(65536)):
            body += chunk
    return int(lines[0].split()[1]), headers, body


def raw_error(srv: Server, data: bytes, status: int) -> dict[str, object]:
    code, headers, body = raw_request(srv, data)
    assert code == status, (code, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    payload = json.loads(body)
    assert set(payload) == SHAPE and payload["statusCode"] == status
    # Not even escaped: stricter JSON parsers than Python's refuse a lone surrogate.
    assert not any(0xD800 <= ord(char) <= 0xDFFF for char in str(payload["message"])), payload
    return payload  # type: ignore[no-any-return]


def settled_browsers(srv: Server) -> set[int]:
    """The server's browsers once the set has stayed the same for a second (the pool refilled)."""
    previous: set[int] = set()

    def same() -> set[int] | None:
        nonlocal previous
        now = browser_pids(srv)
        stable = now if now and now == previous else None
        previous = now
        return stable

    return wait_for(same, timeout=60, interval=1.0)  # type: ignore[return-value]


def strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"{name} in a response")

    return json.loads(text, parse_constant=refuse)


# -- bodies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"userMetadata":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        # Under the interpreter's recursion limit, over ours.
        b'{"browserSettings":{"fingerprint":' + b'{"a":' * 40 + b"1" + b"}" * 42,
        # 200 levels of userMetadata fit in its 512 characters.
        b'{"userMetadata":{"k":' + b"[" * 200 + b"]" * 200 + b"}}",
    ],
    ids=["array-10000", "object-10000", "metadata-10000", "fingerprint-40", "metadata-200-under-cap"],
)
def test_deeply_nested_json_is_400(http: httpx.Client, body: bytes) -> None:
    message = assert_error(http.post("/v1/sessions", content=body), 400)["message"]
    assert "nested too deeply" in str(message)


def test_a_lone_surrogate_in_the_context_id_is_400_before_a_browser_is_taken(
    srv: Server, http: httpx.Client
) -> None:
    pool = settled_browsers(srv)
    response = http.post("/v1/sessions", content=b'{"browserSettings":{"context":{"id":"\\ud800"}}}')
    assert "surrogate" in str(assert_error(response, 400)["message"])
    # The pool's browser was never taken (it would be replaced by a new one), and none was launched.
    time.sleep(1.0)
    assert browser_pids(srv) == pool


@pytest.mark.parametrize(
    "body",
    [
        b'{"userMetadata":{"\\ud800":"x"}}',
        b'{"userMetadata":{"k":"\\udfff"}}',
        b'{"userMetadata":{"k":{"deeper":["ok","\\ud83d"]}}}',
        b'{"projectId":"\\udc00"}',
        b'{"extensionId":"a\\ud800b"}',
        b'{"futureField":{"\\ud800":1}}',
        b'{"userMetadata":{"k":"nul\\u0000"}}',
        b'{"userMetadata":{"nul\\u0000":"v"}}',
    ],
)
def test_lone_surrogates_and_nul_anywhere_in_a_body_are_400(http: httpx.Client, body: bytes) -> None:
    assert_error(http.post("/v1/sessions", content=body), 400)


def test_a_surrogate_pair_is_text_and_accepted(http: httpx.Client) -> None:
    created = http.post("/v1/sessions", content=b'{"userMetadata":{"emoji":"\\ud83d\\ude00"}}')
    assert created.status_code == 201, created.text
    assert created.json()["userMetadata"] == {"emoji": "\N{GRINNING FACE}"}
    http.post(f"/v1/sessions/{created.json()['id']}", json={"status": "REQUEST_RELEASE"})


def test_a_lone_surrogate_in_a_release_body_is_400(http: httpx.Client, session_id: str) -> None:
    body = b'{"status":"REQUEST_RELEASE","projectId":"\\ud800"}'
    assert_error(http.post(f"/v1/sessions/{session_id}", content=body), 400)


@pytest.mark.parametrize(
    "body",
    [
        b'{"userMetadata":{"n":NaN}}',
        b'{"userMetadata":{"n":Infinity}}',
        b'{"userMetadata":{"n":-Infinity}}',
        b'{"userMetadata":{"n":1e400}}',
        b'{"timeout":NaN}',
        b'{"browserSettings":{"viewport":{"width":Infinity}}}',
        b'{"futureField":-1e999}',
    ],
)
def test_non_finite_numbers_are_400(http: httpx.Client, body: bytes) -> None:
    assert_error(http.post("/v1/sessions", content=body), 400)


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"a string"', b"42", b"null", b"true", b"\xff\xfe{}", b"{" + b"1" * 5000 + b"}"],
)
def test_bodies_that_are_not_json_objects_are_400(http: httpx.Client, body: bytes) -> None:
    assert_error(http.post("/v1/sessions", content=body), 400)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_is_not_its_content_encoding_is_400(http: httpx.Client, encoding: str) -> None:
    response = http.post(
        "/v1/sessions", content=b"\x00\x01 not compressed", headers={"content-encoding": encoding}
    )
    assert "content-encoding" in str(assert_error(response, 400)["message"])
    assert response.headers["connection"] == "close"  # the rest of that body is unreadable


def test_a_compressed_body_over_1_mib_is_413(http: httpx.Client) -> None:
    bomb = gzip.compress(b'{"a":"' + b"x" * (20 * 1024**2) + b'"}')
    assert_error(http.post("/v1/sessions", content=bomb, headers={"content-encoding": "gzip"}), 413)


@pytest.mark.parametrize("path", ["/v1/sessions", f"/v1/sessions/{UNKNOWN}"])
def test_a_body_over_1_mib_is_413(http: httpx.Client, path: str) -> None:
    assert_error(http.post(path, content=b'{"a":"' + b"x" * (1024**2 + 10) + b'"}'), 413)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/octet-stream"]
)
def test_bodies_are_json_whatever_their_content_type(
    http: httpx.Client, session_id: str, content_type: str
) -> None:
    path = f"/v1/sessions/{session_id}"
    assert_error(
        http.post(path, content=b"status=REQUEST_RELEASE", headers={"content-type": content_type}), 400
    )
    # Parsed as JSON all the same: the field is checked.
    bad = http.post(path, content=b'{"status": "PAUSE"}', headers={"content-type": content_type})
    assert "status" in str(assert_error(bad, 400)["message"])


@pytest.mark.parametrize("timeout", [10**30, -(10**30), 10**4000, 1e300, 60.5, True])
def test_out_of_range_timeouts_are_400(http: httpx.Client, timeout: object) -> None:
    body = json.dumps({"timeout": timeout}) if not isinstance(timeout, int) else f'{{"timeout":{timeout}}}'
    assert_error(http.post("/v1/sessions", content=body.encode()), 400)


def test_a_context_id_longer_than_its_column_is_400(http: httpx.Client) -> None:
    body = {"browserSettings": {"context": {"id": "c" * 65}}}
    assert "context.id" in str(assert_error(http.post("/v1/sessions", json=body), 400)["message"])


def test_a_body_that_breaks_off_is_not_a_500(srv: Server) -> None:
    head = (
        f"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-BB-API-Key: {srv.api_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    raw_request(srv, head.encode() + b'{"userMetadata":', close_after=True)
    time.sleep(0.5)
    assert "Traceback" not in srv.log.read_text(errors="replace")


# -- credentials and tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/projects", f"/v1/sessions/{UNKNOWN}/logs"])
def test_an_api_key_header_that_is_not_utf8_is_401(srv: Server, path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
    raw_error(srv, request + b"X-BB-API-Key: \xff\xfe\xc3\r\n\r\n", 401)


@pytest.mark.parametrize(
    "target, header",
    [
        ("/json/version", b"x-bb-api-key: \xff\xfe"),
        ("/json/version", b"x-bb-signing-key: \xff.\xfe"),
        ("/json/version?apiKey=%ff%fe", b"X-Nothing: 1"),
        ("/json/version?signingKey=%ff.%fe", b"X-Nothing: 1"),
        ("/", b"x-bb-api-key: \xff\xfe"),
        ("/", b"x-bb-signing-key: a.\xff"),
    ],
)
def test_gateway_credentials_that_are_not_utf8_are_401(srv: Server, target: str, header: bytes) -> None:
    upgrade = "".join(f"{k}: {v}\r\n" for k, v in UPGRADE.items())
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{upgrade}".encode()
    raw_error(srv, head + header + b"\r\n\r\n", 401)


def test_a_session_id_header_that_is_not_utf8_is_404(srv: Server) -> None:
    head = f"GET /json/version?apiKey={srv.api_key} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    raw_error(srv, head + b"session-id: \xff\xfe\r\n\r\n", 404)


@pytest.mark.parametrize("key", ["é.é", "a.é", "é", "x." + "é" * 1000, "a" * 5000 + ".b"])
def test_non_ascii_signing_keys_are_401(srv: Server, key: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert_error(client.get("/json/version", params={"signingKey": key}), 401)
        assert_error(client.get("/", params={"signingKey": key}, headers=UPGRADE), 401)


# A genuine token is `<session>.<expires>.<rw|ro>.<mac>`: these break each part with non-ASCII text.
VIEW_TOKENS = [
    f"{UNKNOWN}.1.rw.é",
    f"{UNKNOWN}.²³.rw.mac",
    f"{UNKNOWN}.٣٣٣٣٣٣٣٣٣٣.rw.mac",
    "é.1.rw.mac",
    f"{UNKNOWN}.{'9' * 5000}.rw.mac",
]


@pytest.mark.parametrize("token", VIEW_TOKENS)
def test_non_ascii_view_tokens_are_401(srv: Server, token: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert_error(client.get(f"/debug/{token}/devtools/inspector.html"), 401)
        assert_error(client.get(f"/debug/{token}/devtools/page/ABC", headers=UPGRADE), 401)
        assert_error(client.get("/live/view", params={"t": token}), 401)
        assert_error(client.get("/live/ws", params={"t": token}, headers=UPGRADE), 401)


@pytest.mark.parametrize("token", VIEW_TOKENS)
def test_non_ascii_media_tokens_are_401(srv: Server, session_id: str, token: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for path in ("replays/0/init.mp4", "replays/0/seg-1.m4s", "recording/downloads/0.mp4"):
            assert_error(client.get(f"/v1/sessions/{session_id}/{path}", params={"t": token}), 401)


def test_a_host_header_that_is_not_utf8_is_400(srv: Server) -> None:
    head = f"GET /v1/sessions HTTP/1.1\r\nX-BB-API-Key: {srv.api_key}\r\n".encode()
    raw_error(srv, head + b"Host: \xff\xfe\r\n\r\n", 400)


def test_bytes_not_allowed_in_a_request_line_are_400_without_a_traceback(srv: Server) -> None:
    # aiohttp refuses these itself, before any route: its plain-text 400, but no traceback (last test).
    for line in (b"GET /v1/sessions/\xff HTTP/1.1", b"GET /v1/sessions?q=\xff HTTP/1.1"):
        status, _headers, _body = raw_request(srv, line + b"\r\nHost: 127.0.0.1\r\n\r\n")
        assert status == 400
    status, _headers, _body = raw_request(srv, b"GET /?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400


# -- numbers in queries and paths -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "٣", "¹⁰", "1e3", "-5", " 5", "0", "21601", "9" * 5000, "5.0"])
def test_expires_in_must_be_ascii_digits_in_range(http: httpx.Client, session_id: str, value: str) -> None:
    response = http.get(f"/v1/sessions/{session_id}/debug", params={"expiresIn": value})
    assert "expiresIn" in str(assert_error(response, 400)["message"])


@pytest.mark.parametrize("page", ["²", "٣", "①", "1234", "-1", "%00", "0x1"])
@pytest.mark.parametrize(
    "route", ["pages/{}/console", "pages/{}/network", "replays/{}", "replays/{}/init.mp4"]
)
def test_page_ids_must_be_ascii_digits(http: httpx.Client, session_id: str, route: str, page: str) -> None:
    assert_error(http.get(f"/v1/sessions/{session_id}/" + route.format(page)), 404)


@pytest.mark.parametrize("page", ["٣", "²", "1234"])
def test_mp4_page_ids_must_be_ascii_digits(http: httpx.Client, session_id: str, page: str) -> None:
    assert_error(http.get(f"/v1/sessions/{session_id}/recording/downloads/{page}.mp4"), 404)


@pytest.mark.parametrize(
    "params",
    [
        {"offset": str(10**20)},
        {"limit": str(10**20)},
        {"offset": "-1"},
        {"offset": "٣"},
        {"limit": "0"},
        {"minSize": "nan"},
        {"maxSize": "inf"},
        {"minSize": "1e400"},
        {"createdAfter": "9999-12-31T23:59:59-14:00"},
        {"createdBefore": "0001-01-01T00:00:00+14:00"},
        {"filename": "a\x00b"},
        {"mimeType": "m" * 256},
        {"sort": "size"},
    ],
)
def test_bad_download_queries_are_400(http: httpx.Client, session_id: str, params: dict[str, str]) -> None:
    assert_error(http.get("/v1/downloads", params={"sessionId": session_id, **params}), 400)


def test_the_largest_download_offset_is_an_empty_page(http: httpx.Client, session_id: str) -> None:
    listing = http.get("/v1/downloads", params={"sessionId": session_id, "offset": str(2**31 - 1)})
    assert listing.status_code == 200 and listing.json()["downloads"] == []


# -- ids, routes, queries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    ["not-a-uuid", "a%00b", "x" * 5000, "%ff%fe", "é", UNKNOWN + "0", "'; drop table sessions; --"],
)
def test_ids_that_are_not_uuids_are_404(http: httpx.Client, bad_id: str) -> None:
    for method, path in [
        ("GET", f"/v1/sessions/{bad_id}"),
        ("POST", f"/v1/sessions/{bad_id}"),
        ("GET", f"/v1/sessions/{bad_id}/logs"),
        ("GET", f"/v1/sessions/{bad_id}/debug"),
        ("GET", f"/v1/sessions/{bad_id}/replays/0/init.mp4"),
        ("GET", f"/v1/downloads/{bad_id}"),
        ("DELETE", f"/v1/downloads/{bad_id}"),
        ("GET", f"/v1/projects/{bad_id}"),
    ]:
        body = {"status": "REQUEST_RELEASE"} if method == "POST" else None
        assert_error(http.request(method, path, json=body), 404)
    assert_error(http.get("/v1/downloads", params={"sessionId": bad_id.replace("%", "")}), 404)


def test_an_empty_download_session_id_is_404(http: httpx.Client) -> None:
    assert_error(http.get("/v1/downloads", params={"sessionId": ""}), 404)


def test_an_implicit_create_with_nul_in_its_query_is_400_before_a_browser_is_taken(srv: Server) -> None:
    pool = settled_browsers(srv)
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        params = {"apiKey": srv.api_key, "note": "a\x00b"}
        assert_error(client.get("/", params=params, headers=UPGRADE), 400)
    time.sleep(1.0)
    assert browser_pids(srv) == pool


def test_a_gateway_session_id_that_is_not_a_uuid_is_404(srv: Server) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for session_id in ("nope", "a\x00b", "é" * 300):
            params = {"apiKey": srv.api_key, "sessionId": session_id}
            assert_error(client.get("/json/version", params=params), 404)


@pytest.mark.parametrize(
    "q",
    [
        "user_metadata['a",
        "user_metadata['a']:'b",
        "user_metadata['a']:'b' AND x",
        "user_metadata[''']:'b'",
        "user_metadata",
        "ü" * 100,
        "user_metadata['a']:'\x00'",
        "user_metadata['" + "a" * 5000 + "']:'b'",  # over 1024 characters
    ],
)
def test_malformed_metadata_queries_are_400(http: httpx.Client, q: str) -> None:
    assert_error(http.get("/v1/sessions", params={"q": q}), 400)


def test_a_non_ascii_metadata_query_is_answered(http: httpx.Client) -> None:
    listing = http.get("/v1/sessions", params={"q": "user_metadata['ключ']:'значение ²'"})
    assert listing.status_code == 200 and listing.json() == []


@pytest.mark.parametrize("status", ["SLEEPING", "running", "", "RUNNING,ERROR", "é"])
def test_unknown_status_filters_are_400(http: httpx.Client, status: str) -> None:
    assert_error(http.get("/v1/sessions", params={"status": status}), 400)


@pytest.mark.parametrize(
    "method, path",
    [("PUT", "/v1/sessions"), ("PATCH", "/v1/sessions/x"), ("DELETE", "/v1/projects"), ("TRACE", "/")],
)
def test_methods_not_allowed_are_404(http: httpx.Client, method: str, path: str) -> None:
    assert_error(http.request(method, path), 404)


# -- uploads ----------------------------------------------------------------------------------------


def uploads(srv: Server, session_id: str) -> list[str]:
    folder = srv.data_dir / "sessions" / session_id / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_long_upload_name_is_shortened_keeping_its_extension(
    srv: Server, http: httpx.Client, session_id: str
) -> None:
    response = http.post(f"/v1/sessions/{session_id}/uploads", files={"file": ("é" * 300 + ".txt", b"hi")})
    assert response.status_code == 200, response.text
    stored = [name for name in uploads(srv, session_id) if name.endswith(".txt") and name.startswith("é")]
    assert len(stored) == 1 and len(stored[0].encode()) <= 200, stored
    assert stored[0] in response.json()["message"]


def test_upload_names_that_are_not_utf8_are_made_safe(srv: Server, session_id: str) -> None:
    body = PART.replace(b"cut.bin", b"raw\xff\xfe.bin") + b"hi\r\n--XB--\r\n"
    status, _headers, _body = raw_request(srv, multipart_head(srv, session_id, len(body)) + body)
    assert status == 200
    assert "raw__.bin" in uploads(srv, session_id)


def multipart_head(srv: Server, session_id: str, length: int | None, boundary: str = "XB") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (
        f"POST /v1/sessions/{session_id}/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-BB-API-Key: {srv.api_key}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"{size}Connection: close\r\n\r\n"
    ).encode()


PART = b'--XB\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n'


@pytest.mark.parametrize(
    "body",
    [
        PART + b"hello",  # no closing boundary at all
        PART + b"hello\r\n--X",  # a boundary cut short
        PART[:30],  # the part's own headers cut short
        b"--XB\r\n",  # a boundary and nothing after it
    ],
    ids=["no-boundary", "cut-boundary", "cut-headers", "bare-boundary"],
)
def test_a_multipart_body_shorter_than_its_framing_stores_nothing(
    srv: Server, session_id: str, body: bytes
) -> None:
    raw_error(srv, multipart_head(srv, session_id, len(body)) + body, 400)
    assert "cut.bin" not in uploads(srv, session_id)
    assert not [name for name in uploads(srv, session_id) if name.endswith(".part")]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_upload_whose_connection_closes_mid_body_stores_nothing(
    srv: Server, session_id: str, chunked: bool
) -> None:
    data = PART + b"x" * 100_000
    if chunked:
        request = multipart_head(srv, session_id, None) + f"{len(data):x}\r\n".encode() + data
    else:
        request = multipart_head(srv, session_id, len(data) + 1_000_000) + data
    raw_request(srv, request, close_after=True)
    time.sleep(1.0)  # the server sees the connection go, and its handler ends
    assert "cut.bin" not in uploads(srv, session_id)
    assert not [name for name in uploads(srv, session_id) if name.endswith(".part")]


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # no boundary
        "multipart/form-data; boundary=" + "b" * 80,  # longer than RFC 2046 allows
        "text/plain",
    ],
)
def test_uploads_without_a_usable_multipart_type_are_400(
    http: httpx.Client, session_id: str, content_type: str
) -> None:
    path = f"/v1/sessions/{session_id}/uploads"
    assert_error(
        http.post(path, content=PART + b"x\r\n--XB--\r\n", headers={"content-type": content_type}), 400
    )


def test_a_boundary_that_is_not_utf8_is_400(srv: Server, session_id: str) -> None:
    body = PART + b"x\r\n--XB--\r\n"
    head = multipart_head(srv, session_id, len(body), boundary="XB").replace(b"boundary=XB", b"boundary=\xff")
    raw_error(srv, head + body, 400)


def test_a_complete_upload_still_works(srv: Server, session_id: str) -> None:
    body = PART.replace(b"cut.bin", b"whole.bin") + b"hello\r\n--XB--\r\n"
    status, _headers, _body = raw_request(srv, multipart_head(srv, session_id, len(body)) + body)
    assert status == 200
    path = srv.data_dir / "sessions" / session_id / "uploads" / "whole.bin"
    assert path.read_bytes() == b"hello"


# -- afterwards ---------------------------------------------------------------------------------------


def test_listing_is_still_strict_json_and_the_log_has_no_traceback(srv: Server, http: httpx.Client) -> None:
    listing = http.get("/v1/sessions")
    assert listing.status_code == 200
    sessions = strict_json(listing.text)
    assert isinstance(sessions, list) and sessions
    log = srv.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:4000]
    assert " ERROR " not in log, log
