"""The relay: after both WebSocket handshakes, the browser's frames are copied as bytes and the
client's are checked and framed anew.

Neither leg negotiates an extension, so Chromium's (unmasked) frames are valid frames for the client
and go on as they arrive, never parsed: only their headers are read (`frames.ServerStream`), to know
where frame boundaries are. Client → browser bytes go through the strict decoder (`frames.ClientDecoder`)
and every text message through the CDP policy; what goes on is the message that was checked (or the
policy's rewrite), framed anew with a zero mask. A client that breaks the framing rules or sends a
message that cannot be answered is closed with a close frame of its own (1002, 1003, 1008, 1009),
written at the next frame boundary of the browser's stream, and nothing it sent from there on reaches
Chromium. Flow control is passed through both ways, so a slow client slows the browser down instead of
filling memory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
from typing import Any

from browserfleet.artifacts.cdplog import BODY_LIMIT, LinkTap
from browserfleet.errors import HandshakeError
from browserfleet.gateway.frames import (
    GOING_AWAY,
    OP_TEXT,
    POLICY_VIOLATION,
    ClientDecoder,
    Failure,
    Limits,
    ServerStream,
    close_frame,
    frame_header,
)
from browserfleet.gateway.policy import Policy, Unanswerable

log = logging.getLogger(__name__)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HIGH_WATER, LOW_WATER = 8 * 1024 * 1024, 1024 * 1024
SESSION_ENDED = close_frame(GOING_AWAY, "session ended")
CLOSE_WAIT = 5.0  # seconds a refused client's close frame may wait for a frame boundary


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


class Link:
    """One client connection spliced to one browser connection."""

    def __init__(
        self, policy: Policy, tap: LinkTap | None = None, limits: Limits | None = None, label: str = ""
    ) -> None:
        self.policy = policy
        self.tap = tap  # the session's CDP log, when it keeps one
        self.label = label  # for the log: whose connection this is
        self.client: asyncio.Transport | None = None
        self.browser: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.browser_lost = False  # the browser's side closed before the client's
        self._decoder = ClientDecoder(limits or Limits())
        self._draining: asyncio.TimerHandle | None = None
        self._early = bytearray()  # browser bytes that came before the client was attached
        # Where the browser → client stream is; it hands the tap the head of each text message.
        self._stream = ServerStream(BODY_LIMIT, tap.message) if tap is not None else ServerStream()
        self._refusal: bytes | None = None  # the close frame for a refused client, once it is refused
        self._closing: asyncio.TimerHandle | None = None
        self._close_sent = False

    def attach_client(self, transport: asyncio.Transport) -> None:
        self.client = transport
        if self._early:
            self.from_browser(bytes(self._early))
            self._early.clear()

    # -- client → browser -----------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self._refusal is not None or self.done.done():
            return  # a refused client: nothing more of it reaches the browser
        frames, failure = self._decoder.feed(data)
        out: list[bytes] = []
        for opcode, payload in frames:
            message = payload
            if opcode == OP_TEXT:
                try:
                    replaced = self.policy.apply(payload)
                except Unanswerable as exc:
                    failure = Failure(POLICY_VIOLATION, f"invalid CDP message: {exc}")
                    break
                if self.tap is not None:
                    self.tap.command(payload)
                if replaced is not None:
                    message = replaced
            out.append(frame_header(opcode, len(message)))
            out.append(message)
        if out and self.browser is not None:
            self.browser.writelines(out)
        if failure is not None:
            self._refuse(failure)

    def _refuse(self, failure: Failure) -> None:
        """Close the client with `failure`'s code: at once if the browser's stream is between frames,
        else once the frame being passed has ended (or after `CLOSE_WAIT`)."""
        log.warning("gateway: closing a client of %s with %d: %s", self.label or "?", *failure)
        self._decoder.release()
        # The client's bytes are still read (and dropped): closing a socket with unread bytes would
        # reset the connection, and the client could lose our close frame with them.
        self._refusal = close_frame(*failure)
        if self._stream.at_boundary:
            self.close()
        else:
            self._closing = asyncio.get_running_loop().call_later(CLOSE_WAIT, self.close)

    # -- browser → client -----------------------------------------------------------------------

    def from_browser(self, data: bytes) -> None:
        client = self.client
        if client is None:
            self._early += data
            return
        if client.is_closing():
            return
        if self._refusal is not None:
            used = self._stream.feed(data, stop_at_boundary=True)
            client.write(data if used == len(data) else data[:used])
            if self._stream.at_boundary:
                self.close()
            return
        self._stream.feed(data)
        client.write(data)
        if (
            client.get_write_buffer_size() > HIGH_WATER
            and self.browser is not None
            and self._draining is None
        ):
            self.browser.pause_reading()
            self._wait_for_client()

    @property
    def at_frame_boundary(self) -> bool:
        return self._stream.at_boundary

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
        for timer in (self._draining, self._closing):
            if timer is not None:
                timer.cancel()
        self._decoder.release()
        if self.browser is not None and not self.browser.is_closing():
            self.browser.close()
        client = self.client
        if (
            client is not None
            and not client.is_closing()
            and self._stream.at_boundary
            and not self._close_sent
        ):
            # The client learns why: our refusal, or the session's end as it would from Chromium's own
            # close (unless Chromium's close frame has gone to it already).
            if self._refusal is not None or not self._stream.closed:
                client.write(self._refusal or SESSION_ENDED)
            self._close_sent = True
        for transport in (self.browser, client):
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
