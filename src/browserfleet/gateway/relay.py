"""Frame relay between a client socket and a browser socket: no compression, no size limit."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import ClientWebSocketResponse, WSMsgType, web

Socket = web.WebSocketResponse | ClientWebSocketResponse


async def _pump(source: Socket, sink: Socket) -> None:
    async for message in source:
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)


async def relay(client: web.WebSocketResponse, browser: ClientWebSocketResponse) -> None:
    """Relay both ways until either side closes, then close the other."""
    pumps = [asyncio.create_task(_pump(client, browser)), asyncio.create_task(_pump(browser, client))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        await browser.close()
        await client.close()
