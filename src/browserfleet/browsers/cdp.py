"""A small CDP client for the server's own connections to a browser (capture, live view, tab lists).

Clients' connections never pass through here: they are spliced byte for byte by the gateway. This is
for the few connections the server opens itself, made inside the browser's network namespace.

A connection owns its tasks (the reader, the commands `send_soon` sends) and ends them in `close()`,
which whoever opened it must await.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from browserfleet.aio import Tasks
from browserfleet.browsers.launcher import Browser
from browserfleet.errors import CdpError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 10.0  # a browser that does not answer in this long is hung: callers must not wait on
Handler = Callable[[dict[str, Any], str | None], None]  # (params, CDP session id)


class CdpConnection:
    """One WebSocket to a browser target; commands are awaited, events go to registered handlers.

    Made by `open()`, which starts reading."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks = Tasks("cdp")
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, browser: Browser, path: str | None = None) -> CdpConnection:
        """Connect to the browser endpoint, or to `path` (e.g. `/devtools/page/<id>`) on its port."""
        url = browser.ws_url if path is None else f"ws://127.0.0.1:{browser.port}{path}"
        sock = await browser.connect_socket()
        try:
            ws = await asyncio.wait_for(
                connect(url, sock=sock, compression=None, max_size=None, ping_interval=None), CONNECT_TIMEOUT
            )
        except BaseException:
            sock.close()
            raise
        connection = cls(ws)
        connection._tasks.spawn(connection._read(), "reader")
        return connection

    def on(self, method: str, handler: Handler) -> None:
        self._handlers.setdefault(method, []).append(handler)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        if self.closed.done():
            raise CdpError("connection closed")
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        try:
            await self._ws.send(json.dumps(message))
            return await asyncio.wait_for(future, COMMAND_TIMEOUT)
        except ConnectionClosed as exc:
            raise CdpError("connection closed") from exc
        except TimeoutError as exc:
            raise CdpError(f"{method}: no answer in {COMMAND_TIMEOUT:.0f} s") from exc
        finally:
            self._waiting.pop(message_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: the reader may have failed it as the socket closed
            else:
                future.cancel()

    def send_soon(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> None:
        """Send without waiting for the answer (acks, input): errors are logged at debug level only, and
        what is still unanswered at `close()` is dropped."""
        self._tasks.spawn(self._send_quietly(method, params, session_id), f"send-{method}")

    async def _send_quietly(self, method: str, params: dict[str, Any] | None, session_id: str | None) -> None:
        try:
            await self.send(method, params, session_id)
        except Exception as exc:
            log.debug("CDP command %s failed: %s", method, exc)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                message_id = message.get("id")
                if message_id is not None:
                    future = self._waiting.get(message_id)
                    if future is not None and not future.done():
                        if "error" in message:
                            future.set_exception(CdpError(str(message["error"].get("message"))))
                        else:
                            future.set_result(message.get("result", {}))
                    continue
                for handler in self._handlers.get(message.get("method", ""), ()):
                    try:
                        handler(message.get("params", {}), message.get("sessionId"))
                    except Exception:
                        log.exception("CDP event handler for %s failed", message.get("method"))
        except (ConnectionClosed, OSError):
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(CdpError("connection closed"))
            if not self.closed.done():
                self.closed.set_result(None)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 2)
        await self._tasks.close()
        if not self.closed.done():  # never opened for reading
            self.closed.set_result(None)
