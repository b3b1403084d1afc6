"""The relay at byte level: after both WebSocket handshakes, frames are copied as bytes.

Neither leg negotiates an extension, so a client's (masked) frames are valid frames for Chromium and
Chromium's (unmasked) frames are valid frames for the client. Browser → client bytes are written on
as they arrive, never parsed. Client → browser bytes are split into frames (a header read, no
copy of the payload) so the CDP policy can see each text message; a message it rewrites is re-framed
with a zero mask. Flow control is passed through both ways, so a slow client slows the browser down
instead of filling memory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from typing import Any

from websockets.speedups import apply_mask

from browserfleet.artifacts.cdplog import BODY_LIMIT, LinkTap
from browserfleet.gateway.policy import Policy

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT = 0x0, 0x1
HIGH_WATER, LOW_WATER = 8 * 1024 * 1024, 1024 * 1024
MAX_CLIENT_FRAME = 256 * 1024 * 1024  # commands are small; this only stops a client exhausting memory
ZERO_MASK = b"\x00\x00\x00\x00"
GOING_AWAY = b"\x88\x0f\x03\xe9session ended"  # server close frame: 1001, "session ended"


class HandshakeError(OSError):
    pass


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client-to-server frame with a zero mask (the payload stays as it is)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return head + ZERO_MASK + payload


class Link:
    """One client connection spliced to one browser connection."""

    def __init__(self, policy: Policy, tap: LinkTap | None = None) -> None:
        self.policy = policy
        self.tap = tap  # the session's CDP log, when it keeps one
        self.client: asyncio.Transport | None = None
        self.browser: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.browser_lost = False  # the browser's side closed before the client's
        self._pending = bytearray()  # client bytes not yet a whole frame
        self._fragments: list[bytes] | None = None  # a fragmented text message being reassembled
        self._draining: asyncio.TimerHandle | None = None
        self._early = bytearray()  # browser bytes that came before the client was attached
        # Where the browser → client stream is: bytes left of the current frame's payload, or a
        # partial frame header. Only headers are read, so a close frame can go in at a boundary.
        self._skip = 0
        self._header = bytearray()
        self._kept: bytearray | None = None  # the head of the text message being passed, for the tap
        self._kept_size = 0

    def attach_client(self, transport: asyncio.Transport) -> None:
        self.client = transport
        if self._early:
            self.from_browser(bytes(self._early))
            self._early.clear()

    # -- client → browser -----------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        buf = self._pending
        buf += data
        out: list[bytes] = []
        start = 0
        end = len(buf)
        while end - start >= 2:
            b0, b1 = buf[start], buf[start + 1]
            size = b1 & 0x7F
            head = 2
            if size == 126:
                if end - start < 4:
                    break
                size = int.from_bytes(buf[start + 2 : start + 4], "big")
                head = 4
            elif size == 127:
                if end - start < 10:
                    break
                size = int.from_bytes(buf[start + 2 : start + 10], "big")
                head = 10
            if not b1 & 0x80:  # clients must mask: anything else is not a WebSocket client
                self.close()
                return
            total = head + 4 + size
            if size > MAX_CLIENT_FRAME:
                self.close()
                return
            if end - start < total:
                break
            opcode, fin = b0 & 0x0F, bool(b0 & 0x80)
            text = opcode == OP_TEXT or (opcode == OP_CONTINUATION and self._fragments is not None)
            if not text:  # binary, control frames, and fragments of binary messages pass as they are
                out.append(bytes(buf[start : start + total]))
                start += total
                continue
            mask = bytes(buf[start + head : start + head + 4])
            payload = apply_mask(bytes(buf[start + head + 4 : start + total]), mask)
            if fin and self._fragments is None:
                if self.tap is not None:
                    self.tap.command(payload)
                replaced = self.policy.apply(payload)
                out.append(
                    bytes(buf[start : start + total]) if replaced is None else frame(OP_TEXT, replaced)
                )
            else:
                # Fragmented text: reassemble, so the policy sees the whole message.
                self._fragments = [*(self._fragments or []), payload]
                if fin:
                    message = b"".join(self._fragments)
                    self._fragments = None
                    if self.tap is not None:
                        self.tap.command(message)
                    replaced = self.policy.apply(message)
                    out.append(frame(OP_TEXT, message if replaced is None else replaced))
            start += total
        del buf[:start]
        if out and self.browser is not None:
            self.browser.write(b"".join(out))

    # -- browser → client -----------------------------------------------------------------------

    def from_browser(self, data: bytes) -> None:
        client = self.client
        if client is None:
            self._early += data
            return
        if client.is_closing():
            return
        self._track(data)
        client.write(data)
        if (
            client.get_write_buffer_size() > HIGH_WATER
            and self.browser is not None
            and self._draining is None
        ):
            self.browser.pause_reading()
            self._wait_for_client()

    def _track(self, data: bytes) -> None:
        """Advance past whole frames: header bytes are read, payloads are only counted."""
        pos, end = 0, len(data)
        header = self._header
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                kept = self._kept
                if kept is not None and len(kept) < BODY_LIMIT:
                    kept += data[pos : pos + min(step, BODY_LIMIT - len(kept))]
                self._skip -= step
                pos += step
                if not self._skip and kept is not None:
                    self._message_passed()
                continue
            had = len(header)
            header += data[pos : pos + 14 - had]
            need = 2
            if len(header) >= 2:
                size = header[1] & 0x7F
                need = (4 if size == 126 else 10 if size == 127 else 2) + (4 if header[1] & 0x80 else 0)
            if len(header) < need:
                pos = end  # the rest of the header comes in a later chunk
                continue
            length = header[1] & 0x7F
            if length == 126:
                length = int.from_bytes(header[2:4], "big")
            elif length == 127:
                length = int.from_bytes(header[2:10], "big")
            pos += need - had
            if self.tap is not None and header[0] & 0x0F == OP_TEXT:
                self._kept, self._kept_size = bytearray(), length
            header.clear()
            self._skip = length
            if not length and self._kept is not None:
                self._message_passed()

    def _message_passed(self) -> None:
        assert self.tap is not None and self._kept is not None
        self.tap.message(bytes(self._kept), self._kept_size)
        self._kept = None

    @property
    def at_frame_boundary(self) -> bool:
        return not self._skip and not self._header

    def _wait_for_client(self) -> None:
        # The client transport's protocol is aiohttp's, so its pause/resume_writing do not reach us: poll.
        self._draining = None
        if self.client is None or self.browser is None or self.done.done():
            return
        if self.client.get_write_buffer_size() <= LOW_WATER:
            self.browser.resume_reading()
        else:
            self._draining = asyncio.get_running_loop().call_later(0.002, self._wait_for_client)

    # -- both ------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._draining is not None:
            self._draining.cancel()
        if self.browser is not None and not self.browser.is_closing():
            self.browser.close()
        if self.client is not None and not self.client.is_closing() and self.at_frame_boundary:
            self.client.write(GOING_AWAY)  # the client learns why, as it did from Chromium's own close
        for transport in (self.browser, self.client):
            if transport is not None and not transport.is_closing():
                transport.close()
        if not self.done.done():
            self.done.set_result(None)


class ClientFrames:
    """Takes the client's bytes from aiohttp once the connection is upgraded (its payload-parser hook)."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.link.from_client(data)
        return False, b""

    def feed_eof(self) -> None:
        self.link.close()


class BrowserSide(asyncio.Protocol):
    """The browser connection: its handshake, then its bytes straight to the client."""

    def __init__(self, link: Link, key: str) -> None:
        self.link = link
        self.key = key
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._head = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.ready.done():
            self.link.from_browser(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 16384:
                self.ready.set_exception(HandshakeError("oversized handshake answer"))
            return
        head, early = bytes(self._head[:end]).decode("latin-1"), bytes(self._head[end + 4 :])
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if not lines[0].startswith("HTTP/1.1 101") or headers.get("sec-websocket-accept") != accept_key(
            self.key
        ):
            self.ready.set_exception(HandshakeError(f"browser refused the upgrade: {lines[0]}"))
            return
        self.ready.set_result(None)
        if early:  # frames that came with the answer: held by the link until the client is attached
            self.link.from_browser(early)

    def pause_writing(self) -> None:
        if self.link.client is not None:
            self.link.client.pause_reading()

    def resume_writing(self) -> None:
        if self.link.client is not None:
            self.link.client.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(HandshakeError("browser closed the connection"))
        if not self.link.done.done():
            self.link.browser_lost = True  # the browser went first: it may be crashing
        self.link.close()


async def connect_browser(link: Link, sock: Any, ws_url: str) -> None:
    """Open the browser leg over a connected socket: the WebSocket handshake, no extensions."""
    host_port, _, path = ws_url.removeprefix("ws://").partition("/")
    key = base64.b64encode(os.urandom(16)).decode()
    loop = asyncio.get_running_loop()
    transport, side = await loop.create_connection(lambda: BrowserSide(link, key), sock=sock)
    link.browser = transport
    transport.write(
        f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        await asyncio.wait_for(side.ready, timeout=10)
    except BaseException:
        transport.close()
        raise
