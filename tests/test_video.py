"""Session video: frame logs, their encoding to HLS (fMP4) and the MP4 export.

No browser: screencast frames are JPEGs made here with PyAV's own MJPEG encoder. Every encoded video is
decoded again, and its frames counted and timed, through the HLS playlist and through the MP4.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.codeccontext import VideoCodecContext

from browserfleet.artifacts.video import Encoded, FrameLog, encode_hls, mp4_from_hls, read_frames


def jpeg(width: int, height: int, shade: int = 128, rgb: tuple[int, int, int] | None = None) -> bytes:
    """A JPEG as Chromium's screencast sends: flat luma `shade` with a bright square that moves."""
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 10)
    if rgb is not None:
        image = av.VideoFrame(width, height, "rgb24")
        image.planes[0].update(bytes(rgb) * (image.planes[0].buffer_size // 3))
        frame = image.reformat(format="yuvj420p")
    else:
        frame = av.VideoFrame(width, height, "yuvj420p")
        luma = frame.planes[0]
        rows = bytearray([shade % 256]) * luma.buffer_size
        x = (shade * 7) % max(1, width - 16)
        side = min(16, width - x)
        for y in range(min(16, height)):
            start = y * luma.line_size + x
            rows[start : start + side] = b"\xff" * side
        luma.update(bytes(rows))
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
    packets = encoder.encode(frame) + encoder.encode(None)
    assert len(packets) == 1
    return bytes(packets[0])


def write_log(path: Path, frames: list[tuple[int, bytes]]) -> Path:
    with FrameLog(path) as log:
        for timestamp_ms, data in frames:
            log.append(timestamp_ms, data)
        assert log.count == len(frames)
    return path


@dataclass
class Decoded:
    pts_ms: list[int]  # relative to the first frame
    durations_ms: list[int]
    sizes: set[tuple[int, int]]
    keyframes_ms: list[int]
    container_ms: float  # the container's own idea of its duration

    @property
    def count(self) -> int:
        return len(self.pts_ms)

    @property
    def duration_ms(self) -> int:
        return self.pts_ms[-1] + self.durations_ms[-1] - self.pts_ms[0]


def decode(path: Path, format: str | None = None) -> Decoded:
    with av.open(str(path), format=format) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        ms = stream.time_base * 1000
        pts: list[int] = []
        durations: list[int] = []
        sizes: set[tuple[int, int]] = set()
        keys: list[int] = []
        for frame in container.decode(stream):
            assert frame.pts is not None
            pts.append(round(frame.pts * ms))
            durations.append(round(frame.duration * ms))
            sizes.add((frame.width, frame.height))
            if frame.key_frame:
                keys.append(pts[-1])
        assert container.duration is not None
        first = pts[0] if pts else 0
        return Decoded(
            [p - first for p in pts], durations, sizes, [k - first for k in keys], container.duration / 1000
        )


def check_video(encoded: Encoded, out_dir: Path, timestamps: list[int], tmp_path: Path) -> None:
    """Both the HLS and the MP4 hold exactly these frames, at these times, for end_ms - start_ms."""
    expected_pts = [t - timestamps[0] for t in timestamps]
    expected_duration = encoded.end_ms - encoded.start_ms
    assert encoded.frame_count == len(timestamps)
    assert encoded.start_ms == timestamps[0]
    assert encoded.playlist == out_dir / "index.m3u8"
    mp4 = mp4_from_hls(out_dir, tmp_path / "export" / "session.mp4")
    assert mp4 == tmp_path / "export" / "session.mp4"
    for video in (decode(encoded.playlist, format="hls"), decode(mp4)):
        assert video.count == encoded.frame_count
        assert video.pts_ms == expected_pts
        assert video.duration_ms == expected_duration
        assert video.container_ms == pytest.approx(expected_duration, abs=1)
        assert video.keyframes_ms[0] == 0


def playlist_segments(out_dir: Path) -> list[tuple[float, str]]:
    lines = (out_dir / "index.m3u8").read_text().splitlines()
    return [
        (float(line.removeprefix("#EXTINF:").rstrip(",")), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


# --- the frame log ----------------------------------------------------------------------------------


def test_frame_log_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "tab-1.frames"
    records = [(1_700_000_000_000 + i * 37, bytes([i]) * (i + 1)) for i in range(20)]
    log = FrameLog(path)
    for timestamp_ms, data in records:
        log.append(timestamp_ms, data)
    assert log.count == 20
    assert list(read_frames(path)) == records  # readable while still open
    log.close()
    log.close()  # idempotent
    with pytest.raises(ValueError):
        log.append(0, b"x")
    assert list(read_frames(path)) == records

    reopened = FrameLog(path)  # appends after what is there; counts only its own
    reopened.append(5, b"more")
    assert reopened.count == 1
    reopened.close()
    assert list(read_frames(path)) == [*records, (5, b"more")]


@pytest.mark.parametrize("cut", [1, 5, 15, 16, 17])
def test_torn_last_record_is_ignored(tmp_path: Path, cut: int) -> None:
    frames = [(1000, jpeg(64, 48, 10)), (1100, jpeg(64, 48, 60)), (1200, jpeg(64, 48, 110))]
    path = write_log(tmp_path / "frames", frames)
    size = path.stat().st_size
    with path.open("r+b") as f:  # a crash in the middle of the last append
        f.truncate(size - len(frames[-1][1]) - 16 + cut)
    assert list(read_frames(path)) == frames[:2]

    encoded = encode_hls(path, tmp_path / "hls", end_ms=1500)
    assert encoded is not None
    check_video(encoded, tmp_path / "hls", [1000, 1100], tmp_path)
    assert encoded.end_ms == 1500

    # Reopened for append, the log drops the torn tail first, so later records stay readable.
    with FrameLog(path) as log:
        log.append(1300, frames[2][1])
    assert list(read_frames(path)) == [frames[0], frames[1], (1300, frames[2][1])]


def test_zero_filled_tail_and_bad_checksum_are_not_records(tmp_path: Path) -> None:
    path = write_log(tmp_path / "frames", [(1, b"one"), (2, b"two")])
    with path.open("ab") as f:
        f.write(b"\0" * 4096)  # a file extended by a crash but never written
    assert list(read_frames(path)) == [(1, b"one"), (2, b"two")]

    data = bytearray(path.read_bytes())
    data[data.rindex(b"two")] ^= 0xFF  # a flipped byte in the last payload
    path.write_bytes(bytes(data))
    assert list(read_frames(path)) == [(1, b"one")]


def test_not_a_frame_log(tmp_path: Path) -> None:
    path = tmp_path / "other"
    path.write_bytes(b"something else entirely")
    with pytest.raises(ValueError):
        list(read_frames(path))
    with pytest.raises(ValueError):
        FrameLog(path)
    with pytest.raises(FileNotFoundError):
        list(read_frames(tmp_path / "missing"))


def test_empty_log_returns_none(tmp_path: Path) -> None:
    path = write_log(tmp_path / "frames", [])
    assert list(read_frames(path)) == []
    assert encode_hls(path, tmp_path / "hls") is None
    assert encode_hls(tmp_path / "missing", tmp_path / "hls") is None
    path.write_bytes(b"BFF")  # a torn header: still no frames
    assert encode_hls(path, tmp_path / "hls") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


# --- encoding -----------------------------------------------------------------------------------------


def test_irregular_timestamps_with_a_long_static_gap(tmp_path: Path) -> None:
    start = 1_700_000_000_000
    offsets = [0, 100, 180, 250, 400, 1000, 1033, 1066]  # a burst of animation
    offsets += [31_066]  # then the page sat still for 30 s
    offsets += [31_066 + 100 * i for i in range(1, 71)]  # then 7 s at 10 fps
    timestamps = [start + o for o in offsets]
    path = write_log(tmp_path / "tab.frames", [(t, jpeg(320, 240, i * 3)) for i, t in enumerate(timestamps)])
    session_end = timestamps[-1] + 2500
    encoded = encode_hls(path, tmp_path / "hls", end_ms=session_end)
    assert encoded is not None
    assert encoded.end_ms == session_end
    check_video(encoded, tmp_path / "hls", timestamps, tmp_path)

    text = encoded.playlist.read_text()
    assert text.startswith("#EXTM3U\n")
    for tag in ("#EXT-X-VERSION:7", '#EXT-X-MAP:URI="init.mp4"', "#EXT-X-PLAYLIST-TYPE:VOD"):
        assert tag in text.splitlines()
    assert text.endswith("#EXT-X-ENDLIST\n")
    segments = playlist_segments(tmp_path / "hls")
    assert [name for _, name in segments] == [f"seg-{i:05d}.m4s" for i in range(len(segments))]
    assert sum(d for d, _ in segments) * 1000 == pytest.approx(session_end - start, abs=1)
    target = int(text.split("#EXT-X-TARGETDURATION:")[1].split()[0])
    assert all(round(d) <= target for d, _ in segments)
    assert sorted(p.name for p in (tmp_path / "hls").iterdir()) == sorted(
        ["index.m3u8", "init.mp4", *(name for _, name in segments)]
    )

    # Segments start on keyframes; no frame starts 4 s or more after its segment's keyframe.
    video = decode(encoded.playlist, format="hls")
    bounds = [0.0]
    for duration, _ in segments:
        bounds.append(bounds[-1] + duration * 1000)
    assert [round(b) for b in bounds[:-1]] == video.keyframes_ms
    for pts in video.pts_ms:
        key = max(k for k in video.keyframes_ms if k <= pts)
        assert pts - key < 4000
    # Each segment, on its own after init.mp4, is a playable piece starting with a keyframe.
    init = (tmp_path / "hls" / "init.mp4").read_bytes()
    for i, (_, name) in enumerate(segments):
        piece = tmp_path / f"piece-{i}.mp4"
        piece.write_bytes(init + (tmp_path / "hls" / name).read_bytes())
        with av.open(str(piece)) as container:
            first = next(container.decode(video=0))
            assert first.key_frame


def test_steady_ten_fps_segments(tmp_path: Path) -> None:
    timestamps = [5000 + 100 * i for i in range(125)]  # 12.5 s at 10 fps
    path = write_log(tmp_path / "frames", [(t, jpeg(160, 120, i)) for i, t in enumerate(timestamps)])
    encoded = encode_hls(path, tmp_path / "hls", end_ms=timestamps[-1] + 100, segment_seconds=4.0)
    assert encoded is not None
    check_video(encoded, tmp_path / "hls", timestamps, tmp_path)
    assert [d for d, _ in playlist_segments(tmp_path / "hls")] == [4.0, 4.0, 4.0, 0.5]
    assert decode(encoded.playlist, format="hls").durations_ms == [100] * 125


@pytest.mark.parametrize("end_ms", [None, 900, 1200])
def test_last_frame_lasts_100_ms_without_a_later_end(tmp_path: Path, end_ms: int | None) -> None:
    timestamps = [1000, 1040, 1200]
    path = write_log(tmp_path / "frames", [(t, jpeg(96, 64, i * 40)) for i, t in enumerate(timestamps)])
    encoded = encode_hls(path, tmp_path / "hls", end_ms=end_ms)
    assert encoded is not None
    assert encoded.end_ms == 1300
    check_video(encoded, tmp_path / "hls", timestamps, tmp_path)
    assert decode(tmp_path / "export" / "session.mp4").durations_ms == [40, 160, 100]


def test_single_frame(tmp_path: Path) -> None:
    path = write_log(tmp_path / "frames", [(42, jpeg(64, 64))])
    encoded = encode_hls(path, tmp_path / "hls", end_ms=60_042)
    assert encoded == Encoded(1, 42, 60_042, tmp_path / "hls" / "index.m3u8")
    check_video(encoded, tmp_path / "hls", [42], tmp_path)


def test_repeated_or_backwards_timestamps_keep_every_frame(tmp_path: Path) -> None:
    timestamps = [1000, 1000, 1050, 1040, 1100]
    path = write_log(tmp_path / "frames", [(t, jpeg(64, 48, i * 50)) for i, t in enumerate(timestamps)])
    encoded = encode_hls(path, tmp_path / "hls", end_ms=1200)
    assert encoded is not None
    assert encoded.frame_count == 5
    assert encoded.end_ms == 1200
    for video in (
        decode(encoded.playlist, format="hls"),
        decode(mp4_from_hls(tmp_path / "hls", tmp_path / "x.mp4")),
    ):
        assert video.pts_ms == [0, 1, 50, 51, 100]
        assert video.duration_ms == 200


def test_frames_of_another_size_are_scaled_to_the_first(tmp_path: Path) -> None:
    frames = [
        (0, jpeg(640, 360, 1)),
        (100, jpeg(320, 240, 2)),
        (200, jpeg(1280, 720, 3)),
        (300, jpeg(641, 361)),
    ]
    path = write_log(tmp_path / "frames", frames)
    encoded = encode_hls(path, tmp_path / "hls", end_ms=1000)
    assert encoded is not None
    check_video(encoded, tmp_path / "hls", [0, 100, 200, 300], tmp_path)
    assert decode(encoded.playlist, format="hls").sizes == {(640, 360)}
    assert decode(tmp_path / "export" / "session.mp4").sizes == {(640, 360)}


@pytest.mark.parametrize(
    ("size", "expected"), [((321, 239), (320, 238)), ((3, 3), (2, 2)), ((99, 100), (98, 100))]
)
def test_odd_sizes_round_down_to_even(
    tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    frames = [(0, jpeg(*size, 10)), (250, jpeg(*size, 200))]
    encoded = encode_hls(write_log(tmp_path / "frames", frames), tmp_path / "hls")
    assert encoded is not None
    check_video(encoded, tmp_path / "hls", [0, 250], tmp_path)
    assert decode(encoded.playlist, format="hls").sizes == {expected}


def test_colours_survive(tmp_path: Path) -> None:
    """JPEG's full-range BT.601 becomes limited-range H.264 tagged so: white stays white."""
    colours = [(255, 255, 255), (0, 0, 0), (200, 30, 40), (20, 120, 220)]
    frames = [(i * 1000, jpeg(64, 64, rgb=c)) for i, c in enumerate(colours)]
    encoded = encode_hls(write_log(tmp_path / "frames", frames), tmp_path / "hls")
    assert encoded is not None
    with av.open(str(encoded.playlist), format="hls") as container:
        decoded = [frame.to_rgb() for frame in container.decode(video=0)]
    for colour, frame in zip(colours, decoded, strict=True):
        centre = bytes(frame.planes[0])[32 * frame.planes[0].line_size + 32 * 3 :][:3]
        assert all(abs(a - b) <= 8 for a, b in zip(centre, colour, strict=True)), (colour, tuple(centre))


def test_undecodable_frames_are_skipped(tmp_path: Path) -> None:
    frames = [(0, jpeg(64, 48)), (100, b"not an image"), (200, jpeg(64, 48, 9))]
    encoded = encode_hls(write_log(tmp_path / "frames", frames), tmp_path / "hls", end_ms=300)
    assert encoded is not None
    check_video(encoded, tmp_path / "hls", [0, 200], tmp_path)


def test_reencoding_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "recordings" / "tab-1"
    first = write_log(tmp_path / "a", [(t, jpeg(64, 48, t)) for t in range(0, 20_000, 500)])
    encoded = encode_hls(first, out_dir, segment_seconds=2.0)
    assert encoded is not None and encoded.frame_count == 40
    assert len(playlist_segments(out_dir)) == 10
    (out_dir / "stray").write_text("left by someone")

    second = write_log(tmp_path / "b", [(0, jpeg(64, 48)), (100, jpeg(64, 48, 99))])
    encoded = encode_hls(second, out_dir)
    assert encoded is not None
    check_video(encoded, out_dir, [0, 100], tmp_path)
    assert sorted(p.name for p in out_dir.iterdir()) == ["index.m3u8", "init.mp4", "seg-00000.m4s"]
    assert [p.name for p in (tmp_path / "recordings").iterdir()] == ["tab-1"]
    assert [p.name for p in (tmp_path / "export").iterdir()] == ["session.mp4"]

    # The MP4 export replaces an older one too.
    mp4_from_hls(out_dir, tmp_path / "export" / "session.mp4")
    assert decode(tmp_path / "export" / "session.mp4").count == 2


def test_failed_encode_leaves_the_previous_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "hls"
    encoded = encode_hls(write_log(tmp_path / "a", [(0, jpeg(64, 48))]), out_dir)
    assert encoded is not None
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}

    import browserfleet.artifacts.video as video

    def crash(*args: object) -> list[str]:
        raise OSError("disk full")

    monkeypatch.setattr(video, "_split_fragmented", crash)
    with pytest.raises(OSError, match="disk full"):
        encode_hls(write_log(tmp_path / "b", [(0, jpeg(32, 32)), (5, jpeg(32, 32))]), out_dir)
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "hls"]


def test_mp4_from_hls_needs_a_playlist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        mp4_from_hls(tmp_path / "nothing", tmp_path / "out.mp4")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.m3u8").write_text(
        '#EXTM3U\n#EXT-X-MAP:URI="../init.mp4"\n#EXTINF:1,\nseg.m4s\n'
    )
    with pytest.raises(ValueError):
        mp4_from_hls(tmp_path / "bad", tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()
