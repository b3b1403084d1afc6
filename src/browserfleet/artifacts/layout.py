"""Where a session's artifacts live on disk: `<data dir>/sessions/<session id>/...`.

Outside the browser's profile, so they outlive the browser; removed only when asked (DELETE) or by
retention.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SessionFiles:
    root: Path

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def cdp_log(self) -> Path:
        return self.root / "logs" / "cdp.jsonl"

    def page_dir(self, page_index: int) -> Path:
        return self.root / "pages" / str(page_index)

    def console_log(self, page_index: int) -> Path:
        return self.page_dir(page_index) / "console.jsonl"

    def network_log(self, page_index: int) -> Path:
        return self.page_dir(page_index) / "network.jsonl"

    def frames(self, page_index: int) -> Path:
        return self.page_dir(page_index) / "frames.bin"

    def hls(self, page_index: int) -> Path:
        return self.page_dir(page_index) / "hls"

    def mp4(self, page_index: int) -> Path:
        return self.page_dir(page_index) / f"page-{page_index}.mp4"


class ArtifactRoot:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def session(self, session_id: str) -> SessionFiles:
        if "/" in session_id or session_id in ("", ".", ".."):
            raise ValueError(f"not a session id: {session_id!r}")
        return SessionFiles(self.root / session_id)

    def remove(self, session_id: str) -> None:
        shutil.rmtree(self.session(session_id).root, ignore_errors=True)


def read_jsonl(path: Path) -> list[Any]:
    """The objects of a JSON-lines artifact; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out
