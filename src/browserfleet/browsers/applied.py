"""Making a browser's `AppliedSpec` true: the `TargetHook`s each setting needs, run by a `BrowserAgent`,
and the settings applied outside the browser (its egress proxy's routes, its NSS trust store).

Each setting's hook lives in its own module (fingerprint, allowed domains, ad blocking...); `hooks_for`
is the one list of them. A spec that needs no hook starts no agent (no CDP connection, no pause of new
targets).
"""

from __future__ import annotations

from browserfleet.browsers import cookies, trust, upstream
from browserfleet.browsers.adblock import AdBlock
from browserfleet.browsers.agent import BrowserAgent, TargetHook
from browserfleet.browsers.certerrors import IgnoreCertificateErrors
from browserfleet.browsers.interception import Interception, Interceptor
from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.navigation import AllowedDomains, DomainList
from browserfleet.browsers.pdf import PdfDownloads
from browserfleet.browsers.spec import AppliedSpec, ProxyRule
from browserfleet.errors import LaunchFailed


def hooks_for(applied: AppliedSpec) -> list[TargetHook]:
    """The hooks that apply `applied`, in the order they run on each target."""
    hooks: list[TargetHook] = []
    if applied.ignore_certificate_errors:
        hooks.append(IgnoreCertificateErrors())
    interceptors: list[Interceptor] = []
    if applied.allowed_domains:
        interceptors.append(AllowedDomains(DomainList.parse(applied.allowed_domains)))
    if applied.block_ads:
        interceptors.append(AdBlock())
    if not applied.enable_pdf_viewer:
        interceptors.append(PdfDownloads())
    if interceptors:
        hooks.append(Interception(interceptors))
    return hooks


async def apply(browser: Browser, applied: AppliedSpec) -> None:
    """Apply `applied` to a browser just taken or launched, before any client sees it. Raises
    `BrowserError` (a `CdpError`) if the browser does not take it; the caller releases the browser."""
    route_through(browser, applied.proxies)
    await trust.add(browser.profile_dir / "home", applied.ca_certificates, browser.uid)
    await cookies.restore(browser)  # a context's saved cookies, left by the provisioner (if any)
    hooks = hooks_for(applied)
    if not hooks:
        return
    agent = BrowserAgent(browser, hooks)
    browser.agent = agent  # closed with the browser, even if it fails to start
    await agent.start()


def route_through(browser: Browser, proxies: bool | tuple[ProxyRule, ...]) -> None:
    """Send the browser's traffic through the upstream proxies of resolved `proxies` (`upstream.resolve`:
    the API has turned `true` and `browserbase` entries into servers). LaunchFailed if the browser has no
    egress proxy to route with (network isolation off), or the rules are not resolved."""
    if proxies is True:
        raise LaunchFailed("proxies: true reached the browser unresolved", "upstream.resolve was not called")
    if proxies is False or not proxies:
        return
    if browser.egress is None:
        raise LaunchFailed(
            "proxies need the browser's egress proxy, and this server runs browsers on the host's network "
            "(BROWSERFLEET_ISOLATE_NETWORK)"
        )
    try:
        browser.egress.routes = upstream.routes_for(proxies)
    except ValueError as exc:
        raise LaunchFailed(f"the session's proxies cannot be applied: {exc}") from exc
