"""A WebDriver new-session request's capabilities, reduced to what may reach chromedriver (pure logic).

The W3C rules choose one set: `alwaysMatch` merged with each `firstMatch` entry in turn, the first whose
`browserName` is Chrome's (or absent) wins. From it only the capabilities in `PASSED` go on; the driver's
`goog:chromeOptions` is the server's own (`debuggerAddress`, the session's browser through the gateway),
so nothing a client sends can make chromedriver launch a binary, add browser arguments or attach
elsewhere. What a client sends for those is refused (`binary`, `debuggerAddress`, a `proxy`) or, where
chromedriver itself ignores it when it attaches to a running browser (`args`, `extensions`, `prefs`),
left out; the session's settings (`bb:options`, the create body) say how its browser runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from browserfleet.errors import InvalidRequest

CHROME_NAMES = frozenset({"chrome", "chromium", "chrome-headless-shell"})
PASSED = frozenset(
    {
        "acceptInsecureCerts",
        "pageLoadStrategy",
        "strictFileInteractability",
        "timeouts",
        "unhandledPromptBehavior",
        "goog:loggingPrefs",
    }
)
# Read, then dropped: chromedriver fills them in from the browser it attaches to.
DESCRIPTIVE = frozenset({"browserName", "browserVersion", "platformName", "setWindowRect"})
OPTIONS = "goog:chromeOptions"
# chromedriver does not apply these to a browser it attaches to: accepted (existing suites send them).
IGNORED_OPTIONS = frozenset(
    {"args", "extensions", "prefs", "excludeSwitches", "detach", "w3c", "windowTypes"}
)
BB_OPTIONS = "bb:options"


class SessionNotCreated(InvalidRequest):
    """No capability set can be met here (W3C `session not created`)."""


@dataclass(frozen=True)
class Chosen:
    capabilities: dict[str, Any]  # what chromedriver gets, less the server's own goog:chromeOptions
    bb_options: dict[str, Any] | None  # a create body, for a session the new-session command creates
    bidi: bool  # webSocketUrl: true


def choose(body: Any) -> Chosen:
    """The capabilities of a new-session body, or InvalidRequest / SessionNotCreated saying why not."""
    if not isinstance(body, dict):
        raise InvalidRequest("The new-session body must be a JSON object with 'capabilities'")
    capabilities = body.get("capabilities")
    if capabilities is None:
        capabilities = {"alwaysMatch": body.get("desiredCapabilities") or {}}
    if not isinstance(capabilities, dict):
        raise InvalidRequest("'capabilities' must be an object")
    always = capabilities.get("alwaysMatch", {})
    first = capabilities.get("firstMatch", [{}])
    if not isinstance(always, dict):
        raise InvalidRequest("'capabilities.alwaysMatch' must be an object")
    if not isinstance(first, list) or not first or not all(isinstance(entry, dict) for entry in first):
        raise InvalidRequest("'capabilities.firstMatch' must be a non-empty list of objects")
    for entry in first:
        if overlap := sorted(set(entry) & set(always)):
            raise InvalidRequest(f"'{overlap[0]}' is in both alwaysMatch and firstMatch")
    for entry in first:
        merged = {**always, **entry}
        name = merged.get("browserName")
        if name is None or (isinstance(name, str) and name.lower() in CHROME_NAMES):
            return _reduce(merged)
    raise SessionNotCreated("This server runs Chrome (Chromium): no capability set asks for it")


def _reduce(merged: dict[str, Any]) -> Chosen:
    passed: dict[str, Any] = {}
    bidi = False
    bb_options: dict[str, Any] | None = None
    for key, value in merged.items():
        if key in PASSED:
            passed[key] = value
        elif key in DESCRIPTIVE or key.startswith("se:"):
            continue
        elif key == "webSocketUrl":
            if not isinstance(value, bool):
                raise InvalidRequest("'webSocketUrl' must be a boolean")
            bidi = value
        elif key == "proxy":
            if value not in ({}, None):
                raise InvalidRequest(
                    "The 'proxy' capability is not taken here: a session's proxies are its own setting "
                    "(bb:options.proxies, or ?enableProxy=true on the WebDriver URL)"
                )
        elif key == OPTIONS:
            _check_options(value)
        elif key == BB_OPTIONS:
            if not isinstance(value, dict):
                raise InvalidRequest("'bb:options' must be an object (a session create body)")
            bb_options = value
        elif ":" in key:
            continue  # another vendor's extension (moz:, ms:, a cloud's): not Chrome's, nothing to apply
        else:
            raise InvalidRequest(f"Unknown capability {key[:80]!r}")
    return Chosen(passed, bb_options, bidi)


def _check_options(options: Any) -> None:
    if not isinstance(options, dict):
        raise InvalidRequest(f"'{OPTIONS}' must be an object")
    for key in options:
        if key not in IGNORED_OPTIONS:
            raise InvalidRequest(
                f"'{OPTIONS}.{str(key)[:60]}' is not taken here: the session's browser is already running, "
                "as its settings say (set them in bb:options or the create body)"
            )
