"""What a create's network settings become before a browser is taken: `proxies` resolved against the
server's own (`BROWSERFLEET_PROXIES`), and `proxySettings.caCertificates` loaded from the project's
certificates. Every refusal is a 4xx here (400, 404), or a 501 when this host cannot do it at all."""

from __future__ import annotations

import dataclasses

from browserfleet.artifacts.certificates import trusted
from browserfleet.browsers import trust, upstream
from browserfleet.browsers.spec import ProxyRule
from browserfleet.config import Settings
from browserfleet.errors import NotOffered
from browserfleet.sessions.manager import SessionSpec
from browserfleet.store.repo import Store


def resolved_proxies(settings: Settings, requested: bool | tuple[ProxyRule, ...]) -> tuple[ProxyRule, ...]:
    """The rules a browser's egress proxy applies for `requested` (InvalidRequest says what cannot be)."""
    return upstream.resolve(requested, settings.server_proxies())


async def network_spec(
    spec: SessionSpec, settings: Settings, store: Store, project_id: str, ca_ids: list[str]
) -> SessionSpec:
    """`spec` with its proxies resolved and its CA certificates (by id, in the project) loaded."""
    browser = spec.browser
    # Resolved to nothing, the request's own value (False, or []) stays, as the stored summary shows it.
    proxies = resolved_proxies(settings, browser.applied.proxies) or browser.applied.proxies
    applied = dataclasses.replace(browser.applied, proxies=proxies)
    if ca_ids:
        if not trust.available():
            raise NotOffered(
                "proxySettings.caCertificates needs NSS's certutil on the server (Debian: libnss3-tools)"
            )
        applied = dataclasses.replace(applied, ca_certificates=await trusted(store, project_id, ca_ids))
    return dataclasses.replace(spec, browser=dataclasses.replace(browser, applied=applied))
