"""Attacks on the CDP gateway with hand-built WebSocket frames, against the real server and browser.

Each attack is sent on a raw TCP socket (no WebSocket library to tidy it up), and each test checks
both that the gateway refused it and that nothing of it reached Chromium, by looking at the browser
afterwards over a second, honest connection. After each attack a new session must work normally.
Chromium's own decoder would have run every one of these: it treats a lone continuation frame like a
text frame and its JSON parser takes `\\v` escapes and raw control characters.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from conftest import Server
from websockets.speedups import apply_mask

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9
MIB = 1024 * 1024


def frame(
    payload: bytes, opcode: int = OP_TEXT, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


class Raw:
    """A CDP client on a bare socket: frames in, frames out, nothing checked on its side."""

    def __init__(self, server: Server, session_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /?apiKey={server.api_key}&sessionId={session_id} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            assert chunk, head
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.ids = iter(range(1, 1 << 30))
        self.events: list[dict[str, Any]] = []  # messages seen while waiting for an answer

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_frame(self) -> tuple[int, bytes] | None:
        """The next server frame, or None at the end of the stream."""
        while True:
            if len(self.buf) >= 2:
                size, head = self.buf[1] & 0x7F, 2
                if size == 126 and len(self.buf) >= 4:
                    size, head = int.from_bytes(self.buf[2:4], "big"), 4
                elif size == 127 and len(self.buf) >= 10:
                    size, head = int.from_bytes(self.buf[2:10], "big"), 10
                if size < 126 or head > 2:
                    if len(self.buf) >= head + size:
                        opcode, payload = self.buf[0] & 0x0F, self.buf[head : head + size]
                        self.buf = self.buf[head + size :]
                        return opcode, payload
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def request(self, method: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.send(
            frame(json.dumps({"id": ident, "method": method, "params": params or {}, **extra}).encode())
        )
        return self.answer(ident)

    def answer(self, ident: int) -> dict[str, Any]:
        while True:
            got = self.next_frame()
            assert got is not None, f"connection closed before the answer to {ident}"
            if got[0] == OP_TEXT:
                message = json.loads(got[1])
                if message.get("id") == ident:
                    return dict(message)
                self.events.append(message)

    def close_code(self) -> int | None:
        """Read to the end of the stream: the code of the close frame the server sent, if any."""
        code = None
        while (got := self.next_frame()) is not None:
            if got[0] == OP_CLOSE:
                code = int.from_bytes(got[1][:2], "big")
        return code

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def session(server: Server) -> Iterator[str]:
    """A session for one attack; afterwards, a new session must still work and the log hold no traceback."""
    log_start = server.log.stat().st_size
    # No CDP log and no recording: the attacks are on the gateway, and a 2-core machine is spared the
    # screencast. (The CDP log's writer has a bug of its own with lone surrogates, found here: it
    # fails on any message holding one, a page's console.log('\ud800') included.)
    quiet = {"log_session": False, "record_session": False}
    created = server.sdk().sessions.create(keep_alive=True, browser_settings=quiet)  # type: ignore[arg-type]
    yield created.id
    server.sdk().sessions.update(created.id, status="REQUEST_RELEASE")
    fresh = server.sdk().sessions.create(keep_alive=True, browser_settings=quiet)  # type: ignore[arg-type]
    try:
        raw = Raw(server, fresh.id)
        assert raw.request("Browser.getVersion")["result"]["product"].startswith("Chrome/")
        raw.close()
    finally:
        server.sdk().sessions.update(fresh.id, status="REQUEST_RELEASE")
    with server.log.open("rb") as log:
        log.seek(log_start)
        assert b"Traceback" not in log.read()


def target_urls(server: Server, session_id: str) -> list[str]:
    """Every target's URL, asked over a new, honest connection."""
    raw = Raw(server, session_id)
    try:
        return [t["url"] for t in raw.request("Target.getTargets")["result"]["targetInfos"]]
    finally:
        raw.close()


def create(url: str, ident: int = 900) -> bytes:
    return json.dumps({"id": ident, "method": "Target.createTarget", "params": {"url": url}}).encode()


def marker() -> str:
    return f"about:blank#attack-{uuid.uuid4().hex[:8]}"


def assert_not_run(server: Server, session_id: str, *urls: str) -> None:
    seen = target_urls(server, session_id)
    assert not [u for u in seen if u.startswith("file:") or any(u.startswith(m) for m in urls)], seen


# (a) and (d): fragmentation tricks.


def test_a_lone_continuation_frame_is_refused_and_never_run(server: Server, session: str) -> None:
    mark = marker()
    for command in (create("file:///etc/hostname"), create(mark)):
        raw = Raw(server, session)
        raw.send(frame(command, opcode=OP_CONTINUATION))
        assert raw.close_code() == 1002
        raw.close()
    assert_not_run(server, session, mark)


def test_a_new_message_while_fragments_pend_is_refused(server: Server, session: str) -> None:
    first, second = marker(), marker()
    raw = Raw(server, session)
    command = create(first)
    raw.send(
        frame(command[:30], fin=False) + frame(create(second)) + frame(command[30:], opcode=OP_CONTINUATION)
    )
    assert raw.close_code() == 1002
    raw.close()
    assert_not_run(server, session, first, second)


# (e): frames the RFC forbids.


@pytest.mark.parametrize(
    "attack",
    [
        "rsv1",
        "rsv3",
        "opcode 3",
        "opcode 0xb",
        "unmasked",
        "ping over 125",
        "fragmented ping",
        "close 1 byte",
    ],
)
def test_frames_the_rfc_forbids_are_refused(server: Server, session: str, attack: str) -> None:
    mark = marker()
    command = create(mark)
    bad = {
        "rsv1": frame(command, rsv=0x40),
        "rsv3": frame(command, rsv=0x10),
        "opcode 3": frame(command, opcode=0x3),
        "opcode 0xb": frame(b"x", opcode=0xB) + frame(command),
        "unmasked": frame(command, masked=False),
        "ping over 125": frame(b"p" * 126, opcode=OP_PING) + frame(command),
        "fragmented ping": frame(b"p", opcode=OP_PING, fin=False) + frame(command),
        "close 1 byte": frame(b"\x03", opcode=OP_CLOSE) + frame(command),
    }[attack]
    raw = Raw(server, session)
    raw.send(bad)
    assert raw.close_code() == 1002
    raw.close()
    assert_not_run(server, session, mark)


def test_binary_frames_are_refused(server: Server, session: str) -> None:
    mark = marker()
    raw = Raw(server, session)
    raw.send(frame(create(mark), opcode=OP_BINARY))
    assert raw.close_code() == 1003
    raw.close()
    assert_not_run(server, session, mark)


# (b) and (g): JSON that Python and Chromium read differently.


@pytest.mark.parametrize(
    "template",
    [
        r'{"id":1,"method":"Target.createTarget","params":{"url":"%s\v"}}',
        '{"id":1,"method":"Target.createTarget","params":{"url":"%s\x01"}}',
        '{"id":1,"method":"Target.createTarget","params":{"url":"%s"},"method":"Target.createTarget"}',
        '{"id":1,"method":"Target.createTarget","params":{"url":"%s","x":NaN}}',
        '{"id":1.0,"method":"Target.createTarget","params":{"url":"%s"}}',
        '{"id":1,"method":"Target.createTarget","params":{"url":"%s","x":' + "[" * 10000 + "]" * 10000 + "}}",
    ],
    ids=["vertical tab escape", "raw control character", "duplicate key", "NaN", "float id", "10,000 deep"],
)
def test_messages_that_do_not_parse_strictly_close_with_1008(
    server: Server, session: str, template: str
) -> None:
    mark = marker()
    raw = Raw(server, session)
    raw.send(frame((template % mark).encode()))
    assert raw.close_code() == 1008
    raw.close()
    assert_not_run(server, session, mark)


def test_what_parses_but_chromium_would_read_otherwise_is_refused(server: Server, session: str) -> None:
    mark = marker()
    raw = Raw(server, session)
    for n, template in enumerate(
        [
            r'{"id":%d,"method":"Target.createTarget","params":{"url":"%s\ud800"}}',
            '{"id":%d,"method":"Target.createTarget","params":{"url":"%s","x":'
            + "[" * 400
            + "]" * 400
            + "}}",
            '{"id":%d,"method":"Target.createTarget","params":{"url":"%s"},"extra":1}',
            r'{"id":%d,"method":"Target.create\u0054arget","params":{"url":"fil\u0065:///etc/hostname#%s"}}',
        ],
        start=1,
    ):
        raw.send(frame((template % (n, mark)).encode()))
        assert "browserfleet: " in raw.answer(n)["error"]["message"]
    # Chromium matches method names exactly: near misses are not run either.
    for method in ("target.createTarget", "Target.createTarget ", "Target.createTarget\x00"):
        answer = raw.request(method, {"url": mark})
        assert answer["error"]["code"] == -32601, answer
    raw.close()
    assert_not_run(server, session, mark)


# (c): a command inside a command.


def test_commands_nested_in_send_message_to_target_are_checked(server: Server, session: str) -> None:
    raw = Raw(server, session)
    page = next(t for t in raw.request("Target.getTargets")["result"]["targetInfos"] if t["type"] == "page")
    attached = raw.request("Target.attachToTarget", {"targetId": page["targetId"], "flatten": False})
    child = attached["result"]["sessionId"]
    navigate = {"id": 1, "method": "Page.navigate", "params": {"url": "file:///etc/hostname"}}
    answer = raw.request("Target.sendMessageToTarget", {"sessionId": child, "message": json.dumps(navigate)})
    assert answer["result"] == {}  # the outer command went on, carrying the refusal

    def inner_answer(ident: int) -> dict[str, Any]:
        while True:
            for event in raw.events:
                if event.get("method") == "Target.receivedMessageFromTarget":
                    inner = json.loads(event["params"]["message"])
                    if inner.get("id") == ident:
                        return dict(inner)
            got = raw.next_frame()
            assert got is not None
            raw.events.append(json.loads(got[1]))

    inner = inner_answer(1)
    assert "browserfleet: Page.navigate" in inner["error"]["message"], inner
    # An inner message that does not parse strictly refuses the outer one.
    hidden = r'{"id":2,"method":"Page.navigate","params":{"url":"file:///etc/hostname\v"}}'
    answer = raw.request("Target.sendMessageToTarget", {"sessionId": child, "message": hidden})
    assert "browserfleet: Target.sendMessageToTarget" in answer["error"]["message"]
    # A harmless inner command runs as before.
    evaluate = {"id": 3, "method": "Runtime.evaluate", "params": {"expression": "6 * 7"}}
    answer = raw.request("Target.sendMessageToTarget", {"sessionId": child, "message": json.dumps(evaluate)})
    assert answer["result"] == {}
    assert inner_answer(3)["result"]["result"]["value"] == 42
    raw.close()
    assert [u for u in target_urls(server, session) if u.startswith("file:")] == []


# (h): what reveals the host.


def test_host_details_are_not_revealed(server: Server, session: str) -> None:
    raw = Raw(server, session)
    for method in (
        "SystemInfo.getInfo",
        "SystemInfo.getProcessInfo",
        "Browser.getBrowserCommandLine",
        "Memory.getBrowserSamplingProfile",
    ):
        answer = raw.request(method)
        assert f"browserfleet: {method}" in answer["error"]["message"], answer
        assert "result" not in answer and str(server.data_dir) not in json.dumps(answer)
    escaped = r'{"id":99,"method":"Browser.getBrowserComman\u0064Line"}'
    raw.send(frame(escaped.encode()))
    assert "browserfleet: Browser.getBrowserCommandLine" in raw.answer(99)["error"]["message"]
    # Refusing a host file names no host path either.
    answer = raw.request("DOM.setFileInputFiles", {"files": ["/etc/passwd"], "nodeId": 1})
    assert str(server.data_dir) not in answer["error"]["message"]
    raw.close()


# (f): memory.


def test_a_never_finished_message_is_cut_off_at_the_limit(server: Server, session: str) -> None:
    assert server.proc is not None
    gateway = psutil.Process(server.proc.pid)
    baseline = gateway.memory_info().rss
    peak = [baseline]
    raw = Raw(server, session)
    codes: list[int | None] = []
    reader = threading.Thread(target=lambda: codes.append(raw.close_code()))
    reader.start()
    piece = b"x" * MIB
    sent = 0
    try:
        raw.send(frame(b'{"id":1,"method":"Runtime.evaluate","params":{"expression":"', fin=False))
        while sent < 300 * MIB:  # triple the 100 MiB limit: unbounded, this would grow the server by 300 MiB
            raw.send(frame(piece, opcode=OP_CONTINUATION, fin=False))
            sent += len(piece)
            if sent % (8 * MIB) == 0:
                peak.append(gateway.memory_info().rss)
    except OSError:
        pass  # the server has closed the connection
    reader.join(30)
    raw.close()
    assert codes == [1009]
    assert sent < 300 * MIB
    assert max(peak) - baseline < 100 * MIB + 64 * MIB, (max(peak) - baseline) / MIB
    time.sleep(0.5)
    assert gateway.memory_info().rss - baseline < 48 * MIB  # given back once the connection is closed


# (i): big messages are not attacks.


def test_a_67_mb_message_passes_and_is_answered(server: Server, session: str) -> None:
    size = 67 * 1000 * 1000
    raw = Raw(server, session)
    page = next(t for t in raw.request("Target.getTargets")["result"]["targetInfos"] if t["type"] == "page")
    child = raw.request("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["result"]
    message = (
        b'{"id":5,"method":"Runtime.evaluate","sessionId":"%s","params":{"expression":"\''
        % child["sessionId"].encode()
        + b"a" * size
        + b"'.length\"}}"
    )
    started = time.monotonic()
    raw.send(frame(message))
    answer = raw.answer(5)
    elapsed = time.monotonic() - started
    assert answer["result"]["result"]["value"] == size, answer
    # The same, fragmented.
    message = message.replace(b'"id":5', b'"id":6')
    raw.send(
        b"".join(
            frame(
                message[i : i + 4 * MIB],
                opcode=OP_TEXT if i == 0 else OP_CONTINUATION,
                fin=i + 4 * MIB >= len(message),
            )
            for i in range(0, len(message), 4 * MIB)
        )
    )
    assert raw.answer(6)["result"]["result"]["value"] == size
    raw.close()
    print(f"67 MB message answered in {elapsed:.2f}s")


def test_the_limits_are_the_servers_settings(make_server: Any) -> None:
    """BROWSERFLEET_MAX_MESSAGE_MB caps one message; BROWSERFLEET_REASSEMBLY_BUDGET_MB all of them."""
    small: Server = make_server(
        "small-messages",
        BROWSERFLEET_MAX_MESSAGE_MB="1",
        BROWSERFLEET_REASSEMBLY_BUDGET_MB="2",
        BROWSERFLEET_POOL_SIZE="0",
    ).start()
    created = small.sdk().sessions.create(keep_alive=True)
    head = b'{"id":7,"method":"Browser.getVersion","params":{"pad":"' + b"h" * (900 * 1000)
    try:
        # Just under the cap passes; over it is refused on the announced length.
        raw = Raw(small, created.id)
        raw.send(frame(head + b'"}}'))
        assert raw.answer(7)["result"]["product"].startswith("Chrome/")
        raw.send(frame(b"x" * (MIB + 1)))
        assert raw.close_code() == 1009
        raw.close()
        # Connections holding 0.9 MB of an unfinished message each: the third is over the 2 MiB budget.
        holders = [Raw(small, created.id) for _ in range(3)]
        for holder in holders:
            holder.send(frame(head, fin=False))
            time.sleep(0.2)
        assert holders[2].close_code() == 1009
        holders[0].close()  # its share is given back...
        time.sleep(0.5)
        again = Raw(small, created.id)
        again.send(frame(head, fin=False))  # ...so a new one fits, and the others were kept
        for holder in (holders[1], again):
            holder.send(frame(b'"}}', opcode=OP_CONTINUATION))
            assert holder.answer(7)["result"]["product"].startswith("Chrome/")
            holder.close()
    finally:
        small.sdk().sessions.update(created.id, status="REQUEST_RELEASE")
