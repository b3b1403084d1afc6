"""WebSocket framing (RFC 6455) for the relay, without I/O: bytes in, frames and verdicts out.

Owns the one frame-header reader both directions use, the strict decoder of a client's frames, and
the few frames the relay writes itself (zero-masked messages for the browser, close frames for the
client). Neither leg negotiates an extension.

Client → browser (`ClientDecoder`) guarantees:
- Only whole, valid messages come out: a text message (fragments reassembled) or a control frame,
  unmasked. What Chromium's lenient decoder would accept and we would not see (a continuation with
  no message in progress, a new message while fragments pend, RSV bits, reserved opcodes, unmasked
  frames, fragmented or oversized control frames, malformed close frames, non-minimal lengths) is a
  `Failure` (1002); binary frames are refused (1003: CDP is text, Chromium drops the connection on one).
  Nothing from the offending frame on ever comes out.
- Memory: a message over `Limits.max_message` fails (1009) on its announced length, before its
  payload is buffered; bytes held for unfinished frames and fragments count against a per-connection
  limit and a process-wide `Budget` (1009 when either is exceeded), given back by `release()`.

Browser → client (`ServerStream`): payloads are never buffered or parsed, only headers read, so the
relay knows where frame boundaries are (to put a close frame in) and can hand the tap the head of
each text message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from websockets.speedups import apply_mask

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_KNOWN_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})

GOING_AWAY, PROTOCOL_ERROR, UNSUPPORTED_DATA = 1001, 1002, 1003
POLICY_VIOLATION, MESSAGE_TOO_BIG = 1008, 1009
# Codes a peer may send in a close frame (RFC 6455 7.4, and the IANA registry's 1012-1014).
_VALID_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

MIB = 1024 * 1024
MAX_MESSAGE = 100 * MIB  # a 50 MB upload is a ~67 MB base64 text message
MAX_CONTROL_PAYLOAD = 125
ZERO_MASK = b"\x00\x00\x00\x00"


# A frame header: (first byte: FIN, RSV and opcode bits; payload length; bytes of the header itself,
# mask included; the mask, b"" when there is none). A plain tuple: the browser's stream reads one per
# frame, and a named tuple would double the cost of that.
Header = tuple[int, int, int, bytes]


def read_header(buf: bytes | bytearray, pos: int = 0) -> Header | None:
    """The frame header at `buf[pos:]`, or None while it is incomplete."""
    have = len(buf) - pos
    if have < 2:
        return None
    b1 = buf[pos + 1]
    length, size = b1 & 0x7F, 2
    if length == 126:
        if have < 4:
            return None
        length, size = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
    elif length == 127:
        if have < 10:
            return None
        length, size = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
    if not b1 & 0x80:
        return buf[pos], length, size, b""
    if have < size + 4:
        return None
    return buf[pos], length, size + 4, bytes(buf[pos + size : pos + size + 4])


def canonical_length(header: Header) -> bool:
    """Whether the length is written in the fewest bytes, and below 2**63 (RFC 6455 5.2)."""
    _, length, size, mask = header
    width = size - len(mask)
    return width == 2 or (width == 4 and length >= 126) or (width == 10 and 1 << 16 <= length < 1 << 63)


def next_header(head: bytearray, data: bytes, pos: int) -> tuple[Header, int] | None:
    """The frame header at `pos` in `data`, completing the start of one kept in `head` from earlier
    reads, and the position after it. None: `data` ended inside the header, now kept in `head`
    (a header is at most 14 bytes, so a start that 14 bytes cannot complete means `data` ran out)."""
    if head:
        had = len(head)
        head += data[pos : pos + 14 - had]
        header = read_header(head)
        if header is None:
            return None
        head.clear()
        return header, pos + header[2] - had
    header = read_header(data, pos)
    if header is None:
        head += data[pos:]
        return None
    return header, pos + header[2]


def frame_header(opcode: int, length: int) -> bytes:
    """The header of a final client-to-server frame with a zero mask (its payload goes as it is)."""
    if length < 126:
        return bytes([0x80 | opcode, 0x80 | length]) + ZERO_MASK
    if length < 1 << 16:
        return bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big") + ZERO_MASK
    return bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big") + ZERO_MASK


def close_frame(code: int, reason: str) -> bytes:
    """A server-to-client close frame (unmasked); the reason is cut to fit, at a character boundary."""
    cut = reason.encode()[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore").encode()
    body = code.to_bytes(2, "big") + cut
    return bytes([0x80 | OP_CLOSE, len(body)]) + body


class Failure(NamedTuple):
    code: int
    reason: str  # short, for the close frame and the log; never echoes the client's bytes


class Budget:
    """Bytes held in reassembly by every connection that shares it, against one limit."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


@dataclass(frozen=True)
class Limits:
    max_message: int = MAX_MESSAGE
    per_connection: int = MAX_MESSAGE
    budget: Budget = field(default_factory=lambda: Budget(1024 * MIB))


Frames = list[tuple[int, bytes]]  # (OP_TEXT, whole message) or (control opcode, payload), unmasked


class ClientDecoder:
    """A client's byte stream → its messages and control frames, strictly (see the module docstring)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._head = bytearray()  # a header split across reads
        self._frame: Header | None = None  # the frame whose payload is being read
        self._partial = bytearray()  # its (masked) payload so far
        self._message: bytearray | None = None  # the fragmented text message being reassembled
        self._held = 0  # bytes of _partial and _message, also counted in the budget
        self._done = False  # failed, released, or the client sent a close frame: input is ignored

    @property
    def held(self) -> int:
        return self._held

    def feed(self, data: bytes) -> tuple[Frames, Failure | None]:
        """The frames completed by `data`, in order, and the failure that stopped decoding, if any."""
        out: Frames = []
        pos, end = 0, len(data)
        while pos < end and not self._done:
            frame = self._frame
            if frame is None:
                found = next_header(self._head, data, pos)
                if found is None:
                    return out, None  # `data` is used up: the rest of the header comes later
                header, pos = found
                failure = self._check(header)
                if failure is not None:
                    return out, self._fail(failure)
                start, length = pos, header[1]
                if end - pos >= length:
                    # The whole payload is here: no copy into the buffer.
                    pos += length
                    failure = self._complete(header, apply_mask(memoryview(data)[start:pos], header[3]), out)
                    if failure is not None:
                        return out, self._fail(failure)
                    continue
                self._frame = frame = header
            take = min(frame[1] - len(self._partial), end - pos)
            failure = self._hold(take)
            if failure is not None:
                return out, self._fail(failure)
            self._partial += data[pos : pos + take]
            pos += take
            if len(self._partial) == frame[1]:
                payload = apply_mask(self._partial, frame[3])
                self._release_bytes(len(self._partial))
                self._partial = bytearray()
                self._frame = None
                failure = self._complete(frame, payload, out)
                if failure is not None:
                    return out, self._fail(failure)
        return out, None

    def release(self) -> None:
        """Drop whatever is held and give it back to the budget; later input is ignored."""
        self._done = True
        self._release_bytes(self._held)
        self._partial = bytearray()
        self._message = None
        self._head.clear()

    # -- internals --------------------------------------------------------------------------------

    def _check(self, header: Header) -> Failure | None:
        b0, length, _, mask = header
        opcode = b0 & 0x0F
        if b0 & 0x70:
            return Failure(PROTOCOL_ERROR, "reserved bits set")
        if opcode not in _KNOWN_OPCODES:
            return Failure(PROTOCOL_ERROR, "reserved opcode")
        if not mask:
            return Failure(PROTOCOL_ERROR, "client frames must be masked")
        if not canonical_length(header):
            return Failure(PROTOCOL_ERROR, "frame length not minimally encoded")
        if opcode >= OP_CLOSE:
            if not b0 & 0x80 or length > MAX_CONTROL_PAYLOAD:
                return Failure(PROTOCOL_ERROR, "control frames must be whole and at most 125 bytes")
            return None
        if opcode == OP_BINARY:
            return Failure(UNSUPPORTED_DATA, "binary frames are not CDP")
        in_progress = self._message is not None
        if opcode == OP_CONTINUATION and not in_progress:
            return Failure(PROTOCOL_ERROR, "continuation frame without a message in progress")
        if opcode == OP_TEXT and in_progress:
            return Failure(PROTOCOL_ERROR, "new message before the fragmented one was finished")
        so_far = len(self._message) if self._message is not None else 0
        if so_far + length > self.limits.max_message:
            return Failure(MESSAGE_TOO_BIG, "message too big")
        return None

    def _complete(self, header: Header, payload: bytes, out: Frames) -> Failure | None:
        opcode, fin = header[0] & 0x0F, header[0] & 0x80
        if opcode >= OP_CLOSE:
            if opcode == OP_CLOSE:
                failure = _close_payload_problem(payload)
                if failure is not None:
                    return failure
                self._done = True  # nothing may follow a close frame
            out.append((opcode, payload))
            return None
        if fin and self._message is None:
            out.append((OP_TEXT, payload))
            return None
        failure = self._hold(len(payload))
        if failure is not None:
            return failure
        if self._message is None:
            self._message = bytearray(payload)
        else:
            self._message += payload
        if fin:
            message = bytes(self._message)
            self._release_bytes(len(self._message))
            self._message = None
            out.append((OP_TEXT, message))
        return None

    def _hold(self, size: int) -> Failure | None:
        if self._held + size > self.limits.per_connection or not self.limits.budget.take(size):
            return Failure(MESSAGE_TOO_BIG, "too much data held for unfinished messages")
        self._held += size
        return None

    def _release_bytes(self, size: int) -> None:
        self._held -= size
        self.limits.budget.give(size)

    def _fail(self, failure: Failure) -> Failure:
        self.release()
        return failure


def _close_payload_problem(payload: bytes) -> Failure | None:
    if not payload:
        return None
    if len(payload) == 1:
        return Failure(PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _VALID_CLOSE_CODES and not 3000 <= code < 5000:
        return Failure(PROTOCOL_ERROR, "invalid close code")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return Failure(PROTOCOL_ERROR, "close reason is not UTF-8")
    return None


class ServerStream:
    """Where a stream of server frames is: inside a header, inside a payload, or between frames.

    `feed` reads headers and counts payloads. With `on_text`, the first `keep` bytes of each text
    frame's payload and its full length are handed to it once the frame has passed.
    """

    __slots__ = ("_head", "_kept", "_kept_size", "_skip", "closed", "keep", "on_text")

    def __init__(self, keep: int = 0, on_text: Callable[[bytes, int], None] | None = None) -> None:
        self.keep = keep
        self.on_text = on_text
        self.closed = False  # a close frame has started to pass
        self._skip = 0  # payload bytes left in the current frame
        self._head = bytearray()  # a header split across reads
        self._kept: bytearray | None = None
        self._kept_size = 0

    @property
    def at_boundary(self) -> bool:
        return not self._skip and not self._head

    def feed(self, data: bytes, stop_at_boundary: bool = False) -> int:
        """Advance over `data`; the bytes used: all of them, or with `stop_at_boundary`, up to the first
        frame boundary reached (0 if the stream is at one already)."""
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                kept = self._kept
                if kept is not None and len(kept) < self.keep:
                    kept += data[pos : pos + min(step, self.keep - len(kept))]
                self._skip -= step
                pos += step
                if not self._skip:
                    if kept is not None:
                        self._text_passed()
                    if stop_at_boundary:
                        return pos
                continue
            if stop_at_boundary and not self._head:
                return pos
            found = next_header(self._head, data, pos)
            if found is None:
                return end
            header, pos = found
            opcode, length = header[0] & 0x0F, header[1]
            if opcode == OP_CLOSE:
                self.closed = True
            if self.on_text is not None and opcode == OP_TEXT:
                self._kept, self._kept_size = bytearray(), length
            self._skip = length
            if not length:
                if self._kept is not None:
                    self._text_passed()
                if stop_at_boundary:
                    return pos
        return end

    def _text_passed(self) -> None:
        if self._kept is not None and self.on_text is not None:
            self.on_text(bytes(self._kept), self._kept_size)
        self._kept = None
