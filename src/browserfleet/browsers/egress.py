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

Upstream proxies (a session's `proxies`, `browsers/upstream.py`; never for a pinned route): when the
session's `routes` send a host through an upstream HTTP proxy, the egress rules apply to the upstream
proxy's own address (resolved and checked here like any destination), and the destination host is named
to the upstream as the browser named it, for the upstream to resolve. CONNECT is sent on as CONNECT,
plain http as an absolute-form request, with `Proxy-Authorization: Basic` when the route has credentials.
An upstream that cannot be reached, refuses the credentials (407) or answers badly is a `502` whose body
says which (Chromium shows it for http pages; for https it reports a tunnel failure); one that does not
answer a CONNECT in time, a `504`. Bytes to and from upstream proxies are counted in `proxy_bytes` (the
session's `proxyBytes`).
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
from browserfleet.browsers.upstream import ProxyRoutes, Upstream

log = logging.getLogger(__name__)

PORT = 8118  # inside the browser's own namespace, so every browser can use the same one
_HOP_BY_HOP = ("proxy-connection", "proxy-authorization", "connection", "keep-alive")
MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 30.0  # seconds a client has to send its whole request head
CONNECT_TIMEOUT = 30.0  # seconds to reach the destination, all its addresses together
LINGER = 1.0  # seconds a refused client may go on sending before the connection is closed
_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP/1\.[01])")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+:.*")
_STATUS = {
    400: "Bad Request",
    403: "Forbidden",
    408: "Request Timeout",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}
UPSTREAM_TIMEOUT = 30.0  # seconds an upstream proxy has to answer a CONNECT (or a request's status line)
REFUSAL_HEADER = "X-Browserfleet-Egress-Refusal"


class Refusal(Exception):
    """An answer instead of a connection: the status and a one-line reason for the body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> bytes:
        body = f"browserfleet: {self.reason}\n".encode()
        # REFUSAL_HEADER tells the server's own readers (POST /v1/fetch) that the answer is the proxy's,
        # not the site's. A site can send it too, but then only makes its own page look refused.
        return (
            f"HTTP/1.1 {self.status} {_STATUS[self.status]}\r\nConnection: close\r\n"
            f"{REFUSAL_HEADER}: {self.status}\r\n"
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
        self.bytes = 0  # through the proxy in both directions
        self.routes = ProxyRoutes()  # which hosts go through which upstream proxy (none: all direct)
        self.proxy_bytes = 0  # to and from upstream proxies (the session's proxyBytes)
        self.upstream_timeout = UPSTREAM_TIMEOUT
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
        except asyncio.CancelledError:
            # `close()`: the browser is going. Ended quietly, since this task is asyncio's own (start_server)
            # and Python 3.11 logs a cancelled one as "Exception in callback".
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, version, headers = _parse(await self._read_head(reader))
        if method == "CONNECT":
            host, port = _authority(target)
            via = self._via(host, port)
            upstream = await (self._open(host, port) if via is None else self._tunnel_via(via, host, port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._pipe(reader, writer, *upstream, proxied=via is not None)
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
        if (via := self._via(url.hostname, port)) is not None:
            await self._forward_via(via, f"{method} {target} {version}", headers, reader, writer)
            return
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
        proxied: bool = False,
    ) -> None:
        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            # A side gone away ends this direction, not the other (uvloop raises RuntimeError for a write
            # to a transport it has closed).
            with contextlib.suppress(OSError, RuntimeError):
                while chunk := await source.read(65536):
                    self.bytes += len(chunk)
                    if proxied:
                        self.proxy_bytes += len(chunk)
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

    # -- upstream proxies --------------------------------------------------------------------------

    def _via(self, host: str, port: int) -> Upstream | None:
        """The upstream proxy the session's routes send `host` through; never for a pinned route."""
        if (normal_name(host.strip("[]")), port) in self.pinned:
            return None
        return self.routes.upstream_for(host)

    async def _reach(self, via: Upstream) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the upstream proxy, its address checked by the egress rules like any other."""
        try:
            return await self._open(via.host, via.port)
        except Refusal as refusal:
            reason = refusal.reason.removeprefix("this session may not reach ")
            if refusal.status == 403:
                raise Refusal(403, f"this session may not reach its upstream proxy {reason}") from None
            raise Refusal(refusal.status, f"the session's upstream proxy: {reason}") from None

    def _sent(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.proxy_bytes += len(data)
        writer.write(data)

    async def _reply(self, via: Upstream, reader: asyncio.StreamReader, what: str) -> tuple[int, bytes]:
        """The status and the bytes of the upstream's reply head (a CONNECT's) or status line."""
        until = b"\r\n\r\n" if what == "CONNECT" else b"\r\n"
        try:
            head = await asyncio.wait_for(reader.readuntil(until), self.upstream_timeout)
        except TimeoutError:
            raise Refusal(
                504,
                f"the session's upstream proxy {via.label} did not answer within {self.upstream_timeout:g} s",
            ) from None
        except asyncio.IncompleteReadError:
            raise Refusal(502, f"the session's upstream proxy {via.label} closed the connection") from None
        except asyncio.LimitOverrunError:
            raise Refusal(502, f"the session's upstream proxy {via.label} sent an oversized reply") from None
        self.proxy_bytes += len(head)
        match = _STATUS_LINE.match(head)
        if match is None:
            raise Refusal(502, f"the session's upstream proxy {via.label} did not answer in HTTP")
        return int(match.group(1)), head

    def _refused(self, via: Upstream, status: int, what: str) -> Refusal:
        if status == 407:
            told = "refused the credentials" if via.authorization else "wants credentials, and got none"
            why = f"the session's upstream proxy {via.label} {told} (407 Proxy Authentication Required)"
        else:
            why = f"the session's upstream proxy {via.label} refused {what} ({status})"
        log.warning("egress: %s", why)
        return Refusal(502, why)

    def _auth(self, via: Upstream) -> str:
        return f"Proxy-Authorization: {via.authorization}\r\n" if via.authorization else ""

    async def _tunnel_via(
        self, via: Upstream, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A tunnel to `host:port` through the upstream proxy (CONNECT), once it has said 2xx."""
        reader, writer = await self._reach(via)
        try:
            target = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
            self._sent(
                writer, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{self._auth(via)}\r\n".encode()
            )
            status, _head = await self._reply(via, reader, "CONNECT")
            if not 200 <= status < 300:
                raise self._refused(via, status, f"CONNECT {target}")
            return reader, writer
        except BaseException:
            writer.close()
            raise

    async def _forward_via(
        self,
        via: Upstream,
        request_line: str,
        headers: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """A plain-http request sent on to the upstream proxy in absolute form (one per connection).

        Without a request body, the upstream's status line is read first, so that a 407 becomes this
        proxy's own clear 502; with a body (the upstream may wait for it), the answer is passed on as is."""
        up_r, up_w = await self._reach(via)
        try:
            kept = "".join(
                f"{h}\r\n" for h in headers if h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP
            )
            head = f"{request_line}\r\n{kept}{self._auth(via)}Connection: close\r\n\r\n"
            self._sent(up_w, head.encode("latin-1"))
            if not _has_body(headers):
                status, line = await self._reply(via, up_r, request_line.split(" ", 1)[0])
                if status == 407:
                    raise self._refused(via, status, "the request")
                writer.write(line)
        except BaseException:
            up_w.close()
            raise
        await self._pipe(reader, writer, up_r, up_w, proxied=True)


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r\n")


def _has_body(headers: list[str]) -> bool:
    for line in headers:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "transfer-encoding" or (name == "content-length" and value.strip() not in ("", "0")):
            return True
    return False


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


async def refusal_for(rules: EgressRules, host: str, port: int) -> Refusal | None:
    """What the egress proxy would answer instead of connecting to `host:port` (resolved as it would), or
    None: for callers that report a refusal themselves before a browser tries (`POST /v1/fetch`)."""
    try:
        await EgressProxy(rules)._resolve(host, port)
    except Refusal as refusal:
        return refusal
    return None
