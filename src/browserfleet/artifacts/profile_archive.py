"""A Chromium profile's site state as one archive (a gzipped tar), read and written as if the browser that
made the profile were hostile: it was, for as long as a page ran in it.

What is kept: `Local State`, and of the `Default` profile the parts that hold what sites stored
(`KEPT_FILES`, `KEPT_DIRS`: cookies, Local and Session Storage, IndexedDB, service worker
registrations and scripts, the File System API, WebSQL, preferences, saved logins and autofill,
extensions' storage). Never caches (HTTP, code, GPU, Cache Storage), history, sessions or components.
Beside them, `cookies.json`: the cookies the browser held in memory (session cookies too), as CDP's
`Storage.getCookies` gave them.

Guarantees:
* `pack` opens every path relative to an already open directory with O_NOFOLLOW, so a symlink the
  browser planted is never followed, as a directory or as a file; it reads only regular files with a
  single link (opened O_NONBLOCK, so a FIFO cannot block it), at most `limit` bytes in all (`TooBig`
  past it), nothing outside the user-data dir.
* `unpack` writes into a fresh, empty directory only directories and regular files, each created with
  O_EXCL|O_NOFOLLOW under a directory it made itself, named by plain components (no absolute path,
  `.`, `..`, empty part or NUL); links, devices and the like are skipped; at most `UNPACK_LIMIT` bytes
  and `MAX_ENTRIES` entries. A malformed archive is an `ArchiveError`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any

PROFILE = "Default"
TOP_FILES = ("Local State",)
KEPT_FILES = (
    "Cookies",
    "Preferences",
    "Secure Preferences",
    "Login Data",
    "Web Data",
)
KEPT_DIRS = (
    "Local Storage",
    "Session Storage",
    "IndexedDB",
    "WebStorage",  # the quota database and storage buckets
    "File System",
    "databases",
    "Service Worker",
    "Local Extension Settings",
)
SKIPPED_DIRS = {("Service Worker", "CacheStorage")}  # the Cache API: a cache, and the largest part
SQLITE_SIDES = ("-journal", "-wal")  # a database's rollback journal or WAL goes with it
COOKIES = "cookies.json"
USER_DATA = "user-data"

MAX_ENTRIES = 200_000
MAX_DEPTH = 32
UNPACK_LIMIT = 4 << 30  # archives are authenticated (sealing.py): this only bounds a defect
COOKIES_LIMIT = 16 << 20
COMPRESS_LEVEL = 6

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class TooBig(Exception):
    """The profile holds more than the limit allows."""


class ArchiveError(Exception):
    """An archive that cannot be unpacked."""


def _plain(name: str) -> bool:
    """A single path component that names nothing special (and can be written in a tar header)."""
    return name not in ("", ".", "..") and "/" not in name and "\x00" not in name and name.isprintable()


class _Packer:
    def __init__(self, tar: tarfile.TarFile, limit: int) -> None:
        self.tar = tar
        self.left = limit
        self.entries = 0
        self.skipped: list[str] = []  # what the browser left that is not a plain file or directory

    def _count(self, size: int) -> None:
        self.entries += 1
        self.left -= size
        if self.left < 0 or self.entries > MAX_ENTRIES:
            raise TooBig

    def file(self, dir_fd: int, name: str, arcname: str) -> None:
        try:
            fd = os.open(name, _READ, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        except OSError:  # ELOOP: a symlink; EACCES, ENXIO (a socket)...
            self.skipped.append(arcname)
            return
        with os.fdopen(fd, "rb") as src:
            info = os.fstat(src.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                self.skipped.append(arcname)
                return
            self._count(info.st_size)
            entry = tarfile.TarInfo(arcname)
            entry.size, entry.mode, entry.mtime = info.st_size, 0o600, int(info.st_mtime)
            self.tar.addfile(entry, src)

    def tree(self, dir_fd: int, name: str, arcname: str, path: tuple[str, ...]) -> None:
        if len(path) > MAX_DEPTH:
            self.skipped.append(arcname)
            return
        try:
            fd = os.open(name, _DIR, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        except OSError:  # a symlink (ELOOP) or not a directory
            self.skipped.append(arcname)
            return
        try:
            self._count(0)
            entry = tarfile.TarInfo(arcname)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o700
            self.tar.addfile(entry)
            with os.scandir(fd) as listing:
                children = sorted(listing, key=lambda e: e.name)
            for child in children:
                sub = (*path, child.name)
                if not _plain(child.name):
                    self.skipped.append(f"{arcname}/{child.name!r}")
                elif sub in SKIPPED_DIRS:
                    continue
                elif child.is_dir(follow_symlinks=False):
                    self.tree(fd, child.name, f"{arcname}/{child.name}", sub)
                else:
                    self.file(fd, child.name, f"{arcname}/{child.name}")
        finally:
            os.close(fd)


def pack(user_data: Path, cookies: list[dict[str, Any]] | None, limit: int) -> tuple[bytes, list[str]]:
    """The archive of a user-data dir whose browser has exited, and what was skipped (for the log)."""
    buffer = io.BytesIO()
    root = os.open(user_data, _DIR)
    try:
        with tarfile.open(
            fileobj=buffer, mode="w:gz", compresslevel=COMPRESS_LEVEL, format=tarfile.PAX_FORMAT
        ) as tar:
            packer = _Packer(tar, limit)
            for name in TOP_FILES:
                packer.file(root, name, f"{USER_DATA}/{name}")
            try:
                profile = os.open(PROFILE, _DIR, dir_fd=root)
            except FileNotFoundError:
                profile = None
            except OSError:
                packer.skipped.append(f"{USER_DATA}/{PROFILE}")
                profile = None
            if profile is not None:
                try:
                    packer._count(0)
                    entry = tarfile.TarInfo(f"{USER_DATA}/{PROFILE}")
                    entry.type, entry.mode = tarfile.DIRTYPE, 0o700
                    tar.addfile(entry)
                    base = f"{USER_DATA}/{PROFILE}"
                    for name in KEPT_FILES:
                        for side in ("", *SQLITE_SIDES):
                            packer.file(profile, name + side, f"{base}/{name}{side}")
                    for name in KEPT_DIRS:
                        packer.tree(profile, name, f"{base}/{name}", (name,))
                finally:
                    os.close(profile)
            if cookies is not None:
                data = json.dumps(cookies).encode()
                entry = tarfile.TarInfo(COOKIES)
                entry.size, entry.mode = len(data), 0o600
                tar.addfile(entry, io.BytesIO(data))
    finally:
        os.close(root)
    return buffer.getvalue(), packer.skipped


class _Unpacker:
    def __init__(self, root_fd: int) -> None:
        self.dirs: dict[tuple[str, ...], int] = {(): root_fd}

    def directory(self, parts: tuple[str, ...]) -> int:
        """The fd of `parts` under the root, made (0700) where missing; never through a link."""
        if parts in self.dirs:
            return self.dirs[parts]
        parent = self.directory(parts[:-1])
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        except FileExistsError:
            pass
        fd = os.open(parts[-1], _DIR, dir_fd=parent)
        self.dirs[parts] = fd
        return fd

    def file(self, parts: tuple[str, ...], src: IO[bytes]) -> None:
        parent = self.directory(parts[:-1])
        fd = os.open(parts[-1], _CREATE, 0o600, dir_fd=parent)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def close(self) -> None:
        for parts, fd in self.dirs.items():
            if parts:
                os.close(fd)


def unpack(archive: bytes, user_data: Path) -> list[dict[str, Any]] | None:
    """Unpack into `user_data` (empty, made by the launcher); the saved cookies, if the archive has them."""
    cookies: list[dict[str, Any]] | None = None
    root = os.open(user_data, _DIR)
    unpacker = _Unpacker(root)
    total = entries = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar:
                entries += 1
                total += max(0, member.size)
                if entries > MAX_ENTRIES or total > UNPACK_LIMIT:
                    raise ArchiveError("the archive is larger than any profile this server saves")
                parts = tuple(member.name.split("/"))
                if not all(_plain(part) for part in parts):
                    continue
                if parts == (COOKIES,) and member.isreg() and member.size <= COOKIES_LIMIT:
                    src = tar.extractfile(member)
                    assert src is not None
                    loaded = json.loads(src.read())
                    cookies = [c for c in loaded if isinstance(c, dict)] if isinstance(loaded, list) else None
                    continue
                if parts[0] != USER_DATA or len(parts) < 2:
                    continue
                inside = parts[1:]
                if member.isdir():
                    unpacker.directory(inside)
                elif member.isreg():
                    src = tar.extractfile(member)
                    assert src is not None
                    unpacker.file(inside, src)
                # anything else (links, devices, FIFOs) is never written
    except (tarfile.TarError, EOFError, zlib.error, ValueError, OSError) as exc:
        raise ArchiveError(f"the archive cannot be unpacked: {exc}") from exc
    finally:
        unpacker.close()
        os.close(root)
    return cookies
