"""Blob storage for a project's resources: context archives, extension zips. One interface (`Blobs`) so
other machines can share them later (an object store); `LocalBlobs` keeps them on local disk.

Keys are opaque strings the storage makes (`put` returns one); callers store them in the database and
never build paths from them. Guarantees: `put` is atomic (a crash leaves the old blob or none, never a
torn one; written to a temporary name, fsynced, renamed), `get` of a missing key is `KeyError`, and
`delete` of a missing key is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"[a-z]+/[0-9a-f]{32}")


class Blobs(Protocol):
    async def put(self, kind: str, data: bytes) -> str:
        """Store `data` under a new key (of `kind`: "contexts", "extensions"); the key."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...


class LocalBlobs:
    """Blobs as files under `root` (`<data dir>/blobs`), readable by the server alone."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise KeyError(key)
        return self.root / key

    async def put(self, kind: str, data: bytes) -> str:
        if not kind.isalpha() or not kind.islower():
            raise ValueError(f"bad blob kind: {kind!r}")
        key = f"{kind}/{secrets.token_hex(16)}"
        await asyncio.to_thread(self._write, self._path(key), data)
        return key

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError, KeyError):
            await asyncio.to_thread(self._path(key).unlink)

    def remove_leftovers(self) -> None:
        """Temporary files a crash left mid-put (at start, before any put)."""
        for tmp in self.root.glob("*/.tmp-*"):
            with contextlib.suppress(OSError):
                tmp.unlink()
