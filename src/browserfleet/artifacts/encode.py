"""`python -m browserfleet.artifacts.encode FRAMES OUT_DIR END_MS [MP4]`: encode one tab's frame log to
HLS (and optionally an MP4) in a process of its own, so encoding never competes with the server's
event loop for the GIL; prints the result as JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from browserfleet.artifacts.video import encode_hls, mp4_from_hls


def main(argv: list[str]) -> int:
    frames, out_dir, end_ms = Path(argv[0]), Path(argv[1]), int(argv[2])
    os.nice(10)  # below the browsers and the gateway
    encoded = encode_hls(frames, out_dir, end_ms=end_ms)
    if encoded is None:
        print(json.dumps({"frames": 0}))
        return 0
    if len(argv) > 3:
        mp4_from_hls(out_dir, Path(argv[3]))
    print(json.dumps({"frames": encoded.frame_count, "start_ms": encoded.start_ms, "end_ms": encoded.end_ms}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
