"""Video: what encoding a recorded session costs (`browserfleet.artifacts.video`).

Synthesizes 60 s of 1280x720 screencast at 10 fps of a moving scene (FFmpeg's `testsrc2` pattern:
moving shapes, gradients and changing text on every frame, so every frame differs, a worst case
next to a real page that mostly sits still), each frame a JPEG as Chromium sends them, appended to a
frame log with millisecond timestamps. Then times `encode_hls` on that log (wall clock, and the
process's CPU seconds: all encoder threads included) and `mp4_from_hls` on the result, and checks
that the video decodes to as many frames as were logged. Needs no browser and no network.

    .venv/bin/python -m bench.video        # prints the numbers as JSON

`run()` (in `python -m bench`) encodes the same log three times and reports each, in a table.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext

from bench.common import DASH, QUICK, TIMES, Report, Stats, num, run_timed, table
from browserfleet.artifacts import video

WIDTH, HEIGHT, FPS = 1280, 720, 10
SECONDS = int(os.environ.get("BENCH_VIDEO_SECONDS", "60"))
JPEG_QSCALE = 5  # FFmpeg's MJPEG scale (2 best .. 31 worst); 5 is about libjpeg quality 80


def _jpegs(seconds: int) -> list[bytes]:
    """seconds x FPS JPEG frames of a moving test pattern."""
    encoder = CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.qscale = True
    encoder.global_quality = JPEG_QSCALE * 118  # FF_QP2LAMBDA
    out: list[bytes] = []
    source = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={seconds}"
    with av.open(source, format="lavfi") as pattern:
        for frame in pattern.decode(video=0):
            for packet in encoder.encode(frame.reformat(format="yuvj420p")):
                out.append(bytes(packet))
    for packet in encoder.encode(None):
        out.append(bytes(packet))
    return out


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _encode(root: Path, frames_path: Path, end_ms: int, frame_count: int, run: int) -> dict[str, Any]:
    """One encode of the frame log to HLS, one MP4 remux of it, and a decode of the MP4 to count frames."""
    hls_dir, mp4_path = root / f"hls-{run}", root / f"session-{run}.mp4"
    wall0, proc0, (user0, sys0) = time.perf_counter(), time.process_time(), _cpu()
    encoded = video.encode_hls(frames_path, hls_dir, end_ms=end_ms)
    wall1, proc1, (user1, sys1) = time.perf_counter(), time.process_time(), _cpu()
    mp4 = video.mp4_from_hls(hls_dir, mp4_path)
    wall2, proc2 = time.perf_counter(), time.process_time()
    assert encoded is not None

    with av.open(str(mp4)) as container:
        decoded = sum(1 for _ in container.decode(video=0))

    encode_wall, encode_cpu = wall1 - wall0, proc1 - proc0
    minutes = (encoded.end_ms - encoded.start_ms) / 60_000
    hls_bytes = _dir_bytes(hls_dir)
    return {
        "video_seconds": round(minutes * 60, 3),
        "encode_wall_s": round(encode_wall, 2),
        "encode_cpu_s": round(encode_cpu, 2),
        "encode_user_s": round(user1 - user0, 2),
        "encode_sys_s": round(sys1 - sys0, 2),
        "encode_fps": round(frame_count / encode_wall, 1),
        "cpu_s_per_video_minute": round(encode_cpu / minutes, 2),
        "realtime_factor": round(minutes * 60 / encode_wall, 1),
        "hls_mb": round(hls_bytes / 1e6, 2),
        "hls_mb_per_video_minute": round(hls_bytes / 1e6 / minutes, 2),
        "segments": len(list(hls_dir.glob("seg-*.m4s"))),
        "mp4_wall_s": round(wall2 - wall1, 3),
        "mp4_cpu_s": round(proc2 - proc1, 3),
        "mp4_mb": round(mp4.stat().st_size / 1e6, 2),
        "decoded_frames": decoded,
        "frames_match": decoded == encoded.frame_count == frame_count,
    }


def _measure(seconds: int, repeats: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What was encoded, and one result per encode of it (the same frame log each time)."""
    synth0 = time.perf_counter()
    jpegs = _jpegs(seconds)
    synth_s = time.perf_counter() - synth0
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        root = Path(tmp)
        frames_path = root / "frames.log"
        start_ms = 1_700_000_000_000
        with video.FrameLog(frames_path) as log:
            for i, jpeg in enumerate(jpegs):
                log.append(start_ms + i * 1000 // FPS, jpeg)
        end_ms = start_ms + len(jpegs) * 1000 // FPS
        facts: dict[str, Any] = {
            "pyav": av.__version__,
            "codec": f"libx264 {video._X264_OPTIONS}, {video._ENCODER_THREADS} threads",
            "frames": len(jpegs),
            "size": f"{WIDTH}x{HEIGHT}",
            "jpeg_log_mb": round(frames_path.stat().st_size / 1e6, 2),
            "mean_jpeg_kb": round(sum(map(len, jpegs)) / len(jpegs) / 1e3, 1),
            "synthesis_s": round(synth_s, 1),
        }
        runs = [_encode(root, frames_path, end_ms, len(jpegs), run) for run in range(repeats)]
    return facts, runs


def main() -> dict[str, object]:
    facts, (result,) = _measure(SECONDS, 1)
    return {**facts, **result}


# -- as one of the benchmarks (`python -m bench`) --------------------------------------------------

REPEATS = 1 if QUICK else 3
BENCH_SECONDS = 6 if QUICK else SECONDS


def _report(report: Report) -> None:
    facts, runs = _measure(BENCH_SECONDS, REPEATS)
    columns = (
        ("encode wall", "encode_wall_s", "s"),
        ("encode fps", "encode_fps", ""),
        (f"{TIMES} real time", "realtime_factor", ""),
        ("encode CPU", "encode_cpu_s", "s"),
        ("CPU per min of video", "cpu_s_per_video_minute", "s"),
        ("HLS", "hls_mb", "MB"),
        ("HLS per min of video", "hls_mb_per_video_minute", "MB"),
        ("MP4 remux", "mp4_wall_s", "s"),
    )
    rows = [
        [str(i), *(num(float(run[key]), unit) for _, key, unit in columns), str(run["decoded_frames"])]
        for i, run in enumerate(runs, 1)
    ]
    if len(runs) > 1:
        medians = [num(Stats.of([float(run[key]) for run in runs]).median, unit) for _, key, unit in columns]
        rows.append(["median", *medians, DASH])
    report.add(
        f"{facts['frames']} synthetic frames: {BENCH_SECONDS} s of {WIDTH}{TIMES}{HEIGHT} at {FPS} fps of "
        "FFmpeg's `testsrc2` pattern (moving shapes and text: every frame differs, a worst case next to "
        f"a real page), each a JPEG (FFmpeg MJPEG qscale {JPEG_QSCALE}, about libjpeg quality 80, mean "
        f"{facts['mean_jpeg_kb']} KB; the server asks Chromium for quality 60) in a frame log of "
        f"{facts['jpeg_log_mb']} MB. Encoded {'once' if len(runs) == 1 else f'{len(runs)} times'} in this "
        f"process with `encode_hls` (`{facts['codec']}`; PyAV {facts['pyav']}), then remuxed to MP4 with "
        "`mp4_from_hls` and decoded to count the frames. CPU is this process's CPU time (all encoder "
        "threads). The server runs the same encode in a subprocess at nice 10, one at a time.\n\n"
        + table(("encode", *(name for name, _, _ in columns), "frames decoded"), rows)
    )
    if not all(run["frames_match"] for run in runs):
        report.notes.append("**the MP4 does not decode to as many frames as were logged**")


def run() -> Report:
    return run_timed("video", "7. Video encoding of a recording", _report)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
