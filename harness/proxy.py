"""A small authenticating HTTP proxy on 127.0.0.1 for tests and benchmarks: CONNECT tunnels and
absolute-form http requests, with HTTP Basic credentials when given (a `407` otherwise).

It resolves every host name to 127.0.0.1 (address literals are kept), so what goes through it never
leaves the machine. It runs on a thread of its own (callers are sync: Playwright, httpx) and
records what it was asked for: `accepted` connections, `requests` (method, host, port) of each
authorised request, `refused` (how many it answered 407) and `carried` (bytes in both directions,
heads included).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class TestProxy:
    username: str | None = None
    password: str | None = None
    port: int = 0
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    refused: int = 0
    accepted: int = 0  # connections
    carried: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    __test__ = False  # not a pytest test class

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hosts(self) -> list[str]:
        return [host for _method, host, _port in self.requests]

    def start(self) -> TestProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def main() -> None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()
                async with self._server:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._server.serve_forever()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="test-proxy")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            for task in asyncio.all_tasks(self._loop):
                self._loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(10)

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.username is None and self.password is None:
            return True
        token = base64.b64encode(f"{self.username or ''}:{self.password or ''}".encode()).decode()
        return headers.get("proxy-authorization") == f"Basic {token}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.carried += len(head)
            request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
            method, target, version = request_line.split(" ")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
            if not self._authorised(headers):
                self.refused += 1
                self._write(
                    writer,
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n",
                )
                await writer.drain()
                return
            if method == "CONNECT":
                host, _, port_text = target.rpartition(":")
                host, port = host.strip("[]"), int(port_text)
                self.requests.append((method, host, port))
                up_r, up_w = await asyncio.open_connection(self._address(host), port)
                self._write(writer, b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = urlsplit(target)
                host, port = url.hostname or "", url.port or 80
                self.requests.append((method, host, port))
                up_r, up_w = await asyncio.open_connection(self._address(host), port)
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                kept = "".join(f"{line}\r\n" for line in lines if not line.lower().startswith("proxy-"))
                self._write(up_w, f"{method} {path} {version}\r\n{kept}\r\n".encode("latin-1"))
            await self._pipe(reader, writer, up_r, up_w)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.carried += len(data)
        writer.write(data)

    @staticmethod
    def _address(host: str) -> str:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return "127.0.0.1"  # every name: nothing leaves the machine

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, RuntimeError):
                while chunk := await source.read(65536):
                    self._write(sink, chunk)
                    await sink.drain()
                if sink.can_write_eof():
                    sink.write_eof()

        try:
            await asyncio.gather(copy(reader, up_w), copy(up_r, writer))
        finally:
            up_w.close()


@contextlib.contextmanager
def running(username: str | None = None, password: str | None = None) -> Iterator[TestProxy]:
    proxy = TestProxy(username, password).start()
    try:
        yield proxy
    finally:
        proxy.stop()
