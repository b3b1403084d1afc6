"""The byte-level relay's client-side framing, with real frames and fake transports."""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from websockets.speedups import apply_mask

from browserfleet.gateway.policy import Policy
from browserfleet.gateway.splice import Link


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.data += chunk

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


def client_frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0xFE]) + size.to_bytes(2, "big")
    else:
        head += bytes([0xFF]) + size.to_bytes(8, "big")
    return head + mask + apply_mask(payload, mask)


def messages(stream: bytes) -> list[bytes]:
    """Unmask and split what the relay sent the browser back into message payloads."""
    out, i = [], 0
    while i < len(stream):
        size, head = stream[i + 1] & 0x7F, 2
        if size == 126:
            size, head = int.from_bytes(stream[i + 2 : i + 4], "big"), 4
        elif size == 127:
            size, head = int.from_bytes(stream[i + 2 : i + 10], "big"), 10
        mask = stream[i + head : i + head + 4]
        out.append(apply_mask(stream[i + head + 4 : i + head + 4 + size], mask))
        i += head + 4 + size
    return out


def run(feed: list[bytes], tmp_path: Path) -> tuple[list[bytes], Any]:
    async def go() -> tuple[list[bytes], Any]:
        link = Link(Policy(tmp_path / "downloads", tmp_path / "uploads"))
        browser = Sink()
        link.browser = browser  # type: ignore[assignment]
        for chunk in feed:
            link.from_client(chunk)
        return messages(bytes(browser.data)), link

    with ThreadPoolExecutor(1) as thread:  # the sync Playwright fixture may hold this thread's loop
        return thread.submit(asyncio.run, go()).result()


def test_frames_split_anywhere_arrive_whole_and_unchanged(tmp_path: Path) -> None:
    small = json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": "1+1"}}).encode()
    medium = json.dumps({"id": 2, "method": "Page.setContent", "params": {"html": "x" * 5000}}).encode()
    large = json.dumps({"id": 3, "method": "Page.setContent", "params": {"html": "y" * 70000}}).encode()
    stream = client_frame(small) + client_frame(medium) + client_frame(large)
    for step in (1, 7, 1000, len(stream)):
        got, _ = run([stream[i : i + step] for i in range(0, len(stream), step)], tmp_path)
        assert got == [small, medium, large]


def test_policy_sees_fragmented_messages(tmp_path: Path) -> None:
    navigate = json.dumps(
        {"id": 4, "method": "Page.navigate", "params": {"url": "file:///etc/passwd"}}
    ).encode()
    first, second = navigate[:20], navigate[20:]
    got, _ = run([client_frame(first, opcode=1, fin=False) + client_frame(second, opcode=0)], tmp_path)
    (sent,) = got
    assert json.loads(sent)["id"] == 4
    assert json.loads(sent)["method"].startswith("browserfleet: Page.navigate")


def test_download_path_is_rewritten_in_the_byte_stream(tmp_path: Path) -> None:
    command = {
        "id": 5,
        "method": "Browser.setDownloadBehavior",
        "params": {"behavior": "allow", "downloadPath": "/"},
    }
    got, _ = run([client_frame(json.dumps(command).encode())], tmp_path)
    assert json.loads(got[0])["params"]["downloadPath"] == str(tmp_path / "downloads")


def test_an_unmasked_client_frame_ends_the_link(tmp_path: Path) -> None:
    got, link = run([b"\x81\x02hi"], tmp_path)
    assert got == [] and link.done.done()


def server_frame(payload: bytes, opcode: int = 1) -> bytes:
    """An unmasked frame, as Chromium sends them."""
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + size.to_bytes(2, "big")
    else:
        head += bytes([127]) + size.to_bytes(8, "big")
    return head + payload


def test_the_cdp_log_pairs_commands_and_answers_split_anywhere(tmp_path: Path) -> None:
    from browserfleet.artifacts import cdplog

    command = json.dumps({"id": 7, "method": "Page.navigate", "params": {"url": "http://a.test/"}}).encode()
    answer = json.dumps({"id": 7, "result": {"frameId": "F1", "loaderId": "L1"}}).encode()
    event = json.dumps({"method": "Page.frameNavigated", "params": {"frame": {"id": "F1"}}}).encode()
    noise = json.dumps({"method": "Network.dataReceived", "params": {"pad": "n" * 300}}).encode()
    big_command = json.dumps({"id": 8, "method": "Page.captureScreenshot", "params": {}}).encode()
    big = json.dumps({"id": 8, "result": {"data": "z" * 100_000}}).encode()
    stream = (
        server_frame(answer)
        + server_frame(b"", opcode=9)
        + server_frame(noise)
        + server_frame(event)
        + server_frame(big)
        + server_frame(b"\x00\x01", opcode=2)
    )

    async def go(step: int) -> list[dict[str, Any]]:
        log = cdplog.CdpLog("s-1", tmp_path / f"log-{step}.jsonl", lambda _target: None)
        link = Link(Policy(tmp_path / "downloads", tmp_path / "uploads"), log.tap())
        client, browser = Sink(), Sink()
        link.browser, link.client = browser, client  # type: ignore[assignment]
        link.from_client(client_frame(command) + client_frame(big_command))
        for i in range(0, len(stream), step):
            link.from_browser(stream[i : i + step])
        assert bytes(client.data) == stream  # the client gets every byte as it was
        await log.close()
        return list(cdplog.read(log.path))

    for step in (1, 5, 999, len(stream)):
        with ThreadPoolExecutor(1) as thread:
            entries = thread.submit(asyncio.run, go(step)).result()
        by_method = {entry["method"]: entry for entry in entries}
        assert set(by_method) == {"Page.navigate", "Page.frameNavigated", "Page.captureScreenshot"}, step
        navigate = by_method["Page.navigate"]
        assert navigate["request"]["params"] == {"url": "http://a.test/"}
        assert navigate["response"]["result"] == {"frameId": "F1", "loaderId": "L1"}
        assert navigate["frameId"] == "F1" and navigate["loaderId"] == "L1" and navigate["pageId"] == 0
        shot = by_method["Page.captureScreenshot"]["response"]
        assert shot["result"] == {"truncated": True, "size": len(big)}
        assert len(shot["rawBody"].encode()) < cdplog.BODY_LIMIT + 100


def link_run(steps: Any, tmp_path: Path, limits: Any = None) -> tuple[Sink, Sink, Any]:
    """Run `steps(link)` on a link with fake transports: (client, browser, what steps returned)."""

    async def go() -> tuple[Sink, Sink, Any]:
        link = Link(Policy(tmp_path / "downloads", tmp_path / "uploads"), limits=limits)
        client, browser = Sink(), Sink()
        link.browser, link.client = browser, client  # type: ignore[assignment]
        result = steps(link)
        if asyncio.iscoroutine(result):
            result = await result
        return client, browser, result

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, go()).result()


GOOD = json.dumps({"id": 1, "method": "Browser.getVersion"}).encode()
BAD = json.dumps(
    {"id": 2, "method": "Target.createTarget", "params": {"url": "file:///etc/hostname"}}
).encode()


def close_code(data: bytes) -> tuple[int, bytes]:
    """The code and reason of the close frame `data` ends with."""
    i = data.rfind(b"\x88")
    size = data[i + 1]
    assert i + 2 + size == len(data), data[-40:]
    return int.from_bytes(data[i + 2 : i + 4], "big"), bytes(data[i + 4 :])


def test_a_framing_violation_closes_the_client_with_1002_and_nothing_of_it_passes(tmp_path: Path) -> None:
    def steps(link: Link) -> None:
        link.from_client(client_frame(GOOD) + client_frame(BAD, opcode=0) + client_frame(GOOD))
        link.from_client(client_frame(GOOD))  # after the refusal: dropped

    client, browser, _ = link_run(steps, tmp_path)
    assert messages(bytes(browser.data)) == [GOOD]
    assert close_code(bytes(client.data))[0] == 1002
    assert client.closed and browser.closed


def test_a_message_that_cannot_be_answered_closes_the_client_with_1008(tmp_path: Path) -> None:
    vertical_tab = rb'{"id":3,"method":"Target.createTarget","params":{"url":"file:///etc/hostname\v"}}'
    client, browser, _ = link_run(lambda link: link.from_client(client_frame(vertical_tab)), tmp_path)
    assert browser.data == b""
    code, reason = close_code(bytes(client.data))
    assert code == 1008 and reason.startswith(b"invalid CDP message")


def test_the_close_frame_waits_for_the_browser_frame_in_flight(tmp_path: Path) -> None:
    answer = server_frame(b'{"id":1,"result":{"data":"' + b"z" * 5000 + b'"}}')
    after = server_frame(b'{"method":"Page.loadEventFired"}')

    def steps(link: Link) -> list[bool]:
        link.from_browser(answer[:100])  # the browser is in the middle of a frame
        link.from_client(client_frame(b"x", opcode=2))  # a binary frame: 1003
        states = [link.done.done()]
        link.from_browser(answer[100:] + after)  # the frame ends; what follows is not passed
        states.append(link.done.done())
        return states

    client, browser, states = link_run(steps, tmp_path)
    assert states == [False, True]
    data = bytes(client.data)
    assert data.startswith(answer) and close_code(data[len(answer) :])[0] == 1003
    assert browser.data == b""


def test_an_unfinished_message_is_given_back_to_the_budget_when_the_link_closes(tmp_path: Path) -> None:
    from browserfleet.gateway.frames import Budget, Limits

    budget = Budget(10 * 1024 * 1024)

    def steps(link: Link) -> list[int]:
        link.from_client(
            client_frame(b"a" * 100_000, fin=False) + client_frame(b"b" * 50_000, opcode=0)[:20_000]
        )
        held = budget.held
        link.close()
        return [held, budget.held]

    _, browser, held = link_run(steps, tmp_path, Limits(budget=budget))
    assert held == [100_000 + 20_000 - 8, 0] and browser.data == b""


def test_a_client_close_frame_passes_and_ends_what_the_client_can_send(tmp_path: Path) -> None:
    def steps(link: Link) -> None:
        link.from_client(client_frame(b"\x03\xe8bye", opcode=8) + client_frame(GOOD))

    client, browser, _ = link_run(steps, tmp_path)
    sent = bytes(browser.data)
    assert sent[0] == 0x88 and messages(sent) == [b"\x03\xe8bye"] and client.data == b""
