"""The egress proxy: an HTTP proxy listening inside a browser's network namespace, connecting out
from the server's. It is the browser's only way off its loopback-only namespace.

CONNECT (https, wss) is tunnelled; plain-http requests are forwarded with `Connection: close`, so
one proxy connection carries one request and the bytes can be piped without parsing responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

from browserfleet.browsers import netns

log = logging.getLogger(__name__)

PORT = 8118  # inside the browser's own namespace, so every browser can use the same one
_HOP_BY_HOP = ("proxy-connection", "proxy-authorization", "connection", "keep-alive")
MAX_HEAD = 64 * 1024


class EgressProxy:
    def __init__(self, allow_loopback: bool = False) -> None:
        # The server's own loopback (its API, databases, other local services) is off limits to pages
        # unless the operator allows it (the test suite does: its pages are served on 127.0.0.1).
        self.allow_loopback = allow_loopback
        self.bytes = 0  # through the proxy in both directions (proxyBytes, later)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start_in(self, namespace_fd: int) -> None:
        listener = netns.socket_in(namespace_fd)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", PORT))
        listener.listen(128)
        self._server = await asyncio.start_server(self._serve, sock=listener, limit=MAX_HEAD)

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
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, UnicodeError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *headers = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await self._open(writer, host.strip("[]"), int(port))
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._pipe(reader, writer, *upstream)
            return
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = await self._open(writer, url.hostname, url.port or 80)
        if upstream is None:
            return
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = "".join(
            f"{h}\r\n" for h in headers if h and h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP
        )
        upstream[1].write(f"{method} {path} {version}\r\n{kept}Connection: close\r\n\r\n".encode("latin-1"))
        await self._pipe(reader, writer, *upstream)

    async def _open(
        self, writer: asyncio.StreamWriter, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            # Resolve once and connect to that very address, so the check below is the one that counts
            # (a name that resolves differently on a second lookup cannot slip through).
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            ip = str(infos[0][4][0])
            if not self.allow_loopback and _this_host(ip):
                body = b"browserfleet: pages may not reach the server's own loopback services\n"
                writer.write(
                    b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                return None
            return await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=30)
        except (OSError, TimeoutError, IndexError, ValueError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            return None

    async def _pipe(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        upstream_r: asyncio.StreamReader,
        upstream_w: asyncio.StreamWriter,
    ) -> None:
        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while chunk := await source.read(65536):
                self.bytes += len(chunk)
                sink.write(chunk)
                await sink.drain()
            with contextlib.suppress(OSError):
                if sink.can_write_eof():
                    sink.write_eof()

        to_upstream = asyncio.create_task(copy(client_r, upstream_w))
        to_client = asyncio.create_task(copy(upstream_r, client_w))
        try:
            done, _ = await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
            if to_client not in done:
                # The browser has sent all it will; let the far end finish answering.
                await to_client
        finally:
            to_upstream.cancel()
            to_client.cancel()
            await asyncio.gather(to_upstream, to_client, return_exceptions=True)
            upstream_w.close()


def _this_host(ip: str) -> bool:
    """Loopback, or an address that reaches it (0.0.0.0, ::, ::ffff:127.x)."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified
