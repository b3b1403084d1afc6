"""One HTTP/1.1 exchange with a local server the server started itself (Chromium's debugging port,
chromedriver), over a socket made where that server lives (its network namespace).

Only what those servers send is understood: a status line, headers, and a body of Content-Length bytes.
Anything else (no length, a head over 1 MiB, a body over `limit`, a socket that closes early) is
`LocalHttpError`, which callers turn into their own error.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass

MAX_HEAD = 1 << 20
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")
_TOKEN = re.compile(r"[A-Z]{1,16}")
_PATH = re.compile(r"/[!-~]*")  # printable ASCII, no space
_TYPE = re.compile(rb"(?im)^content-type:\s*([^\r\n]*)")


class LocalHttpError(Exception):
    """The exchange failed or the answer was not HTTP as expected."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


async def exchange(
    sock: socket.socket,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json; charset=utf-8",
    limit: int = 32 * 1024 * 1024,
) -> Answer:
    """Send one request on `sock` (connected, non-blocking; closed here) and read its answer. A method or
    path that is not one printable token (a space, a line break) is refused before anything is sent."""
    if not _TOKEN.fullmatch(method) or not _PATH.fullmatch(path):
        sock.close()
        raise LocalHttpError(f"not a request line: {method[:20]!r} {path[:200]!r}")
    try:
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_HEAD)
    except OSError as exc:
        sock.close()
        raise LocalHttpError(str(exc)) from exc
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        answer = await reader.readuntil(b"\r\n\r\n")
        status, length = _STATUS.match(answer), _LENGTH.search(answer)
        if status is None or length is None or int(length.group(1)) > limit:
            raise LocalHttpError(f"unexpected answer to {method} {path}: {answer[:200]!r}")
        kind = _TYPE.search(answer)
        payload = await reader.readexactly(int(length.group(1)))
        return Answer(int(status.group(1)), kind.group(1).decode().strip() if kind else "", payload)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise LocalHttpError(f"{method} {path} failed: {exc or type(exc).__name__}") from exc
    finally:
        writer.close()
