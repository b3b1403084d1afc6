"""Real-world device samples: one user agent and the navigator, screen and GPU values seen with it.

Built on `browserforge`'s Bayesian networks over Apify's collected fingerprints; the data is the installed
`apify-fingerprint-datapoints` package (nothing is downloaded at run time). The header network picks a
user agent for the asked browsers, systems and devices (it knows which combinations exist); every value of
the fingerprint network depends on the user agent alone, so each is then drawn from its distribution given
that user agent, and the screen only among those that fit (`ScreenFit`). That is a few dictionary lookups:
browserforge's own `FingerprintGenerator.generate(screen=...)` took 1.5 s for a common screen constraint.

Guarantees: `draw` returns in milliseconds or raises `Unsatisfiable` (no browser, system and device of
the data fit together); a sample's screen fits when any screen of the data does, and otherwise is
synthesised to fit (`Sample.screen_synthesised`). The networks load once, when this module is imported.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from browserforge.fingerprints import FingerprintGenerator
from browserforge.headers import Browser as ForgeBrowser
from browserforge.headers import HeaderGenerator

_STRINGIFIED = "*STRINGIFIED*"
_MISSING = "*MISSING_VALUE*"
# Oldest major version drawn: every Chrome since 113 sends the reduced user agent ("Chrome/<major>.0.0.0"),
# which is what a current major version is then written into.
MIN_MAJOR = 120
ATTEMPTS = 8  # user agents drawn before a screen is synthesised for the constraints

_headers = HeaderGenerator()
_network = FingerprintGenerator.fingerprint_generator_network


class Unsatisfiable(Exception):
    """No sample of the data has the asked browser, system and device together."""


@dataclass(frozen=True)
class ScreenFit:
    """Which screens a sample may have (CSS pixels; None: no bound)."""

    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    scale_one: bool = False  # a device scale factor of 1 only

    def admits(self, screen: dict[str, Any]) -> bool:
        width, height = screen.get("width"), screen.get("height")
        if not isinstance(width, int | float) or not isinstance(height, int | float):
            return False
        if self.scale_one and screen.get("devicePixelRatio") != 1:
            return False
        return (
            width >= (self.min_width or 0)
            and height >= (self.min_height or 0)
            and width <= (self.max_width or 10**6)
            and height <= (self.max_height or 10**6)
        )


@dataclass(frozen=True)
class Sample:
    user_agent: str
    values: dict[str, Any]  # navigator values by node name: userAgentData, platform, deviceMemory, ...
    screen: dict[str, Any]  # width, height, availWidth, availHeight, availTop, availLeft, colorDepth, ...
    screen_synthesised: bool = False


def _decode(value: Any) -> Any:
    if value == _MISSING:
        return None
    if isinstance(value, str) and value.startswith(_STRINGIFIED):
        return json.loads(value[len(_STRINGIFIED) :])
    return value


@functools.lru_cache(maxsize=4096)
def _choices(
    node_name: str, user_agent: str, fit: ScreenFit | None = None
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The values of a node given the user agent (only screens that fit, with `fit`), and their
    cumulative weights: computed once per user agent (a few hundred screens each)."""
    node = _network.nodes_by_name[node_name]
    given = cast(dict[str, float], node.get_probabilities_given_known_values({"userAgent": user_agent}))
    values = tuple(v for v in given if fit is None or fit.admits(_screen(v)))
    return values, tuple(itertools.accumulate(given[v] for v in values))


def _pick(node_name: str, user_agent: str, fit: ScreenFit | None = None) -> str | None:
    values, cumulative = _choices(node_name, user_agent, fit)
    if not values:
        return None
    return str(random.choices(values, cum_weights=cumulative)[0])


@functools.cache
def _screen(encoded: str) -> dict[str, Any]:
    decoded = _decode(encoded)
    return decoded if isinstance(decoded, dict) else {}


@functools.cache
def _all_screens() -> tuple[str, ...]:
    return tuple(_network.nodes_by_name["screen"].possible_values)


def any_screen_fits(fit: ScreenFit) -> bool:
    """Whether some screen of the data, of any device, fits."""
    return any(fit.admits(_screen(encoded)) for encoded in _all_screens())


def _user_agent(browsers: Sequence[str], systems: Sequence[str], devices: Sequence[str]) -> str:
    try:
        headers = _headers.generate(
            browser=[ForgeBrowser(name, min_version=MIN_MAJOR) for name in browsers],
            os=tuple(systems),
            device=tuple(devices),
            http_version=2,
            strict=True,
        )
    except ValueError as exc:
        raise Unsatisfiable(str(exc)) from exc
    agent = headers.get("User-Agent") or headers.get("user-agent")
    if not isinstance(agent, str):
        raise Unsatisfiable("the header network gave no user agent")
    return agent


def _wanted_browser(agent: str, browsers: Sequence[str]) -> bool:
    edge = "Edg" in agent
    return ("edge" in browsers and edge) or ("chrome" in browsers and not edge)


def _fits_devices(agent: str, devices: Sequence[str]) -> bool:
    """The data files a few Android tablets (no "Mobile" in the agent) under mobile devices: a session
    that asked for a phone, or for a desktop only, must not get one."""
    phone = "Mobile" in agent
    return ("mobile" in devices and phone) or ("desktop" in devices and not phone and "Android" not in agent)


def draw(browsers: Sequence[str], systems: Sequence[str], devices: Sequence[str], fit: ScreenFit) -> Sample:
    """A sample of one of `browsers` (chrome, edge) on one of `systems` (browserforge's names) and
    `devices` (desktop, mobile), whose screen fits `fit`."""
    agent = ""
    for _ in range(ATTEMPTS):
        candidate = _user_agent(browsers, systems, devices)
        if candidate not in _network.nodes_by_name["userAgent"].possible_values:
            continue  # the two networks were collected apart: a few header agents have no fingerprint
        if not _wanted_browser(candidate, browsers) or not _fits_devices(candidate, devices):
            continue
        agent = candidate
        encoded = _pick("screen", agent, fit)
        if encoded is not None:
            return Sample(agent, _navigator(agent), dict(_screen(encoded)))
    if not agent:
        raise Unsatisfiable("no fingerprint of the data has that browser, system and device")
    encoded = _pick("screen", agent)
    return Sample(agent, _navigator(agent), synthesise(fit, _screen(encoded) if encoded else {}), True)


def synthesise(fit: ScreenFit, like: dict[str, Any]) -> dict[str, Any]:
    """A screen within `fit`, keeping what `like` (the agent's own screen) says where it fits."""
    width = _clamp(int(like.get("width") or 1920), fit.min_width, fit.max_width)
    height = _clamp(int(like.get("height") or 1080), fit.min_height, fit.max_height)
    taskbar = int(like.get("height", 0) or 0) - int(like.get("availHeight", 0) or 0)
    taskbar = max(0, min(taskbar, height // 10))
    depth = like.get("colorDepth") or 24
    return {
        "width": width,
        "height": height,
        "availWidth": width,
        "availHeight": height - taskbar,
        "availTop": like.get("availTop") if taskbar else 0,
        "availLeft": 0,
        "colorDepth": depth,
        "pixelDepth": like.get("pixelDepth") or depth,
        "devicePixelRatio": 1 if fit.scale_one else like.get("devicePixelRatio") or 1,
    }


def _clamp(value: int, low: int | None, high: int | None) -> int:
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


_NAVIGATOR = (
    "userAgentData",
    "platform",
    "deviceMemory",
    "hardwareConcurrency",
    "maxTouchPoints",
    "videoCard",
)


def _navigator(agent: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in _NAVIGATOR:
        encoded = _pick(name, agent)
        values[name] = _decode(encoded) if encoded is not None else None
    return values
