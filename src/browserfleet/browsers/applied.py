"""Making a browser's `AppliedSpec` true: the `TargetHook`s each setting needs, run by a `BrowserAgent`,
and the settings applied outside the browser (its egress proxy's routes, its NSS trust store).

Each setting's hook lives in its own module (fingerprint, allowed domains, ad blocking...); `hooks_for`
is the one list of them. Every spec has at least the fingerprint's (the default session presents a
fingerprint too), so every browser has an agent: a pooled one from when the pool launched it
(`prepare`, with the default spec), any other from when it is taken (`apply`).
"""

from __future__ import annotations

import logging

from browserfleet.browsers import cookies, fingerprint, trust, upstream
from browserfleet.browsers.adblock import AdBlock
from browserfleet.browsers.agent import BrowserAgent, TargetHook
from browserfleet.browsers.certerrors import IgnoreCertificateErrors
from browserfleet.browsers.interception import Interception, Interceptor
from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.navigation import AllowedDomains, DomainList
from browserfleet.browsers.pdf import PdfDownloads
from browserfleet.browsers.spec import AppliedSpec, ProxyRule
from browserfleet.errors import LaunchFailed

log = logging.getLogger(__name__)


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
    # Every session gets a fingerprint: the default one (a desktop Chrome, never "HeadlessChrome") too.
    # After interception: a network gate is in place on a new target before anything else runs there.
    hooks.append(fingerprint.FingerprintHook(fingerprint.wanted(applied)))
    return hooks


async def prepare(browser: Browser) -> None:
    """Start a pooled browser's agent with the default spec's hooks while it waits in the pool (off any
    request's path). Never raises: a browser it fails on is left without an agent, and `apply` starts
    one when the browser is taken."""
    try:
        await apply(browser, AppliedSpec())
    except Exception as exc:
        log.warning("browser %s: its agent did not start in the pool: %s", browser.pid, exc)
        if browser.agent is not None:
            agent, browser.agent = browser.agent, None
            await agent.close()


async def apply(browser: Browser, applied: AppliedSpec) -> None:
    """Apply `applied` to a browser just taken or launched, before any client sees it. Raises
    `BrowserError` (a `CdpError`) if the browser does not take it; the caller releases the browser.

    A browser `prepare`d in the pool already has the default spec's hooks running: only what `applied`
    asks beyond them is done now (its own fingerprint drawn and set on the open targets, its interceptors
    swapped in, its other hooks added), so a default session waits for nothing."""
    route_through(browser, applied.proxies)
    await trust.add(browser.profile_dir / "home", applied.ca_certificates, browser.uid)
    await cookies.restore(browser)  # a context's saved cookies, left by the provisioner (if any)
    hooks = hooks_for(applied)
    agent = browser.agent
    if agent is not None:
        running = [h for h in agent.hooks if isinstance(h, fingerprint.FingerprintHook)]
        asked = [h for h in hooks if isinstance(h, fingerprint.FingerprintHook)]
        if running and asked and running[0].asked != asked[0].asked:
            await running[0].retarget(asked[0].asked, list(agent.targets.values()))
        # One Interception per agent (a second Fetch.enable on a target would undo the first's).
        running_net = [h for h in agent.hooks if isinstance(h, Interception)]
        asked_net = [h for h in hooks if isinstance(h, Interception)]
        if running_net:
            wanted = asked_net[0].interceptors if asked_net else []
            await running_net[0].retarget(wanted, list(agent.targets.values()))
        others = [h for h in hooks if not isinstance(h, (fingerprint.FingerprintHook, Interception))]
        if not running_net:
            others += asked_net
        if others:
            await agent.extend(others)
        return
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
