"""Making a browser's `AppliedSpec` true: the `TargetHook`s each setting needs, run by a `BrowserAgent`.

Each setting's hook lives in its own module (fingerprint, allowed domains, ad blocking...); `hooks_for`
is the one list of them. A spec that needs no hook starts no agent (no CDP connection, no pause of new
targets).
"""

from __future__ import annotations

from browserfleet.browsers import fingerprint
from browserfleet.browsers.agent import BrowserAgent, TargetHook
from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.spec import AppliedSpec


def hooks_for(applied: AppliedSpec) -> list[TargetHook]:
    """The hooks that apply `applied`, in the order they run on each target."""
    hooks: list[TargetHook] = []
    # Every session gets a fingerprint: the default one (a desktop Chrome, never "HeadlessChrome") too.
    hooks.append(fingerprint.FingerprintHook(fingerprint.wanted(applied)))
    return hooks


async def apply(browser: Browser, applied: AppliedSpec) -> None:
    """Apply `applied` to a browser just taken or launched, before any client sees it. Raises
    `BrowserError` (a `CdpError`) if the browser does not take it; the caller releases the browser."""
    hooks = hooks_for(applied)
    if not hooks:
        return
    agent = BrowserAgent(browser, hooks)
    browser.agent = agent  # closed with the browser, even if it fails to start
    await agent.start()
