"""One HTTP/1.1 exchange with a local server the server started itself (Chromium's debugging port,
chromedriver), over a socket made where that server lives (its network namespace).

Only what those servers send is understood: a status line, headers, and a body of Content-Length bytes.
A `Connection` may carry one request after another (chromedriver keeps them open); `exchange` is one
request on a connection of its own.
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


class Closed(LocalHttpError):
    """A kept-alive connection the server had closed: no byte of an answer came, so the request was
    not taken (sending it again, on a new connection, is safe)."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


class Connection:
    """One HTTP/1.1 connection, for requests one after another (keep-alive)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = False  # has answered a request: a failure now may be the server closing it when idle

    @classmethod
    async def open(cls, sock: socket.socket) -> Connection:
        """Over `sock` (connected, non-blocking; owned by the connection from here)."""
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_HEAD)
        except OSError as exc:
            sock.close()
            raise LocalHttpError(str(exc)) from exc
        return cls(reader, writer)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json; charset=utf-8",
        limit: int = 32 * 1024 * 1024,
        keep_alive: bool = False,
    ) -> Answer:
        if not _TOKEN.fullmatch(method) or not _PATH.fullmatch(path):  # a space, a line break: refused
            raise LocalHttpError(f"not a request line: {method[:20]!r} {path[:200]!r}")
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += "Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        answer = b""
        try:
            self.writer.write(head.encode() + b"\r\n" + body)
            answer = await self.reader.readuntil(b"\r\n\r\n")
            status, length = _STATUS.match(answer), _LENGTH.search(answer)
            if status is None or length is None or int(length.group(1)) > limit:
                raise LocalHttpError(f"unexpected answer to {method} {path}: {answer[:200]!r}")
            kind = _TYPE.search(answer)
            payload = await self.reader.readexactly(int(length.group(1)))
        except asyncio.IncompleteReadError as exc:
            if self.used and not answer and not exc.partial:
                raise Closed(f"{method} {path}: the kept connection was closed") from exc
            raise LocalHttpError(f"{method} {path} failed: the answer broke off") from exc
        except (OSError, asyncio.LimitOverrunError) as exc:
            if self.used and isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                raise Closed(f"{method} {path}: the kept connection was closed") from exc
            raise LocalHttpError(f"{method} {path} failed: {exc or type(exc).__name__}") from exc
        self.used = True
        return Answer(int(status.group(1)), kind.group(1).decode().strip() if kind else "", payload)

    def close(self) -> None:
        self.writer.close()


async def exchange(
    sock: socket.socket,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json; charset=utf-8",
    limit: int = 32 * 1024 * 1024,
) -> Answer:
    """Send one request on `sock` (connected, non-blocking; closed here) and read its answer."""
    connection = await Connection.open(sock)
    try:
        return await connection.request(method, path, body, content_type, limit)
    finally:
        connection.close()
