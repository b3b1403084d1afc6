"""The egress proxy: an HTTP proxy listening inside a browser's network namespace, connecting out
from the server's. It is the browser's only way off its loopback-only namespace.

CONNECT (https, wss) is tunnelled; plain-http requests are forwarded with `Connection: close`, so
one proxy connection carries one request and the bytes can be piped without parsing responses.

Every destination is resolved once, every address it resolves to is checked against the session's
`EgressRules` (any refused address refuses the request: a name that also resolves to a private address
is not tried at all), and only then is a connection made, to exactly those checked addresses. A refusal
is a `403` with a short text body and no connection attempt; a malformed request, a head over 64 KiB or
a bad port is a `400`; a head not complete within 30 s is cut with a `408`.

A pinned route (`EgressProxy.pinned`, set by the server for a session whose extension dials the
session's own gateway entry) is taken before any rule, for exactly its host and port, to a fixed
address; each connection on it is registered (`PinnedPeers`) so the far end can tell where it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from browserfleet.browsers import netns
from browserfleet.browsers.addresses import EgressRules, normal_name, parse_address

log = logging.getLogger(__name__)

PORT = 8118  # inside the browser's own namespace, so every browser can use the same one
_HOP_BY_HOP = ("proxy-connection", "proxy-authorization", "connection", "keep-alive")
MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 30.0  # seconds a client has to send its whole request head
CONNECT_TIMEOUT = 30.0  # seconds to reach the destination, all its addresses together
LINGER = 1.0  # seconds a refused client may go on sending before the connection is closed
_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP/1\.[01])")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+:.*")
_STATUS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 502: "Bad Gateway"}


class Refusal(Exception):
    """An answer instead of a connection: the status and a one-line reason for the body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> bytes:
        body = f"browserfleet: {self.reason}\n".encode()
        return (
            f"HTTP/1.1 {self.status} {_STATUS[self.status]}\r\nConnection: close\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body


class PinnedPeers:
    """The local addresses of the connections egress proxies have open on a pinned route, each with its
    proxy: how the far end, when it is this process (the gateway), tells a connection that came from
    inside a browser. Only this process makes those sockets, so an address here while it is open is one."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], EgressProxy] = {}

    def proxy_of(self, peer: Any) -> EgressProxy | None:
        """The proxy whose pinned connection arrives from `peer` (a socket address), if any."""
        return self._open.get(tuple(peer[:2])) if isinstance(peer, tuple) and len(peer) >= 2 else None

    def add(self, local: tuple[str, int], proxy: EgressProxy) -> None:
        self._open[local] = proxy

    def discard(self, local: tuple[str, int]) -> None:
        self._open.pop(local, None)

    def __len__(self) -> int:
        return len(self._open)


@dataclass(frozen=True)
class Pin:
    """A route taken before any rule (a session's own gateway entry): CONNECTs and requests to its
    (host, port) go to `address` instead, and each connection is registered in `peers` while open."""

    address: tuple[str, int]
    peers: PinnedPeers


class EgressProxy:
    def __init__(self, rules: EgressRules, head_timeout: float = HEAD_TIMEOUT) -> None:
        self.rules = rules
        # (host as the browser names it, lower case, no brackets; port) -> the route it takes instead.
        self.pinned: dict[tuple[str, int], Pin] = {}
        self._pinned_open: dict[asyncio.StreamWriter, tuple[PinnedPeers, tuple[str, int]]] = {}
        self.head_timeout = head_timeout
        self.port = PORT
        self.bytes = 0  # through the proxy in both directions (proxyBytes, later)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start_in(self, namespace_fd: int | None, port: int = PORT) -> None:
        """Listen on 127.0.0.1:`port` of the given network namespace (None: this one)."""
        listener = netns.socket_in(namespace_fd)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self._server = await asyncio.start_server(self._serve, sock=listener, limit=MAX_HEAD)
        except BaseException:
            listener.close()
            raise

    @property
    def connections(self) -> int:
        """Client connections being served now."""
        return len(self._tasks)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._proxy(reader, writer)
        except Refusal as refusal:
            log.debug("egress refused (%d): %s", refusal.status, refusal.reason)
            writer.write(refusal.response())
            await _linger(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client or the destination went away
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, version, headers = _parse(await self._read_head(reader))
        if method == "CONNECT":
            host, port = _authority(target)
            upstream = await self._open(host, port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._pipe(reader, writer, *upstream)
            return
        try:
            url = urlsplit(target)
            port = url.port or 80
        except ValueError as exc:
            raise Refusal(400, f"bad proxy request target: {exc}") from None
        if url.scheme != "http" or not url.hostname:
            raise Refusal(400, "a proxy request needs an absolute http:// URL (or CONNECT)")
        if url.port == 0:
            raise Refusal(400, "port 0 is not a port")
        upstream = await self._open(url.hostname, port)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = "".join(f"{h}\r\n" for h in headers if h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP)
        upstream[1].write(f"{method} {path} {version}\r\n{kept}Connection: close\r\n\r\n".encode("latin-1"))
        await self._pipe(reader, writer, *upstream)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
        except TimeoutError:
            raise Refusal(408, f"the request head did not arrive within {self.head_timeout:g} s") from None
        except asyncio.LimitOverrunError:
            raise Refusal(400, f"the request head is over {MAX_HEAD // 1024} KiB") from None

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to `host:port`, once every address it resolves to has passed the rules (or by its
        pinned route, which no rule applies to)."""
        pin = self.pinned.get((normal_name(host.strip("[]")), port))
        if pin is not None:
            return await self._open_pinned(pin, host, port)
        targets = await self._resolve(host, port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT
        failure = "no address"
        for family, sockaddr in targets:
            if loop.time() >= deadline:
                break
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, sockaddr), deadline - loop.time())
                return await asyncio.open_connection(sock=sock)
            except (OSError, TimeoutError) as exc:
                sock.close()
                failure = str(exc) or "timed out"
            except BaseException:
                sock.close()
                raise
        raise Refusal(502, f"cannot connect to {host}:{port}: {failure}")

    async def _open_pinned(
        self, pin: Pin, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*pin.address), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise Refusal(502, f"cannot connect to {host}:{port}: {exc or 'timed out'}") from None
        local = writer.get_extra_info("sockname")
        self._pinned_open[writer] = (pin.peers, (local[0], local[1]))
        pin.peers.add((local[0], local[1]), self)
        return reader, writer

    async def _resolve(self, host: str, port: int) -> list[tuple[int, Any]]:
        """The socket addresses to try for `host:port`, in order; raises a 403 if any is refused."""
        if not host:
            raise Refusal(400, "the request names no host")
        try:
            literal = parse_address(host)
        except ValueError:
            literal = None
        name = None if literal is not None else normal_name(host)
        fixed = self.rules.hosts.get(name or "")
        if literal is not None:
            # An address literal is checked before anything is looked up (its zone id, if any, matters
            # only to the connection).
            self._check(literal, port, None, host)
        if fixed is not None:
            infos: list[tuple[Any, ...]] = [
                (socket.AF_INET, 0, 0, "", (str(ip), port))
                if ip.version == 4
                else (socket.AF_INET6, 0, 0, "", (str(ip), port, 0, 0))
                for ip in fixed
            ]
        else:
            lookup = host.strip("[]").replace("%25", "%", 1) if literal is not None else host
            flags = int(socket.AI_NUMERICHOST) if literal is not None else 0
            try:
                infos = list(
                    await asyncio.get_running_loop().getaddrinfo(
                        lookup, port, type=socket.SOCK_STREAM, flags=flags
                    )
                )
            except (OSError, UnicodeError, ValueError) as exc:
                raise Refusal(502, f"cannot resolve {host}: {exc}") from None
        targets: list[tuple[int, Any]] = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if (family, sockaddr) not in targets:
                # Every address, not only the first: a name resolving to [public, private] is refused.
                self._check(parse_address(str(sockaddr[0])), port, name, host)
                targets.append((family, sockaddr))
        return targets

    def _check(self, address: Any, port: int, name: str | None, host: str) -> None:
        why = self.rules.check(address, port, name)
        if why is not None:
            log.debug("egress to %s:%d (%s) refused: %s", host, port, address, why)
            raise Refusal(403, f"this session may not reach {host}:{port}: it is {why}")

    async def _pipe(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        upstream_r: asyncio.StreamReader,
        upstream_w: asyncio.StreamWriter,
    ) -> None:
        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            # A side gone away ends this direction, not the other (uvloop raises RuntimeError for a write
            # to a transport it has closed).
            with contextlib.suppress(OSError, RuntimeError):
                while chunk := await source.read(65536):
                    self.bytes += len(chunk)
                    sink.write(chunk)
                    await sink.drain()
                if sink.can_write_eof():
                    sink.write_eof()

        try:
            async with asyncio.TaskGroup() as copies:
                to_upstream = copies.create_task(copy(client_r, upstream_w), name="egress-to-upstream")
                to_client = copies.create_task(copy(upstream_r, client_w), name="egress-to-client")
                # The far end done answering ends the connection; the browser done sending does not:
                # the far end may still be answering.
                to_client.add_done_callback(lambda _done: to_upstream.cancel())
        finally:
            upstream_w.close()
            pinned = self._pinned_open.pop(upstream_w, None)
            if pinned is not None:
                pinned[0].discard(pinned[1])


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and read what the client still sends, briefly: closing with unread input would reset
    the connection, and the client could lose the answer."""
    with contextlib.suppress(OSError, TimeoutError, asyncio.LimitOverrunError):
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER):
            while await reader.read(65536):
                pass


def _parse(head: bytes) -> tuple[str, str, str, list[str]]:
    """(method, target, version, header lines) of a request head, or a 400."""
    request_line, *headers = head.decode("latin-1")[:-4].split("\r\n")
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise Refusal(400, "malformed request line")
    if not all(_HEADER.fullmatch(line) for line in headers):
        raise Refusal(400, "malformed header line")
    return match.group(1), match.group(2), match.group(3), headers


def _authority(target: str) -> tuple[str, int]:
    """(host, port) of a CONNECT target: `host:port` or `[IPv6]:port`, the port 1-65535."""
    if target.startswith("["):
        host, bracket, rest = target[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise Refusal(400, "CONNECT needs [IPv6]:port")
        port_text = rest[1:]
    else:
        host, colon, port_text = target.rpartition(":")
        if not colon or ":" in host:
            raise Refusal(400, "CONNECT needs host:port (an IPv6 address in brackets)")
    if not host:
        raise Refusal(400, "CONNECT names no host")
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise Refusal(400, f"CONNECT port {port_text!r} is not a port (1-65535)")
    return host, int(port_text)
