"""Frame relay between a client socket and a browser socket: no compression, no size limit."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import ClientWebSocketResponse, WSMsgType, web

from browserfleet.gateway.policy import Policy

Socket = web.WebSocketResponse | ClientWebSocketResponse


async def _to_browser(
    client: web.WebSocketResponse, browser: ClientWebSocketResponse, policy: Policy
) -> None:
    async for message in client:
        if message.type is WSMsgType.TEXT:
            forward, reply = policy.apply(message.data)
            if forward is not None:
                await browser.send_str(forward)
            if reply is not None:
                await client.send_str(reply)
        elif message.type is WSMsgType.BINARY:
            await browser.send_bytes(message.data)


async def _to_client(browser: ClientWebSocketResponse, client: web.WebSocketResponse) -> None:
    async for message in browser:
        if message.type is WSMsgType.TEXT:
            await client.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await client.send_bytes(message.data)


async def relay(client: web.WebSocketResponse, browser: ClientWebSocketResponse, policy: Policy) -> None:
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
