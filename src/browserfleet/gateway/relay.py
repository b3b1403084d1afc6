"""Frame relay between a client socket (aiohttp) and a browser socket (websockets): no compression,
no size limit. The client → browser direction goes through the CDP policy; the other is copied as is.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web
from websockets.asyncio.client import ClientConnection

from browserfleet.gateway.policy import Policy


async def _to_browser(client: web.WebSocketResponse, browser: ClientConnection, policy: Policy) -> None:
    async for message in client:
        if message.type is WSMsgType.TEXT:
            forward, reply = policy.apply(message.data)
            if forward is not None:
                await browser.send(forward)
            if reply is not None:
                await client.send_str(reply)
        elif message.type is WSMsgType.BINARY:
            await browser.send(message.data)


async def _to_client(browser: ClientConnection, client: web.WebSocketResponse) -> None:
    async for message in browser:
        if isinstance(message, str):
            await client.send_str(message)
        else:
            await client.send_bytes(message)


async def relay(client: web.WebSocketResponse, browser: ClientConnection, policy: Policy) -> None:
    """Relay both ways until either side closes, then close the other."""
    pumps = [
        asyncio.create_task(_to_browser(client, browser, policy)),
        asyncio.create_task(_to_client(browser, client)),
    ]
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
