"""Zip archives from clients, checked before anything in them is used: extensions' uploads now, the
files Selenium sends later.

`check(data)` refuses, with an `UnsafeZip` (a 400) whose message says which rule, anything that is not
a zip or whose members could escape or exhaust the place they are unpacked to: a member name that is
absolute, has a `..` part, a backslash, a NUL or an empty part; a symbolic link, device or other
non-regular member; an encrypted member; two members of one name; more members, more uncompressed bytes
in all, or a higher compression ratio than `ZipLimits` allows (a zip bomb). `extract(data, dest)`
checks first and then writes only regular files and directories under `dest`, which must not exist:
files are created exclusively and never through a link, and the bytes written are counted as they are
decompressed, so sizes a zip misstates cannot make it write more than its limits.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from browserfleet.errors import InvalidRequest

MIB = 1024 * 1024
_CHUNK = 256 * 1024


class UnsafeZip(InvalidRequest):
    """An archive that is not a zip, or that breaks one of the rules (the message names it)."""


@dataclass(frozen=True)
class ZipLimits:
    max_members: int = 10_000
    max_total_bytes: int = 512 * MIB  # uncompressed, all members together
    max_ratio: int = 200  # uncompressed / compressed, for a member over `ratio_floor` uncompressed
    ratio_floor: int = 1 * MIB  # small members may compress as well as they like


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in name:
        return "has a NUL character in its name"
    if "\\" in name:
        return "has a backslash in its name (zip paths use '/')"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    parts = name.rstrip("/").split("/")
    if any(part == ".." for part in parts):
        return "has a '..' path part (path traversal)"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' path part"
    if info.flag_bits & 0x1:
        return "is encrypted"
    # Unix attributes may give the member's file type (many tools write permission bits only).
    kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file or directory"
    return None


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise UnsafeZip(f"The file is not a valid zip archive ({exc})") from None


def _shown(name: str) -> str:
    return repr(name if len(name) <= 120 else name[:120] + "…")


def check(data: bytes, limits: ZipLimits = ZipLimits()) -> list[zipfile.ZipInfo]:
    """The archive's members, once every rule holds; else `UnsafeZip`."""
    with _open(data) as archive:
        members = archive.infolist()
    if len(members) > limits.max_members:
        raise UnsafeZip(f"The zip has {len(members)} members; at most {limits.max_members} are allowed")
    names: set[str] = set()
    total = 0
    for info in members:
        problem = _member_problem(info)
        if problem is not None:
            raise UnsafeZip(f"The zip member {_shown(info.filename)} {problem}")
        key = info.filename.rstrip("/")
        if key in names:
            raise UnsafeZip(f"The zip has two members named {_shown(key)}")
        names.add(key)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeZip(
                f"The zip unpacks to over {limits.max_total_bytes // MIB} MB; that is the limit (a zip bomb?)"
            )
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(
            1, info.compress_size
        ):
            raise UnsafeZip(
                f"The zip member {_shown(info.filename)} is compressed over {limits.max_ratio} to 1; "
                "that is the limit (a zip bomb?)"
            )
    # A file and a directory of one name ("a" and "a/b") cannot both be unpacked.
    files = {m.filename for m in members if not m.is_dir()}
    for key in names:
        parent = posixpath.dirname(key)
        while parent:
            if parent in files:
                raise UnsafeZip(f"The zip member {_shown(parent)} is both a file and a directory")
            parent = posixpath.dirname(parent)
    return members


def read(data: bytes, name: str, limit: int) -> bytes | None:
    """The bytes of member `name` (None if there is none), at most `limit` of them, else `UnsafeZip`.
    Call `check` first: this trusts the archive's structure."""
    with _open(data) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError:
            return None
        if info.file_size > limit:
            raise UnsafeZip(f"The zip member {_shown(name)} is over {limit} bytes")
        try:
            with archive.open(info) as member:
                content = member.read(limit + 1)
        except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError) as exc:
            raise UnsafeZip(f"The zip member {_shown(name)} cannot be read ({exc})") from None
    if len(content) > limit:
        raise UnsafeZip(f"The zip member {_shown(name)} is over {limit} bytes")
    return content


def extract(data: bytes, dest: Path, limits: ZipLimits = ZipLimits()) -> None:
    """Unpack into `dest` (created here, mode 0755; files 0644), after `check`. Blocking: call it in a
    thread. On failure `dest` may hold part of the archive: the caller removes it."""
    members = check(data, limits)
    dest.mkdir(mode=0o755)
    written = 0
    with _open(data) as archive:
        for info in members:
            target = dest.joinpath(*info.filename.rstrip("/").split("/"))
            if info.is_dir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                raise UnsafeZip(f"The zip member {_shown(info.filename)} is there twice") from None
            with os.fdopen(fd, "wb") as out:
                try:
                    with archive.open(info) as member:
                        while chunk := member.read(_CHUNK):
                            written += len(chunk)
                            if written > limits.max_total_bytes:
                                raise UnsafeZip(
                                    f"The zip unpacks to over {limits.max_total_bytes // MIB} MB; "
                                    "that is the limit (a zip bomb?)"
                                )
                            out.write(chunk)
                except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError) as exc:
                    raise UnsafeZip(
                        f"The zip member {_shown(info.filename)} cannot be read ({exc})"
                    ) from None
