"""`browserSettings.ignoreCertificateErrors`: a session whose browser accepts any TLS certificate.

Default false (what the 1.22 SDKs document; the hosted API's newer spec says true): a page whose
certificate does not verify fails with Chromium's error (Playwright: net::ERR_CERT_AUTHORITY_INVALID and
the like), as in any browser. With true, `Security.setIgnoreCertificateErrors` on the browser's own CDP
session makes every tab of every browser context accept it, for as long as the agent's connection is
open, which is the browser's lifetime.
"""

from __future__ import annotations

from browserfleet.browsers.agent import AttachedTarget
from browserfleet.browsers.cdp import CdpConnection


class IgnoreCertificateErrors:
    """The `TargetHook`: browser-wide, nothing per target."""

    async def browser(self, cdp: CdpConnection) -> None:
        await cdp.send("Security.setIgnoreCertificateErrors", {"ignore": True})

    async def attached(self, target: AttachedTarget) -> None:
        pass
