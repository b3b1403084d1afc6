"""`BrowserSpec`: what a session asks of its browser, as a value that crosses component boundaries.

It is split by when a setting can take effect:

* `LaunchSpec` is fixed when Chromium starts (its command line and profile): extensions, a context's
  profile, the engine. A pooled browser serves a session only if it was launched with an equal
  `LaunchSpec`; any other launches cold.
* `AppliedSpec` can be applied to any browser after it is taken, over CDP or at the egress proxy:
  viewport, user agent and client hints, locale and timezone, proxies, allowed domains, ad blocking,
  and CA certificates to trust (added to the running browser's NSS database, which Chromium reads at
  each verification). So the common clients (Stagehand always sends a viewport) still get a warm browser.

Values only: no I/O, no HTTP, nothing of the request that built them. Secrets (proxy passwords) are
kept for use but never serialised by `summary()`, which is what is stored with the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ProxyKind = Literal["browserbase", "external", "none"]
Os = Literal["windows", "mac", "linux", "mobile", "tablet"]


@dataclass(frozen=True)
class LaunchSpec:
    """What Chromium must be started with. The default (`LaunchSpec()`) is what the warm pool holds."""

    engine: Literal["chromium"] = "chromium"
    extension_id: str | None = None
    context_id: str | None = None  # its saved profile becomes the browser's

    @property
    def pooled(self) -> bool:
        """Whether a warm-pool browser (launched as `LaunchSpec()`) can serve it."""
        return self == LaunchSpec()


@dataclass(frozen=True)
class Viewport:
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Geolocation:
    country: str
    state: str | None = None
    city: str | None = None


@dataclass(frozen=True)
class Position:
    """Where navigator.geolocation says the device is (degrees; accuracy in metres)."""

    latitude: float
    longitude: float
    accuracy: float = 100.0


@dataclass(frozen=True)
class ProxyRule:
    """One entry of `proxies`: the first whose `domain_pattern` matches a host decides its route."""

    kind: ProxyKind
    domain_pattern: str | None = None
    geolocation: Geolocation | None = None
    server: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TrustedCa:
    """A CA certificate (`/v1/certificates`) the browser must trust: its id and its DER bytes."""

    id: str
    der: bytes = field(repr=False)


@dataclass(frozen=True)
class AppliedSpec:
    """What is applied to a browser after it is taken (over CDP, or at its egress proxy)."""

    viewport: Viewport | None = None
    os: Os | None = None
    # The legacy fingerprint object (browsers, devices, locales, operatingSystems, httpVersion,
    # screen), as the contract's §3.1 describes it: JSON values, read by the fingerprint code.
    fingerprint: dict[str, Any] | None = None
    proxies: bool | tuple[ProxyRule, ...] = False
    allowed_domains: tuple[str, ...] = ()
    block_ads: bool = False
    solve_captchas: bool = True
    captcha_image_selector: str | None = None
    captcha_input_selector: str | None = None
    verified: bool = False  # advancedStealth (deprecated) counts as verified
    ignore_certificate_errors: bool = False
    enable_pdf_viewer: bool = False  # False: PDFs are downloaded, as by the hosted service (browsers/pdf.py)
    ca_certificates: tuple[TrustedCa, ...] = ()  # proxySettings.caCertificates
    # Where the session appears to be, for its fingerprint (browsers/fingerprint.py). Set from a proxy's
    # geolocation when the server can place it; without, the time zone follows the first locale's region.
    timezone: str | None = None  # an IANA name; `fingerprint.check` refuses others
    position: Position | None = None


@dataclass(frozen=True)
class BrowserSpec:
    launch: LaunchSpec = field(default_factory=LaunchSpec)
    applied: AppliedSpec = field(default_factory=AppliedSpec)

    def summary(self) -> dict[str, Any]:
        """A JSON object of what differs from the defaults, without secrets (stored with the session)."""
        out: dict[str, Any] = {}
        launch = _non_default(self.launch, LaunchSpec())
        if launch:
            out["launch"] = launch
        applied = _non_default(self.applied, AppliedSpec())
        if applied:
            out["applied"] = applied
        return out


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if isinstance(value, TrustedCa):
        return value.id
    if isinstance(value, ProxyRule):
        rule = {k: _json(v) for k, v in vars(value).items() if v is not None and k != "password"}
        if value.password is not None:
            rule["password"] = "(set)"
        if value.server is not None:
            rule["server"] = _without_password(value.server)
        return rule
    if hasattr(value, "__dataclass_fields__"):
        return {k: _json(v) for k, v in vars(value).items() if v is not None}
    return value


def _without_password(url: str) -> str:
    """`url` with the password of its user part (`scheme://user:password@host`), if any, hidden. It
    errs towards hiding: a password may hold `@`, `/` or `://`, so the user part ends at the last `@`."""
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    userinfo, at, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}{sep}{user}{colon and ':(set)'}{at}{host}"


def _non_default(value: Any, default: Any) -> dict[str, Any]:
    return {k: _json(v) for k, v in vars(value).items() if v != getattr(default, k)}
