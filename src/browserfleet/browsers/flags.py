"""The Chromium command line."""

from __future__ import annotations

from browserfleet.browsers import egress
from browserfleet.browsers.spec import LaunchSpec

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
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


# In its own network namespace a browser reaches the world only through the egress proxy; loopback
# too (<-loopback> drops Chromium's implicit bypass), since its own loopback is empty.
EGRESS_FLAGS = (f"--proxy-server=http://127.0.0.1:{egress.PORT}", "--proxy-bypass-list=<-loopback>")


def spec_arguments(spec: LaunchSpec) -> tuple[str, ...]:
    """The arguments `spec` adds to a browser's command line. Two specs with the same arguments launch
    the same browser, so a pooled browser can serve either.

    None yet: an extension or a context's profile is accepted and stored but not loaded
    (docs/architecture.md, "Where the code bends"); they will add their arguments here, and from then
    on a session asking for one launches cold."""
    if spec.engine != "chromium":
        raise ValueError(f"no such engine: {spec.engine}")
    return ()


def command_line(
    executable: str, user_data_dir: str, extra: list[str], sandbox: bool, spec: LaunchSpec | None = None
) -> list[str]:
    """Chromium's arguments for a browser launched as `spec`; `user_data_dir` as the browser will see it
    (inside its jail, if any)."""
    args = [executable, *DEFAULT_FLAGS, f"--user-data-dir={user_data_dir}"]
    args.extend(spec_arguments(spec or LaunchSpec()))
    if not sandbox:
        args.append("--no-sandbox")  # only when the operator allowed unsandboxed browsers
    args.extend(extra)
    args.append("about:blank")  # the one open page every client expects in contexts[0]
    return args
