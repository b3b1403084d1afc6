"""Session video: per-tab frame logs, and their encoding to HLS (fMP4) and MP4.

Owns three things. The frame log: an append-only file of (timestamp_ms, JPEG) records, one per
screencast frame Chromium sent, written while the session runs and readable after a crash (a torn
last record is ignored, and a log reopened for append is first cut back to its last whole record).
The encoder: after the session, a log becomes an HLS VOD of H.264 fragmented-MP4 segments
(`index.m3u8`, `init.mp4`, `seg-00000.m4s` ...) for a replay player such as hls.js or Safari. The
export: one ordinary (non-fragmented, faststart) MP4 file remuxed from that HLS dir, for download.

Must not touch session state, the store or HTTP: callers decide when a log is written, when it is
encoded (encoding is CPU-bound and blocking: run it in a worker thread or process, off the event
loop) and where the results are served from. Nothing here knows what a session is.

Video timing is the frames' own: variable frame rate with millisecond timestamps, each frame shown
until the next one, so a static page costs one frame however long it stays. Encoding never drops or
duplicates a frame: the video has exactly one frame per decodable record.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import struct
import tempfile
import uuid
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.error
from av.codec.context import CodecContext
from av.container import OutputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter
from av.video.stream import VideoStream

__all__ = ["Encoded", "FrameLog", "encode_hls", "mp4_from_hls", "read_frames"]

log = logging.getLogger(__name__)

# --- frame log -----------------------------------------------------------------------------------
#
# File: an 8-byte magic, then records. Record: little-endian int64 timestamp_ms, uint32 payload
# length, uint32 CRC-32 of (timestamp, length, payload); then the payload. The CRC covers the header
# too, so a tail of zeros (a file extended but never written, after power loss) is not a record.

_MAGIC = b"BFFRLOG1"
_RECORD = struct.Struct("<qII")
_MAX_PAYLOAD = 64 * 1024 * 1024  # a screencast frame is tens to hundreds of KB


def _crc(timestamp_ms: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<qI", timestamp_ms, len(payload))))


def _read_header(f: BinaryIO) -> bool:
    """True when f starts with a whole magic; False for an empty file or a torn magic."""
    head = f.read(len(_MAGIC))
    if head == _MAGIC:
        return True
    if _MAGIC.startswith(head):
        return False
    raise ValueError(f"{getattr(f, 'name', f)!r} is not a frame log")


def _records(f: BinaryIO) -> Iterator[tuple[int, bytes, int]]:
    """(timestamp_ms, payload, offset after the record) for each whole record after the magic."""
    while True:
        head = f.read(_RECORD.size)
        if len(head) < _RECORD.size:
            return
        timestamp_ms, length, crc = _RECORD.unpack(head)
        if length == 0 or length > _MAX_PAYLOAD:
            return
        payload = f.read(length)
        if len(payload) < length or _crc(timestamp_ms, payload) != crc:
            return
        yield timestamp_ms, payload, f.tell()


class FrameLog:
    """Append-only log of (timestamp_ms, jpeg bytes) records in one file; crash-safe to read back (a torn
    last record is ignored).

    Each append is one write() of one record, flushed to the OS at once (not fsync'ed: a crash of the
    process loses nothing, a crash of the machine at most the last frames). Opening an existing log
    cuts it back to its last whole record, so appends after a crash stay readable. Not thread-safe:
    one writer per file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._count = 0
        valid_end = 0
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as f:
            if _read_header(f):
                valid_end = len(_MAGIC)
                for _, _, end in _records(f):
                    valid_end = end
        self._file: BinaryIO | None = self.path.open("ab")
        try:
            if self._file.tell() != valid_end:
                self._file.truncate(valid_end)
                self._file.seek(valid_end)
            if valid_end == 0:
                self._file.write(_MAGIC)
                self._file.flush()
        except BaseException:
            self._file.close()
            raise

    def append(self, timestamp_ms: int, jpeg: bytes) -> None:
        if self._file is None:
            raise ValueError(f"frame log {self.path} is closed")
        if not jpeg:
            raise ValueError("empty frame")
        if len(jpeg) > _MAX_PAYLOAD:
            raise ValueError(f"frame of {len(jpeg)} bytes is over the {_MAX_PAYLOAD} byte limit")
        header = _RECORD.pack(timestamp_ms, len(jpeg), _crc(timestamp_ms, jpeg))
        self._file.write(header + jpeg)
        self._file.flush()
        self._count += 1

    @property
    def count(self) -> int:
        """Records appended through this object (not those already in the file when it was opened)."""
        return self._count

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> FrameLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """(timestamp_ms, jpeg) for each whole record, in file order; stops cleanly at a torn record.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not a frame log. Safe
    to call while a FrameLog is still appending to the file (it sees the records written so far).
    """
    with Path(path).open("rb") as f:
        if not _read_header(f):
            return
        for timestamp_ms, payload, _ in _records(f):
            yield timestamp_ms, payload


# --- encoding ------------------------------------------------------------------------------------

_LAST_FRAME_MS = 100  # how long the last frame lasts when the caller gives no later end
_X264_OPTIONS = {
    # veryfast: ~2x the CPU of ultrafast for about half the bytes on screen content (see bench/video.py).
    "preset": "veryfast",
    "crf": "26",
    # Keyframes only where encode_hls forces them (segment boundaries), and forced ones are IDR, so
    # every segment starts with an IDR frame and no segment is cut short by a scene change.
    "forced-idr": "1",
    "x264-params": "keyint=infinite:scenecut=0",
}
# x264 threads. Measured on 2 cores (bench/video.py): 1 thread ~59 fps, 2 ~75 fps, auto (3) ~70 fps,
# the same CPU seconds each; more would only take cores from running browsers.
_ENCODER_THREADS = 2
_TIME_BASE = Fraction(1, 1000)


@dataclass(frozen=True)
class Encoded:
    frame_count: int  # frames in the video == complete records in the log
    start_ms: int  # timestamp of the first frame
    end_ms: int  # end of the video (see end_ms below)
    playlist: Path  # out_dir / "index.m3u8"


class _Decoder:
    """Screencast images (JPEG, or PNG if a recorder asked for it) to VideoFrames."""

    def __init__(self) -> None:
        self._contexts: dict[str, VideoCodecContext] = {}

    def decode(self, image: bytes) -> VideoFrame | None:
        codec = "png" if image.startswith(b"\x89PNG") else "mjpeg"
        ctx = self._contexts.get(codec)
        if ctx is None:
            created = CodecContext.create(codec, "r")
            assert isinstance(created, VideoCodecContext)
            ctx = self._contexts[codec] = created
        try:
            frames = ctx.decode(av.Packet(image))
        except av.error.FFmpegError as exc:
            log.warning("skipping an undecodable %s frame of %d bytes: %s", codec, len(image), exc)
            return None
        if not frames:
            log.warning("skipping a %s frame of %d bytes that decoded to nothing", codec, len(image))
            return None
        return frames[-1]


def _decoded_frames(frames_path: Path) -> Generator[tuple[int, VideoFrame]]:
    decoder = _Decoder()
    for timestamp_ms, image in read_frames(frames_path):
        frame = decoder.decode(image)
        if frame is not None:
            yield timestamp_ms, frame


class _Converter:
    """Any decoded frame to W x H yuv420p in limited range (what browsers expect of H.264).

    The matrix stays JPEG's BT.601 (tagged so in the stream): converting to BT.709 in swscale costs time
    and rounds white to off-white, while browsers honour the tag.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self._reformatter = VideoReformatter()

    def __call__(self, frame: VideoFrame) -> VideoFrame:
        name = frame.format.name
        is_yuv = name.startswith(("yuv", "nv", "gray"))
        full_range = name.startswith("yuvj") or frame.color_range == ColorRange.JPEG or not is_yuv
        return self._reformatter.reformat(
            frame,
            width=self.width,
            height=self.height,
            format="yuv420p",
            # JPEG's YCbCr is BT.601 full range; H.264 in a browser wants limited range.
            src_colorspace=Colorspace.ITU601 if is_yuv else None,
            dst_colorspace=Colorspace.ITU601,
            src_color_range=ColorRange.JPEG if full_range else ColorRange.MPEG,
            dst_color_range=ColorRange.MPEG,
            interpolation=Interpolation.BICUBIC,
        )


def _add_video_stream(container: OutputContainer, width: int, height: int) -> VideoStream:
    stream = container.add_stream("libx264", options=dict(_X264_OPTIONS))
    assert isinstance(stream, VideoStream)
    ctx: VideoCodecContext = stream.codec_context
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.time_base = _TIME_BASE
    ctx.time_base = _TIME_BASE
    ctx.framerate = Fraction(10)  # a hint for rate control only: timestamps decide timing
    ctx.max_b_frames = 0  # no reordering: packets come out in frame order with dts == pts
    ctx.thread_count = _ENCODER_THREADS
    ctx.color_range = int(ColorRange.MPEG)
    # Tagged in the SPS and the colr box: BT.601 matrix (as converted), sRGB's (BT.709) primaries.
    ctx.colorspace = 6  # AVCOL_SPC_SMPTE170M
    ctx.color_primaries = 1  # AVCOL_PRI_BT709
    ctx.color_trc = 1  # AVCOL_TRC_BT709
    return stream


@dataclass
class _Muxed:
    frame_count: int
    keyframes_ms: list[int]  # pts of every keyframe, relative to the first frame
    duration_ms: int  # of the whole video


def _encode_fragmented(
    frames: Iterator[tuple[int, VideoFrame]],
    first: tuple[int, VideoFrame],
    start_ms: int,
    end_ms: int | None,
    segment_ms: int,
    out_path: Path,
) -> _Muxed:
    """Encode into one fragmented MP4 whose fragments each start at a keyframe."""
    first_frame = first[1]
    width = max(2, first_frame.width - first_frame.width % 2)
    height = max(2, first_frame.height - first_frame.height % 2)
    convert = _Converter(width, height)
    keyframes: list[int] = []
    durations: dict[int, int] = {}
    count = 0
    with av.open(
        str(out_path),
        "w",
        format="mp4",
        options={
            # One moof+mdat per keyframe; an empty moov up front (written once the encoder has given
            # its SPS/PPS); tfhd offsets relative to the moof, as HLS and DASH segments need.
            "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
            "video_track_timescale": "1000",
        },
    ) as container:
        stream = _add_video_stream(container, width, height)

        def mux(packets: list[av.Packet[VideoStream]]) -> None:
            for packet in packets:
                assert packet.pts is not None
                packet.duration = durations.pop(packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
                container.mux(packet)

        # A frame is sent to the encoder only once the next one is known, so its duration is set
        # before the encoder can possibly emit its packet.
        pending: VideoFrame | None = None
        last_key = -segment_ms
        last_pts = -1
        for timestamp_ms, frame in _chain(first, frames):
            # Timestamps should only grow; a repeated or backwards one is nudged 1 ms past the last.
            pts = max(timestamp_ms - start_ms, last_pts + 1)
            if pending is not None:
                assert pending.pts is not None
                durations[pending.pts] = pts - pending.pts
                mux(stream.encode(pending))
            pending = convert(frame)
            pending.pts = pts
            pending.time_base = _TIME_BASE
            if pts - last_key >= segment_ms:
                pending.pict_type = PictureType.I
                last_key = pts
            else:
                pending.pict_type = PictureType.NONE
            last_pts = pts
            count += 1
        assert pending is not None and pending.pts is not None
        if end_ms is not None and end_ms - start_ms > last_pts:
            last_duration = end_ms - start_ms - last_pts
        else:
            last_duration = _LAST_FRAME_MS
        durations[pending.pts] = last_duration
        mux(stream.encode(pending))
        mux(stream.encode(None))
        if durations:
            raise RuntimeError(f"the encoder dropped {len(durations)} of {count} frames")
    return _Muxed(count, keyframes, last_pts + last_duration)


def _chain(
    first: tuple[int, VideoFrame], rest: Iterator[tuple[int, VideoFrame]]
) -> Iterator[tuple[int, VideoFrame]]:
    yield first
    yield from rest


def _boxes(f: BinaryIO) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level ISO-BMFF box."""
    f.seek(0, os.SEEK_END)
    file_size = f.tell()
    offset = 0
    while offset + 8 <= file_size:
        f.seek(offset)
        size, kind = struct.unpack(">I4s", f.read(8))
        if size == 1:
            (size,) = struct.unpack(">Q", f.read(8))
        elif size == 0:
            size = file_size - offset
        if size < 8 or offset + size > file_size:
            raise ValueError(f"bad MP4 box {kind!r} at {offset}")
        yield kind, offset, size
        offset += size


def _copy_range(src: BinaryIO, dst: BinaryIO, offset: int, size: int) -> None:
    src.seek(offset)
    while size > 0:
        chunk = src.read(min(size, 1024 * 1024))
        if not chunk:
            raise ValueError("short read")
        dst.write(chunk)
        size -= len(chunk)


def _split_fragmented(mp4: Path, out_dir: Path) -> list[str]:
    """init.mp4 (everything before the first moof) and one seg-NNNNN.m4s per moof+mdat."""
    segments: list[str] = []
    with mp4.open("rb") as src:
        boxes = list(_boxes(src))
        first_moof = next((i for i, (kind, _, _) in enumerate(boxes) if kind == b"moof"), None)
        if first_moof is None:
            raise RuntimeError("the muxer wrote no fragment")
        with (out_dir / "init.mp4").open("wb") as dst:
            for _, offset, size in boxes[:first_moof]:
                _copy_range(src, dst, offset, size)
        segment: BinaryIO | None = None
        try:
            for kind, offset, size in boxes[first_moof:]:
                if kind == b"moof":
                    if segment is not None:
                        segment.close()
                    name = f"seg-{len(segments):05d}.m4s"
                    segments.append(name)
                    segment = (out_dir / name).open("wb")
                elif kind == b"mfra":  # the fragment index at the end belongs to no segment
                    continue
                assert segment is not None
                _copy_range(src, segment, offset, size)
        finally:
            if segment is not None:
                segment.close()
    return segments


def _playlist(segments: list[tuple[str, int]]) -> str:
    target = max(1, max(math.ceil(ms / 1000) for _, ms in segments))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    for name, ms in segments:
        lines += [f"#EXTINF:{ms / 1000:.3f},", name]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _replace_dir(new: Path, target: Path) -> None:
    """Put directory new at target, replacing whatever is there; target never holds a partial dir."""
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
        os.rename(target, old)
    os.rename(new, target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def encode_hls(
    frames_path: Path, out_dir: Path, end_ms: int | None = None, segment_seconds: float = 4.0
) -> Encoded | None:
    """Encode a frame log into out_dir: index.m3u8 (HLS VOD, #EXT-X-VERSION 7, #EXT-X-MAP init.mp4,
    #EXT-X-ENDLIST), init.mp4 and seg-00000.m4s ...  Returns None when the log has no frames.

    Variable frame rate: each frame's pts is its timestamp relative to the first (time base 1/1000);
    each frame lasts until the next one; the last lasts until end_ms (when given and later than the
    last timestamp, e.g. the session's end) or 100 ms. Frame size: the first frame's size rounded down
    to even; later frames of another size are scaled to it. Writes into a temp dir inside out_dir's
    parent and renames into place, so a crash never leaves a half playlist. Idempotent (re-encoding
    replaces).

    H.264 (libx264, yuv420p, limited range, no B-frames), one IDR frame at the first frame that
    comes segment_seconds or more after the previous one; every segment starts there, so a segment
    lasts at least segment_seconds (but the last) and as long as the page stayed still. A missing log
    counts as empty; records whose image does not decode are skipped (logged), and a timestamp not
    later than the one before is moved 1 ms past it. Blocking and CPU-bound (about 0.1 to 0.2 CPU
    seconds per second of busy 720p video): call it from a worker, never the event loop.
    """
    if segment_seconds <= 0:
        raise ValueError("segment_seconds must be positive")
    out_dir = Path(out_dir)
    frames = _decoded_frames(Path(frames_path))
    with contextlib.closing(frames):
        try:
            first = next(frames, None)
        except FileNotFoundError:
            return None
        if first is None:
            return None
        return _encode_hls(frames, first, out_dir, end_ms, segment_seconds)


def _encode_hls(
    frames: Iterator[tuple[int, VideoFrame]],
    first: tuple[int, VideoFrame],
    out_dir: Path,
    end_ms: int | None,
    segment_seconds: float,
) -> Encoded:
    start_ms = first[0]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        fragmented = tmp / "stream.fmp4"
        muxed = _encode_fragmented(
            frames, first, start_ms, end_ms, max(1, round(segment_seconds * 1000)), fragmented
        )
        names = _split_fragmented(fragmented, tmp)
        fragmented.unlink()
        if len(names) != len(muxed.keyframes_ms):
            raise RuntimeError(f"{len(names)} fragments for {len(muxed.keyframes_ms)} keyframes")
        bounds = [*muxed.keyframes_ms, muxed.duration_ms]
        segments = [(name, bounds[i + 1] - bounds[i]) for i, name in enumerate(names)]
        (tmp / "index.m3u8").write_text(_playlist(segments))
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Encoded(
        frame_count=muxed.frame_count,
        start_ms=start_ms,
        end_ms=start_ms + muxed.duration_ms,
        playlist=out_dir / "index.m3u8",
    )


# --- export --------------------------------------------------------------------------------------


def _playlist_files(out_dir: Path) -> tuple[Path, list[Path]]:
    """The init segment and media segments an index.m3u8 written by encode_hls names, in order."""
    init: Path | None = None
    segments: list[Path] = []

    def inside(uri: str) -> Path:
        if "/" in uri or "\\" in uri or uri in ("", ".", ".."):
            raise ValueError(f"unexpected URI in {out_dir / 'index.m3u8'}: {uri!r}")
        return out_dir / uri

    for line in (out_dir / "index.m3u8").read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            attrs = line.split(":", 1)[1]
            if 'URI="' not in attrs:
                raise ValueError(f"no URI in {line!r}")
            init = inside(attrs.split('URI="', 1)[1].split('"', 1)[0])
        elif line and not line.startswith("#"):
            segments.append(inside(line))
    if init is None or not segments:
        raise ValueError(f"{out_dir / 'index.m3u8'} names no init segment or no media segment")
    return init, segments


def mp4_from_hls(out_dir: Path, mp4_path: Path) -> Path:
    """One playable MP4 file from an encoded HLS dir (e.g. init.mp4 + segments concatenated is a valid
    fragmented MP4 — verify it decodes with PyAV; or remux). Written atomically.

    Remuxed (no re-encoding) into an ordinary MP4 with the index up front (faststart), so any player
    seeks in it and knows its duration at once. Same frames, timestamps and durations as the HLS.
    """
    out_dir = Path(out_dir)
    mp4_path = Path(mp4_path)
    init, segments = _playlist_files(out_dir)
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    fd, joined_name = tempfile.mkstemp(prefix=f".{mp4_path.name}.", suffix=".fmp4", dir=mp4_path.parent)
    joined = Path(joined_name)
    fd2, out_name = tempfile.mkstemp(prefix=f".{mp4_path.name}.", suffix=".mp4", dir=mp4_path.parent)
    os.close(fd2)
    result = Path(out_name)
    try:
        with os.fdopen(fd, "wb") as dst:
            for part in (init, *segments):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
        with (
            av.open(str(joined), "r") as source,
            av.open(
                str(result),
                "w",
                format="mp4",
                options={"movflags": "+faststart", "video_track_timescale": "1000"},
            ) as sink,
        ):
            video_in = source.streams.video[0]
            video_out = sink.add_stream_from_template(video_in)
            for packet in source.demux(video_in):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = video_out
                sink.mux(packet)
        result.chmod(0o644)  # mkstemp makes it 0600
        os.replace(result, mp4_path)
    except BaseException:
        result.unlink(missing_ok=True)
        raise
    finally:
        joined.unlink(missing_ok=True)
    return mp4_path
