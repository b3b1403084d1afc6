"""Making a browser's `AppliedSpec` true: the `TargetHook`s each setting needs, run by a `BrowserAgent`.

Each setting's hook lives in its own module (fingerprint, allowed domains, ad blocking...); `hooks_for`
is the one list of them. Every spec has at least the fingerprint's (the default session presents a
fingerprint too), so every browser has an agent: a pooled one from when the pool launched it
(`prepare`, with the default spec), any other from when it is taken (`apply`).
"""

from __future__ import annotations

import logging

from browserfleet.browsers import fingerprint
from browserfleet.browsers.agent import BrowserAgent, TargetHook
from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.spec import AppliedSpec

log = logging.getLogger(__name__)


def hooks_for(applied: AppliedSpec) -> list[TargetHook]:
    """The hooks that apply `applied`, in the order they run on each target."""
    hooks: list[TargetHook] = []
    # Every session gets a fingerprint: the default one (a desktop Chrome, never "HeadlessChrome") too.
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
    asks beyond them is done now (its own fingerprint drawn and set on the open targets, its other hooks
    added), so a default session waits for nothing."""
    hooks = hooks_for(applied)
    agent = browser.agent
    if agent is not None:
        running = [h for h in agent.hooks if isinstance(h, fingerprint.FingerprintHook)]
        asked = [h for h in hooks if isinstance(h, fingerprint.FingerprintHook)]
        if running and asked and running[0].asked != asked[0].asked:
            await running[0].retarget(asked[0].asked, list(agent.targets.values()))
        others = [h for h in hooks if not isinstance(h, fingerprint.FingerprintHook)]
        if others:
            await agent.extend(others)
        return
    if not hooks:
        return
    agent = BrowserAgent(browser, hooks)
    browser.agent = agent  # closed with the browser, even if it fails to start
    await agent.start()
