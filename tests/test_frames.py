"""The relay's WebSocket framing, sans I/O: the strict client decoder and the browser stream's headers."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.speedups import apply_mask

from browserfleet.gateway.frames import (
    MESSAGE_TOO_BIG,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PROTOCOL_ERROR,
    UNSUPPORTED_DATA,
    Budget,
    ClientDecoder,
    Failure,
    Frames,
    Limits,
    ServerStream,
    canonical_length,
    close_frame,
    frame_header,
    read_header,
)


def client_frame(
    payload: bytes,
    opcode: int = OP_TEXT,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_bytes: int | None = None,
) -> bytes:
    """A frame as a client writes it; `length_bytes` (0, 2 or 8) forces a length encoding."""
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    width = length_bytes if length_bytes is not None else (0 if size < 126 else 2 if size < 1 << 16 else 8)
    if width == 0:
        head += bytes([mask_bit | size])
    elif width == 2:
        head += bytes([mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


def decode(
    stream: bytes, step: int | None = None, limits: Limits | None = None
) -> tuple[Frames, Failure | None]:
    decoder = ClientDecoder(limits or Limits())
    step = step or len(stream) or 1
    out: Frames = []
    for i in range(0, len(stream), step):
        frames, failure = decoder.feed(stream[i : i + step])
        out += frames
        if failure is not None:
            assert decoder.held == 0
            return out, failure
    return out, None


SIZES = (0, 1, 125, 126, 127, 65535, 65536, 70000)


@pytest.mark.parametrize("size", SIZES)
def test_every_length_encoding_decodes(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    for step in (1, 3, None):
        assert decode(client_frame(payload), step) == ([(OP_TEXT, payload)], None)


def test_a_64_bit_length_is_read() -> None:
    header = read_header(client_frame(b"x" * 70000))
    assert header is not None and header[1:3] == (70000, 14) and canonical_length(header)
    huge = bytes([0x81, 0xFF]) + (1 << 40).to_bytes(8, "big") + b"abcd"
    assert read_header(huge) == (0x81, 1 << 40, 14, b"abcd")
    assert read_header(huge[:13]) is None


def test_fragments_are_reassembled_and_controls_pass_between_them() -> None:
    stream = (
        client_frame(b'{"id":1,', fin=False)
        + client_frame(b"hi", opcode=OP_PING)
        + client_frame(b'"method":', opcode=OP_CONTINUATION, fin=False)
        + client_frame(b"", opcode=OP_CONTINUATION, fin=False)
        + client_frame(b'"Browser.getVersion"}', opcode=OP_CONTINUATION)
        + client_frame(b"after")
        + client_frame(b"", opcode=OP_PONG)
    )
    expected = [
        (OP_PING, b"hi"),
        (OP_TEXT, b'{"id":1,"method":"Browser.getVersion"}'),
        (OP_TEXT, b"after"),
        (OP_PONG, b""),
    ]
    for step in (1, 2, 5, 17, None):
        assert decode(stream, step) == (expected, None)


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    pieces=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=50),
)
def test_any_split_of_any_stream_gives_the_same_messages(
    messages: list[bytes], pieces: list[int], cuts: list[int]
) -> None:
    stream = b""
    for n, message in enumerate(messages):
        parts = max(1, min(pieces[n % len(pieces)], len(message)))
        size = -(-len(message) // parts) if message else 0
        chunks = [message[i : i + size] for i in range(0, len(message), size)] if message else [b""]
        for i, chunk in enumerate(chunks):
            opcode = OP_TEXT if i == 0 else OP_CONTINUATION
            stream += client_frame(chunk, opcode=opcode, fin=i == len(chunks) - 1)
    decoder = ClientDecoder(Limits())
    out: Frames = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        frames, failure = decoder.feed(stream[pos : pos + step])
        assert failure is None
        out += frames
        pos, i = pos + step, i + 1
    assert out == [(OP_TEXT, m) for m in messages]
    assert decoder.held == 0


GOOD = client_frame(b'{"id":1,"method":"Browser.getVersion"}')
COMMAND = b'{"id":2,"method":"Target.createTarget","params":{"url":"file:///etc/hostname"}}'

VIOLATIONS = {
    "lone continuation": (client_frame(COMMAND, opcode=OP_CONTINUATION), PROTOCOL_ERROR),
    "text while fragments pend": (
        client_frame(b'{"id":3,', fin=False) + client_frame(COMMAND),
        PROTOCOL_ERROR,
    ),
    "rsv1": (client_frame(COMMAND, rsv=0x40), PROTOCOL_ERROR),
    "rsv2": (client_frame(COMMAND, rsv=0x20), PROTOCOL_ERROR),
    "rsv3": (client_frame(COMMAND, rsv=0x10), PROTOCOL_ERROR),
    **{f"opcode {op:#x}": (client_frame(COMMAND, opcode=op), PROTOCOL_ERROR) for op in (3, 4, 5, 6, 7)},
    **{
        f"opcode {op:#x}": (client_frame(b"x", opcode=op), PROTOCOL_ERROR) for op in (0xB, 0xC, 0xD, 0xE, 0xF)
    },
    "unmasked": (client_frame(COMMAND, masked=False), PROTOCOL_ERROR),
    "fragmented ping": (client_frame(b"x", opcode=OP_PING, fin=False), PROTOCOL_ERROR),
    "fragmented close": (client_frame(b"\x03\xe8", opcode=OP_CLOSE, fin=False), PROTOCOL_ERROR),
    "ping over 125": (client_frame(b"x" * 126, opcode=OP_PING), PROTOCOL_ERROR),
    "close over 125": (client_frame(b"\x03\xe8" + b"x" * 124, opcode=OP_CLOSE), PROTOCOL_ERROR),
    "close 1 byte": (client_frame(b"\x03", opcode=OP_CLOSE), PROTOCOL_ERROR),
    **{
        f"close code {code}": (client_frame(code.to_bytes(2, "big"), opcode=OP_CLOSE), PROTOCOL_ERROR)
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)
    },
    "close reason not UTF-8": (client_frame(b"\x03\xe8\xff\xfe", opcode=OP_CLOSE), PROTOCOL_ERROR),
    "16-bit length for 5 bytes": (client_frame(b"hello", length_bytes=2), PROTOCOL_ERROR),
    "64-bit length for 5 bytes": (client_frame(b"hello", length_bytes=8), PROTOCOL_ERROR),
    "64-bit length, top bit set": (
        bytes([0x81, 0xFF]) + (1 << 63).to_bytes(8, "big") + b"abcd",
        PROTOCOL_ERROR,
    ),
    "binary": (client_frame(COMMAND, opcode=OP_BINARY), UNSUPPORTED_DATA),
    "binary fragments": (
        client_frame(COMMAND[:10], opcode=OP_BINARY, fin=False)
        + client_frame(COMMAND[10:], opcode=OP_CONTINUATION),
        UNSUPPORTED_DATA,
    ),
}


@pytest.mark.parametrize("name", VIOLATIONS)
def test_framing_violations_close_and_nothing_of_them_passes(name: str) -> None:
    bad, code = VIOLATIONS[name]
    for step in (1, None):
        frames, failure = decode(GOOD + bad + GOOD, step)
        assert failure is not None and failure.code == code, (name, failure)
        # The good frame before the violation went on; nothing of the violation, nor anything after it.
        assert frames == [(OP_TEXT, apply_mask(GOOD[6:], GOOD[2:6]))], name


def test_valid_close_frames_pass_and_end_the_stream() -> None:
    for payload in (b"", b"\x03\xe8", b"\x03\xe9bye", (3000).to_bytes(2, "big"), (4999).to_bytes(2, "big")):
        frames, failure = decode(client_frame(payload, opcode=OP_CLOSE) + GOOD)
        assert failure is None and frames == [(OP_CLOSE, payload)]  # nothing after a close


def test_a_failed_decoder_ignores_what_follows() -> None:
    decoder = ClientDecoder(Limits())
    assert decoder.feed(client_frame(b"x", opcode=OP_BINARY))[1] is not None
    assert decoder.feed(GOOD) == ([], None)


MIB = 1024 * 1024


def test_a_message_over_the_cap_fails_on_its_announced_length() -> None:
    limits = Limits(max_message=MIB, per_connection=MIB, budget=Budget(10 * MIB))
    decoder = ClientDecoder(limits)
    header = bytes([0x81, 0xFF]) + (MIB + 1).to_bytes(8, "big") + b"abcd"
    frames, failure = decoder.feed(header)  # no payload sent at all
    assert failure == Failure(MESSAGE_TOO_BIG, "message too big") and frames == []
    assert limits.budget.held == 0
    # Fragments count together.
    frames, failure = decode(
        client_frame(b"a" * (MIB // 2), fin=False)
        + client_frame(b"b" * (MIB // 2 + 1), opcode=OP_CONTINUATION),
        limits=limits,
    )
    assert failure is not None and failure.code == MESSAGE_TOO_BIG and frames == []
    # At the cap exactly, it passes.
    frames, failure = decode(client_frame(b"c" * MIB), step=4096, limits=limits)
    assert failure is None and frames == [(OP_TEXT, b"c" * MIB)]


def test_held_bytes_count_against_the_connection_and_the_budget() -> None:
    budget = Budget(3 * MIB)
    limits = Limits(max_message=10 * MIB, per_connection=2 * MIB, budget=budget)
    one, two = ClientDecoder(limits), ClientDecoder(limits)
    # A frame announced within the cap, sent slowly: what has arrived is held and counted.
    partial = client_frame(b"p" * (5 * MIB))
    assert one.feed(partial[: MIB + 14]) == ([], None)
    assert one.held == MIB and budget.held == MIB
    _, failure = one.feed(partial[MIB + 14 : 2 * MIB + 15])  # past the per-connection 2 MiB
    assert failure is not None and failure.code == MESSAGE_TOO_BIG
    assert one.held == 0 and budget.held == 0
    # Fragments of two connections share the process budget.
    assert two.feed(client_frame(b"f" * (2 * MIB - 100), fin=False))[1] is None
    three = ClientDecoder(limits)
    assert three.feed(client_frame(b"g" * MIB, fin=False))[1] is None
    assert budget.held == 3 * MIB - 100
    _, failure = three.feed(client_frame(b"h" * 200, opcode=OP_CONTINUATION, fin=False))
    assert failure is not None and failure.code == MESSAGE_TOO_BIG
    assert budget.held == 2 * MIB - 100  # three's share was given back when it failed


def test_release_gives_the_budget_back() -> None:
    budget = Budget(100 * MIB)
    decoder = ClientDecoder(Limits(budget=budget))
    frames, failure = decoder.feed(
        client_frame(b"x" * 1000, fin=False) + client_frame(b"y" * 5000, opcode=OP_CONTINUATION)[:3000]
    )
    assert frames == [] and failure is None
    assert budget.held == decoder.held == 1000 + 3000 - 8  # a fragment, and a frame's first bytes
    decoder.release()
    assert budget.held == 0 and decoder.held == 0
    decoder.release()  # twice is harmless
    assert budget.held == 0


def test_written_frames_read_back() -> None:
    for size in SIZES:
        head = frame_header(OP_TEXT, size)
        assert read_header(head) == (0x80 | OP_TEXT, size, len(head), b"\x00\x00\x00\x00")
    assert close_frame(1001, "session ended") == b"\x88\x0f\x03\xe9session ended"
    assert len(close_frame(1002, "x" * 500)) == 2 + 125
    cut = close_frame(1002, "é" * 100)  # 200 bytes of UTF-8, cut between characters
    assert cut[4:].decode() == "é" * 61 and cut[1] == len(cut) - 2


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        return head + bytes([size]) + payload
    if size < 1 << 16:
        return head + bytes([126]) + size.to_bytes(2, "big") + payload
    return head + bytes([127]) + size.to_bytes(8, "big") + payload


def test_the_browser_stream_is_followed_by_its_headers_split_anywhere() -> None:
    texts = [b"a" * 10, b"b" * 200, b"", b"c" * 70000]
    stream = b"".join(server_frame(t) for t in texts[:2]) + server_frame(b"", OP_PING)
    stream += b"".join(server_frame(t) for t in texts[2:]) + server_frame(b"\x03\xe8", OP_CLOSE)
    for step in (1, 2, 13, 1000, len(stream)):
        seen: list[tuple[bytes, int]] = []
        tracker = ServerStream(64, lambda kept, size, seen=seen: seen.append((kept, size)))
        for i in range(0, len(stream), step):
            assert tracker.feed(stream[i : i + step]) == min(step, len(stream) - i)
        assert tracker.at_boundary and tracker.closed
        assert seen == [(t[:64], len(t)) for t in texts]


def test_the_browser_stream_stops_at_the_first_boundary() -> None:
    one, two = server_frame(b"x" * 300), server_frame(b"y" * 10)
    tracker = ServerStream()
    assert tracker.feed(b"", stop_at_boundary=True) == 0
    assert tracker.feed(one[:5]) == 5 and not tracker.at_boundary  # inside the payload now
    assert tracker.feed(one[5:] + two, stop_at_boundary=True) == len(one) - 5
    assert tracker.at_boundary
    assert tracker.feed(two, stop_at_boundary=True) == 0  # at a boundary already
    tracker.feed(two[:1])  # half a header
    assert not tracker.at_boundary
    assert tracker.feed(two[1:] + one, stop_at_boundary=True) == len(two) - 1
    assert tracker.at_boundary
