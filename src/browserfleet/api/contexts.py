"""Routes for contexts (issue 10)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
