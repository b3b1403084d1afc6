"""The hosted service's resources a self-hosted server does not have (contract §10): `501 Not Implemented`
in the contract's error body, naming the feature and why, for every method and path under each of them,
never a bare "route not found" 404.

The key is checked first (401 without a valid one), as on every other route. These routes are not in
`/openapi.json`: they are listed there as what the server offers, and it offers none of these. What
`/v1/fetch` cannot do (its `json` format) is refused in `api/fetch.py`.
"""

from __future__ import annotations

from aiohttp import web

from browserfleet.api.context import caller
from browserfleet.api.errors import Handler
from browserfleet.errors import NotOffered

routes = web.RouteTableDef()

# Each resource's path prefix, and what its 501 says.
NOT_OFFERED = {
    "/v1/search": "Web search (/v1/search) is not offered by this self-hosted server: it needs a search "
    "provider, which browserfleet does not have.",
    "/v1/agents": "Agents and agent runs (/v1/agents) are not offered by this self-hosted server: they need "
    "a language model, which browserfleet does not have.",
    "/v1/functions": "Functions (/v1/functions) are not offered by this self-hosted server: they need the "
    "hosted service's function runtime.",
    "/v1/secrets": "Secrets (/v1/secrets) are not offered by this self-hosted server: they are stored for "
    "Functions, which browserfleet does not run.",
    "/v1/webhooks": "Webhooks (/v1/webhooks) are not offered by this self-hosted server: they report on "
    "Functions, which browserfleet does not run.",
}


def _refusal(message: str) -> Handler:
    async def not_offered(request: web.Request) -> web.Response:
        await caller(request)
        raise NotOffered(message)

    return not_offered


for _prefix, _message in NOT_OFFERED.items():
    _handler = _refusal(_message)
    # The prefix itself and everything under it, whatever the method.
    routes.route("*", _prefix)(_handler)
    routes.route("*", _prefix + "/{rest:.*}")(_handler)
