"""The Chromium command line."""

from __future__ import annotations

from collections.abc import Sequence

from browserfleet.browsers import egress

# Lean and quiet: no first-run UI, no background traffic to Google (updates, sync, safe browsing,
# variations, metrics), and the WebUI omnibox popups off (they cost ~57 MB per browser).
DEFAULT_FLAGS = (
    "--headless=new",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-field-trial-config",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-dev-shm-usage",
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,Translate,OptimizationHints,"
    "MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    # navigator.webdriver false in every page and worker (the fingerprint's, browsers/fingerprint.py).
    "--disable-blink-features=AutomationControlled",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


# In its own network namespace a browser reaches the world only through the egress proxy; loopback
# too (<-loopback> drops Chromium's implicit bypass), since its own loopback is empty.
EGRESS_FLAGS = (f"--proxy-server=http://127.0.0.1:{egress.PORT}", "--proxy-bypass-list=<-loopback>")


def command_line(
    executable: str, user_data_dir: str, extra: list[str], sandbox: bool, spec_args: Sequence[str] = ()
) -> list[str]:
    """Chromium's arguments; `user_data_dir` as the browser will see it (inside its jail, if any), and
    `spec_args` what its `LaunchSpec` adds (from the provisioner that filled its profile)."""
    args = [executable, *DEFAULT_FLAGS, f"--user-data-dir={user_data_dir}"]
    args.extend(spec_args)
    if not sandbox:
        args.append("--no-sandbox")  # only when the operator allowed unsandboxed browsers
    args.extend(extra)
    args.append("about:blank")  # the one open page every client expects in contexts[0]
    return args
