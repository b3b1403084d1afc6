"""Fingerprints: what a session's pages and workers say about the browser, the device and its user, made
coherent and applied over CDP, so that sessions that ask for one still get a warm pooled browser.

Owns three steps, each a value in and a value out:

* `wanted(applied)`: the session's `os`, `viewport`, locale and legacy `fingerprint` object (contract
  §3.1), validated; anything that cannot be honoured is an `InvalidRequest` naming its key (`check` also
  makes sure the data has such a device). The engine is Chromium, so a fingerprint of another engine
  (Firefox, Safari, any iOS browser) would be incoherent: those are refused, not faked.
* `generate(wanted, product)`: a `Fingerprint` drawn from real-world data (`forge`) and made to claim the
  engine that runs it: Chromium's own major and full version (`Browser.getVersion`'s product), Chrome or
  Edge branding with Chromium's GREASE brand for that version, never "HeadlessChrome".
* `Fingerprint.*_commands()` / `*_script()`: the CDP overrides per kind of target (pure; unit-tested),
  and the script for what CDP has no override for (navigator.platform, which Emulation's `platform`
  sets only while no other client is attached; deviceMemory; the screen's available area and colour
  depth; the WebGL vendor and renderer; in workers the user agent too).

`FingerprintHook` applies one fingerprint to every page, out-of-process frame and worker of a browser
while each is paused at its start (`BrowserAgent`). navigator.webdriver is false by a launch flag
(`flags.DEFAULT_FLAGS`), for every browser.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import zoneinfo
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from browserfleet.browsers import forge
from browserfleet.browsers.agent import AttachedTarget
from browserfleet.browsers.cdp import CdpConnection
from browserfleet.browsers.spec import AppliedSpec, Position
from browserfleet.errors import InvalidRequest, LaunchFailed

log = logging.getLogger(__name__)

FINGERPRINT = "browserSettings.fingerprint"
ENGINE_BROWSERS = ("chrome", "edge")
BROWSERS = (*ENGINE_BROWSERS, "firefox", "safari")
DEVICES = ("desktop", "mobile")
SYSTEMS = ("android", "ios", "linux", "macos", "windows")
DESKTOP_SYSTEMS = ("windows", "macos", "linux")
OS_SYSTEM = {"windows": "windows", "mac": "macos", "linux": "linux", "mobile": "android"}
MAX_LOCALES = 10
MAX_VIEWPORT = 8192
MAX_SCREEN = 16384
DEFAULT_VIEWPORT = (1280, 720)
DEFAULT_LOCALES = ("en-US",)
# CSS pixels between a window's outer and inner height: tab strip and toolbar on a desktop (what headless
# Chromium's own frame takes), the address bar on a phone. The data has no inner sizes to draw from.
TOOLBAR = {"desktop": 87, "mobile": 56}
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-(?:[A-Za-z]{2}|[0-9]{3}))?$")
_VERSION = re.compile(r"/(\d+)\.(\d+)\.(\d+)\.(\d+)")
_SCREEN_KEYS = {
    "minWidth": "min_width",
    "maxWidth": "max_width",
    "minHeight": "min_height",
    "maxHeight": "max_height",
}
WORKERS = ("worker", "shared_worker", "service_worker")


# -- what a session asks for ----------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """A session's fingerprint request, validated. Empty tuples mean "any"."""

    browsers: tuple[str, ...] = ("chrome",)
    systems: tuple[str, ...] = DESKTOP_SYSTEMS
    devices: tuple[str, ...] = ("desktop",)
    locales: tuple[str, ...] = DEFAULT_LOCALES
    screen: forge.ScreenFit = field(default_factory=forge.ScreenFit)
    viewport: tuple[int | None, int | None] = (None, None)
    timezone: str | None = None
    position: Position | None = None

    @property
    def mobile(self) -> bool:
        return self.devices == ("mobile",)

    def fit(self) -> forge.ScreenFit:
        """The screens a sample may have: the asked bounds, large enough for the window."""
        width, height = self.window_at_least()
        asked = self.screen
        return forge.ScreenFit(
            max(asked.min_width or 0, width) or None,
            asked.max_width,
            max(asked.min_height or 0, height) or None,
            asked.max_height,
            asked.scale_one,
        )

    def window_at_least(self) -> tuple[int, int]:
        width, height = self.viewport
        if self.mobile:
            return width or 0, (height + TOOLBAR["mobile"]) if height else 0
        return width or DEFAULT_VIEWPORT[0], (height or DEFAULT_VIEWPORT[1]) + TOOLBAR["desktop"]


def _bad(key: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{key}: {message}")


def _strings(value: Any, key: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(key, "must be an array of strings")
    for item in value:
        if allowed is not None and item not in allowed:
            raise _bad(key, f"{item!r} is not one of {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))  # in order, once each


def _whole(value: Any, key: str, low: int, high: int) -> int | None:
    """An integer in [low, high]; a float with no fraction counts (Stagehand-py sends floats)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _bad(key, "must be a whole number")
    if not low <= value <= high:
        raise _bad(key, f"must be between {low} and {high}")
    return int(value)


def _locale(value: str, key: str) -> str:
    if not _LOCALE.match(value):
        raise _bad(key, f"{value!r} is not a language tag like en-US")
    parts = value.split("-")
    return "-".join([parts[0].lower()] + [p.title() if len(p) == 4 else p.upper() for p in parts[1:]])


def _screen(value: Any) -> forge.ScreenFit:
    key = f"{FINGERPRINT}.screen"
    if value is None:
        return forge.ScreenFit()
    if not isinstance(value, dict):
        raise _bad(key, "must be an object")
    unknown = sorted(set(value) - set(_SCREEN_KEYS))
    if unknown:
        raise _bad(f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(_SCREEN_KEYS)})")
    bounds = {name: _whole(value.get(k), f"{key}.{k}", 1, MAX_SCREEN) for k, name in _SCREEN_KEYS.items()}
    for side in ("Width", "Height"):
        low, high = bounds[f"min_{side.lower()}"], bounds[f"max_{side.lower()}"]
        if low is not None and high is not None and low > high:
            raise _bad(key, f"min{side} ({low}) is greater than max{side} ({high})")
    return forge.ScreenFit(
        bounds["min_width"], bounds["max_width"], bounds["min_height"], bounds["max_height"]
    )


def _legacy(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The legacy object's keys, each validated (types and values only; coherence is `wanted`'s)."""
    known = {"browsers", "devices", "locales", "operatingSystems", "httpVersion", "screen"}
    for key in raw:
        if key == "browserListQuery":
            raise _bad(f"{FINGERPRINT}.browserListQuery", "is not supported here; use browsers instead")
        if key not in known:
            raise _bad(f"{FINGERPRINT}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    http = raw.get("httpVersion")
    if http is not None:
        if http not in ("1", "2", 1, 2) or isinstance(http, bool):
            raise _bad(f"{FINGERPRINT}.httpVersion", 'must be "1" or "2"')
        if str(int(http)) == "1":
            raise _bad(
                f"{FINGERPRINT}.httpVersion",
                "1 is not supported here: Chromium speaks HTTP/2 to every server that offers it",
            )
    locales = _strings(raw.get("locales"), f"{FINGERPRINT}.locales")
    if len(locales) > MAX_LOCALES:
        raise _bad(f"{FINGERPRINT}.locales", f"at most {MAX_LOCALES}")
    return {
        "browsers": _strings(raw.get("browsers"), f"{FINGERPRINT}.browsers", BROWSERS),
        "devices": _strings(raw.get("devices"), f"{FINGERPRINT}.devices", DEVICES),
        "systems": _strings(raw.get("operatingSystems"), f"{FINGERPRINT}.operatingSystems", SYSTEMS),
        "locales": tuple(
            _locale(loc, f"{FINGERPRINT}.locales[{i}]") for i, loc in enumerate(dict.fromkeys(locales))
        ),
        "screen": _screen(raw.get("screen")),
    }


def wanted(applied: AppliedSpec) -> Wanted:
    """The fingerprint `applied` asks for; `InvalidRequest` naming the first key that cannot be."""
    raw = applied.fingerprint
    if raw is not None and not isinstance(raw, dict):
        raise _bad(FINGERPRINT, "must be an object")
    legacy = _legacy(raw or {})
    browsers = legacy["browsers"]
    if browsers and not set(browsers) & set(ENGINE_BROWSERS):
        raise _bad(
            f"{FINGERPRINT}.browsers",
            f"{', '.join(browsers)} is not supported here: sessions run Chromium, so only chrome and edge "
            "fingerprints are coherent",
        )
    systems, devices = legacy["systems"], legacy["devices"]
    if systems == ("ios",):
        raise _bad(
            f"{FINGERPRINT}.operatingSystems",
            "ios is not supported here: every iOS browser runs WebKit, and sessions run Chromium",
        )
    systems = tuple(s for s in systems if s != "ios")
    if "android" in systems and devices and "mobile" not in devices:
        raise _bad(f"{FINGERPRINT}.operatingSystems", 'android needs devices to include "mobile"')
    if applied.os is not None:
        systems, devices = _with_os(applied.os, systems, devices)
    if not devices:
        devices = ("mobile",) if systems and set(systems) <= {"android"} else ("desktop",)
    if not systems:
        systems = ("android",) if devices == ("mobile",) else DESKTOP_SYSTEMS
    if devices == ("desktop",):
        systems = tuple(s for s in systems if s != "android") or systems
    viewport = _viewport(applied)
    screen = legacy["screen"]
    asked_nothing = raw is None and applied.os is None
    if asked_nothing:
        # The default: a desktop at device scale 1, so rendering, screencasts and screenshots cost what
        # they did before fingerprints (a Retina mac renders four times the pixels).
        screen = forge.ScreenFit(scale_one=True)
    if applied.timezone is not None and applied.timezone not in _timezones():
        raise _bad("timezone", f"{applied.timezone!r} is not an IANA time zone")
    locales = legacy["locales"] or DEFAULT_LOCALES
    return Wanted(
        browsers=tuple(b for b in browsers if b in ENGINE_BROWSERS) or ("chrome",),
        systems=systems,
        devices=devices,
        locales=locales,
        screen=screen,
        viewport=viewport,
        timezone=applied.timezone or timezone_of(locales[0]),
        position=applied.position,
    )


def _with_os(
    os: str, systems: tuple[str, ...], devices: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if os == "tablet":
        raise _bad(
            "browserSettings.os",
            "tablet is not supported here: the fingerprint data (apify-fingerprint-datapoints) has no "
            "tablets",
        )
    system = OS_SYSTEM[os]
    if systems and system not in systems:
        raise _bad(
            "browserSettings.os",
            f"{os} contradicts {FINGERPRINT}.operatingSystems ({', '.join(systems)})",
        )
    device = "mobile" if os == "mobile" else "desktop"
    if devices and device not in devices:
        raise _bad("browserSettings.os", f"{os} contradicts {FINGERPRINT}.devices ({', '.join(devices)})")
    return (system,), (device,)


def _viewport(applied: AppliedSpec) -> tuple[int | None, int | None]:
    if applied.viewport is None:
        return None, None
    sides = []
    for side in ("width", "height"):
        value = getattr(applied.viewport, side)
        if value is not None and value > MAX_VIEWPORT:
            raise _bad(f"browserSettings.viewport.{side}", f"must be at most {MAX_VIEWPORT}")
        sides.append(value or None)  # 0: not set, as in CDP
    return sides[0], sides[1]


def check(applied: AppliedSpec) -> None:
    """`InvalidRequest` if the session's fingerprint settings cannot be honoured. Run before a browser is
    taken: it draws one sample to know the data has such a device (a few milliseconds)."""
    asked = wanted(applied)
    if applied.fingerprint is None and applied.os is None and applied.viewport is None:
        return  # the default always exists
    explicit = isinstance(applied.fingerprint, dict) and applied.fingerprint.get("screen")
    if explicit and not forge.any_screen_fits(asked.fit()):
        raise _bad(
            f"{FINGERPRINT}.screen",
            "no screen of the fingerprint data is within these bounds"
            + (" and large enough for the viewport" if applied.viewport else ""),
        )
    try:
        forge.draw(asked.browsers, asked.systems, asked.devices, forge.ScreenFit())
    except forge.Unsatisfiable as exc:
        raise _bad(
            FINGERPRINT if applied.fingerprint is not None else "browserSettings.os",
            f"no real-world fingerprint has {'/'.join(asked.browsers)} on {'/'.join(asked.systems)} "
            f"({'/'.join(asked.devices)})",
        ) from exc


# -- time zones -----------------------------------------------------------------------------------


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _country_zones() -> dict[str, str]:
    """Each country's first zone in the tz database's zone1970.tab (whose rows within a country put the
    most populous first where geography allows), preferring rows the country heads over rows it shares
    (DE: Europe/Berlin, not the Büsingen row headed by CH). Countries spanning several offsets get their
    first one, not always the most populous (AU: Australia/Lord_Howe): a proxy's geolocation is exact."""
    own: dict[str, str] = {}
    shared: dict[str, str] = {}
    for root in zoneinfo.TZPATH:
        path = Path(root) / "zone1970.tab"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#") and line.strip():
                codes, _coords, zone, *_ = line.split("\t")
                first, *others = codes.split(",")
                own.setdefault(first, zone)
                for code in others:
                    shared.setdefault(code, zone)
        break
    return shared | own


def timezone_of(locale: str) -> str | None:
    """The time zone a locale's region suggests (en-US: America/New_York), or None (no region)."""
    region = next((p for p in locale.split("-")[1:] if len(p) == 2 and p.isalpha()), None)
    return _country_zones().get(region.upper()) if region else None


# -- the fingerprint ------------------------------------------------------------------------------

_GREASE_CHARS = (" ", "(", ":", "-", ".", "/", ")", ";", "=", "?", "_")
_GREASE_VERSIONS = ("8", "99", "24")
_BRAND_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def brand_list(major: int, brand: str | None, full: dict[str, str] | None = None) -> list[dict[str, str]]:
    """navigator.userAgentData's brands as Chromium `major` orders them: its GREASE brand, "Chromium" and
    the product's brand (None: a plain Chromium), seeded by the major version. With `full` (brand → full
    version), the fullVersionList instead."""
    grease = f"Not{_GREASE_CHARS[major % 11]}A{_GREASE_CHARS[(major + 1) % 11]}Brand"
    grease_version = _GREASE_VERSIONS[major % 3]
    slots: list[tuple[str, str] | None] = [None, None, None]
    entries = ((grease, grease_version), ("Chromium", str(major)), (brand, str(major)))
    for (name, version), slot in zip(entries, _BRAND_ORDERS[major % 6], strict=True):
        if name is not None:
            if full is not None:
                version = full.get(name, f"{version}.0.0.0")
            slots[slot] = (name, version)
    return [{"brand": name, "version": version} for name, version in filter(None, slots)]


@dataclass(frozen=True)
class Screen:
    width: int
    height: int
    avail_width: int
    avail_height: int
    avail_left: int
    avail_top: int
    color_depth: int


@dataclass(frozen=True)
class Fingerprint:
    """Everything a session's targets report, and the CDP that makes them report it."""

    user_agent: str
    platform: str  # navigator.platform
    metadata: dict[str, Any]  # CDP UserAgentMetadata (navigator.userAgentData, Sec-CH-UA-*)
    languages: tuple[str, ...]
    locale: str
    timezone: str | None
    screen: Screen
    viewport: tuple[int, int]
    window: tuple[int, int]  # outer size
    scale: float
    mobile: bool
    touch_points: int
    hardware_concurrency: int | None
    device_memory: float | None
    webgl: tuple[str, str] | None  # unmasked vendor, renderer
    position: Position | None = None

    @property
    def user_agent_override(self) -> dict[str, Any]:
        return {
            "userAgent": self.user_agent,
            "acceptLanguage": ",".join(self.languages),  # Chromium adds the q-values
            "platform": self.platform,
            "userAgentMetadata": self.metadata,
        }

    def _common(self) -> list[tuple[str, dict[str, Any]]]:
        commands: list[tuple[str, dict[str, Any]]] = [
            ("Emulation.setUserAgentOverride", self.user_agent_override),
            ("Emulation.setLocaleOverride", {"locale": self.locale}),
        ]
        if self.timezone:
            commands.append(("Emulation.setTimezoneOverride", {"timezoneId": self.timezone}))
        commands.extend(self._concurrency())
        if self.touch_points:
            commands.append(
                ("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": self.touch_points})
            )
        if self.position is not None:
            commands.append(
                (
                    "Emulation.setGeolocationOverride",
                    {
                        "latitude": self.position.latitude,
                        "longitude": self.position.longitude,
                        "accuracy": self.position.accuracy,
                    },
                )
            )
        # Page.enable: without it the agent's script does not run in child frames.
        commands.append(("Page.enable", {}))
        commands.append(
            ("Page.addScriptToEvaluateOnNewDocument", {"source": self.page_script(), "runImmediately": True})
        )
        return commands

    def page_commands(self) -> list[tuple[str, dict[str, Any]]]:
        """For a tab or popup (its window's bounds are `window_bounds`, set on the browser session).

        A desktop's viewport is its window's, not an emulated size (width and height 0): Chromium's
        screencast of a page with an emulated size crops it to the screencast's maximum size instead of
        scaling it, which broke the live view and recordings. A phone needs the emulated size (its
        layout viewport); it is smaller than any screencast."""
        width, height = self.viewport if self.mobile else (0, 0)
        metrics = {
            "width": width,
            "height": height,
            "deviceScaleFactor": self.scale,
            "mobile": self.mobile,
            "screenWidth": self.screen.width,
            "screenHeight": self.screen.height,
        }
        return [("Emulation.setDeviceMetricsOverride", metrics), *self._common()]

    def frame_commands(self) -> list[tuple[str, dict[str, Any]]]:
        """For an out-of-process iframe: its own process needs the overrides too. The page's device
        metrics do not reach it, nor do its own (Chromium ignores them there): the script sets its screen
        and scale."""
        return self._common()

    def worker_commands(self) -> list[tuple[str, dict[str, Any]]]:
        commands: list[tuple[str, dict[str, Any]]] = [
            ("Network.setUserAgentOverride", self.user_agent_override)
        ]
        return commands + self._concurrency()

    def _concurrency(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.hardware_concurrency:
            return []
        params = {"hardwareConcurrency": self.hardware_concurrency}
        return [("Emulation.setHardwareConcurrencyOverride", params)]

    def window_bounds(self, chrome: int | None = None) -> dict[str, int]:
        """The window that gives the viewport: `chrome` px taller (what the window's frame takes; by
        default the fingerprint's own toolbar height)."""
        extra = self.window[1] - self.viewport[1] if chrome is None else chrome
        return {"width": self.viewport[0], "height": self.viewport[1] + extra}

    def _script_values(self, worker: bool) -> dict[str, Any]:
        values: dict[str, Any] = {
            "navigator": {"platform": self.platform, "deviceMemory": self.device_memory},
            "webgl": list(self.webgl) if self.webgl else None,
        }
        if worker:
            app_version = self.user_agent.removeprefix("Mozilla/")
            values["navigator"] |= {"userAgent": self.user_agent, "appVersion": app_version}
        else:
            s = self.screen
            values["screen"] = {
                "width": s.width,
                "height": s.height,
                "availWidth": s.avail_width,
                "availHeight": s.avail_height,
                "availLeft": s.avail_left,
                "availTop": s.avail_top,
                "colorDepth": s.color_depth,
                "pixelDepth": s.color_depth,
            }
            values["window"] = {"devicePixelRatio": self.scale}
        return values

    def page_script(self) -> str:
        return _SCRIPT.replace("__VALUES__", json.dumps(self._script_values(worker=False)))

    def worker_script(self) -> str:
        return _SCRIPT.replace("__VALUES__", json.dumps(self._script_values(worker=True)))


# What CDP cannot override, set on the prototypes as getters that still check their receiver (so
# `Navigator.prototype.platform` throws as it does natively), wrapped in proxies of the native functions
# whose toString() answers the native one's source.
_SCRIPT = """(() => {
  const values = __VALUES__;
  const scope = globalThis;
  const originals = new WeakMap();
  const nativeToString = Function.prototype.toString;
  const toString = new Proxy(nativeToString, {
    apply: (target, self, args) => Reflect.apply(target, originals.get(self) || self, args),
  });
  originals.set(toString, nativeToString);
  Object.defineProperty(Function.prototype, "toString", {
    value: toString, writable: true, configurable: true, enumerable: false,
  });
  const getters = (proto, wanted) => {
    if (!proto || !wanted) return;
    for (const [name, value] of Object.entries(wanted)) {
      const desc = Object.getOwnPropertyDescriptor(proto, name);
      if (value === null || value === undefined || !desc || !desc.get) continue;
      const get = new Proxy(desc.get, {
        apply: (target, self, args) => (Reflect.apply(target, self, args), value),
      });
      originals.set(get, desc.get);
      Object.defineProperty(proto, name, { ...desc, get });
    }
  };
  const nav = scope.WorkerNavigator && !scope.Navigator ? scope.WorkerNavigator : scope.Navigator;
  getters(nav && nav.prototype, values.navigator);
  getters(scope.Screen && scope.Screen.prototype, values.screen);
  getters(scope.Window && scope, values.window);
  for (const name of ["WebGLRenderingContext", "WebGL2RenderingContext"]) {
    const proto = values.webgl && scope[name] && scope[name].prototype;
    const desc = proto && Object.getOwnPropertyDescriptor(proto, "getParameter");
    if (!desc || typeof desc.value !== "function") continue;
    const value = new Proxy(desc.value, {
      apply: (target, self, args) => {
        const result = Reflect.apply(target, self, args);
        if (typeof result !== "string") return result;
        if (args[0] === 0x9245) return values.webgl[0];
        if (args[0] === 0x9246) return values.webgl[1];
        return result;
      },
    });
    originals.set(value, desc.value);
    Object.defineProperty(proto, "getParameter", { ...desc, value });
  }
})();"""


def engine_version(product: str) -> tuple[int, str]:
    """(major, full version) of `Browser.getVersion`'s product ("Chrome/156.0.8078.114")."""
    match = _VERSION.search(product)
    if match is None:
        raise LaunchFailed("cannot read the browser's version", product)
    return int(match.group(1)), ".".join(match.groups())


def _with_major(agent: str, major: int) -> str:
    agent = re.sub(r"Chrome/\d+(\.\d+)*", f"Chrome/{major}.0.0.0", agent)
    return re.sub(r"(Edg[A]?)/\d+(\.\d+)*", rf"\g<1>/{major}.0.0.0", agent)


def _full_with_major(version: str | None, major: int, fallback: str) -> str:
    parts = (version or "").split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return fallback
    return ".".join([str(major), *parts[1:]])


def _languages(locales: tuple[str, ...]) -> tuple[str, ...]:
    """Each locale followed by its bare language (de-DE, de), as Chrome's language settings list them."""
    out: list[str] = []
    for loc in locales:
        base = loc.split("-")[0]
        out.extend(x for x in (loc, base) if x not in out)
    return tuple(out)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def platform_of(agent: str) -> str:
    """The client-hints platform a user agent names (for the few samples whose data lacks it)."""
    for marker, platform in (("Android", "Android"), ("Windows", "Windows"), ("Mac OS X", "macOS")):
        if marker in agent:
            return platform
    return "Linux"


def build(sample: forge.Sample, asked: Wanted, product: str) -> Fingerprint:
    """The fingerprint `sample` gives on the engine `product` names, as `asked` wants it sized."""
    major, full = engine_version(product)
    agent = _with_major(sample.user_agent, major)
    data = sample.values.get("userAgentData") or {}
    edge = "Edg" in agent
    brand = "Microsoft Edge" if edge else "Google Chrome"
    entries = [e for e in data.get("fullVersionList") or [] if isinstance(e, dict)]
    listed = {e.get("brand"): e.get("version") for e in entries}
    brand_full = _full_with_major(listed.get(brand), major, full) if edge else full
    mobile = asked.mobile
    metadata = {
        "brands": brand_list(major, brand),
        "fullVersionList": brand_list(major, brand, {"Chromium": full, brand: brand_full}),
        "fullVersion": brand_full,
        "platform": str(data.get("platform") or platform_of(agent)),
        "platformVersion": str(data.get("platformVersion") or ""),
        "architecture": str(data.get("architecture") or ""),
        "model": str(data.get("model") or ""),
        "mobile": mobile,
        "bitness": str(data.get("bitness") or ""),
        "wow64": False,
        "formFactors": ["Mobile"] if mobile else ["Desktop"],
    }
    s = sample.screen
    width, height = int(s["width"]), int(s["height"])
    screen = Screen(
        width,
        height,
        int(s.get("availWidth") or width),
        int(s.get("availHeight") or height),
        int(s.get("availLeft") or 0),
        int(s.get("availTop") or 0),
        int(s.get("colorDepth") or 24),
    )
    toolbar = TOOLBAR["mobile" if mobile else "desktop"]
    vw, vh = asked.viewport
    if mobile:
        viewport = (vw or screen.width, vh or max(100, screen.avail_height - toolbar))
    else:
        viewport = (vw or DEFAULT_VIEWPORT[0], vh or DEFAULT_VIEWPORT[1])
    card = sample.values.get("videoCard")
    webgl = None
    if isinstance(card, dict) and card.get("renderer"):
        webgl = (str(card.get("vendor") or ""), str(card["renderer"]))
    concurrency = _number(sample.values.get("hardwareConcurrency"))
    touch = _number(sample.values.get("maxTouchPoints"))
    return Fingerprint(
        user_agent=agent,
        platform=str(sample.values.get("platform") or ""),
        metadata=metadata,
        languages=_languages(asked.locales),
        locale=asked.locales[0],
        timezone=asked.timezone,
        screen=screen,
        viewport=viewport,
        window=(viewport[0], viewport[1] + toolbar),
        scale=float(s.get("devicePixelRatio") or 1),
        mobile=mobile,
        touch_points=int(touch) if touch and mobile else 0,
        hardware_concurrency=int(concurrency) if concurrency and concurrency >= 1 else None,
        device_memory=_number(sample.values.get("deviceMemory")),
        webgl=webgl,
        position=asked.position,
    )


def generate(asked: Wanted, product: str) -> Fingerprint:
    try:
        sample = forge.draw(asked.browsers, asked.systems, asked.devices, asked.fit())
    except forge.Unsatisfiable as exc:  # `check` drew one at create: only bad luck gets here
        raise LaunchFailed("no fingerprint could be drawn for the session", str(exc)) from exc
    return build(sample, asked, product)


# -- applying it ----------------------------------------------------------------------------------


class FingerprintHook:
    """Applies one fingerprint, drawn when the agent starts, to every target of the browser."""

    def __init__(self, asked: Wanted) -> None:
        self.asked = asked
        self.fingerprint: Fingerprint | None = None
        self._product = ""
        self._scripted: set[str] = set()  # workers whose script ran (some attach twice)
        self._scripts: dict[str, str] = {}  # the page script's identifier, by CDP session

    async def browser(self, cdp: CdpConnection) -> None:
        version = await cdp.send("Browser.getVersion")
        self._product = str(version.get("product", ""))
        self.fingerprint = generate(self.asked, self._product)

    async def retarget(self, asked: Wanted, targets: list[AttachedTarget]) -> None:
        """Draw a fingerprint for `asked` instead, and set it on `targets` (running ones: a pooled
        browser's open tab). Every override is replaced; the page script too, for new documents (the
        current one gets the new values over the old)."""
        self.asked = asked
        self.fingerprint = generate(asked, self._product)
        self._scripted.clear()
        await asyncio.gather(*(self.attached(target) for target in targets))

    async def attached(self, target: AttachedTarget) -> None:
        fp = self.fingerprint
        if fp is None:
            return
        if target.type in ("page", "iframe"):
            commands = fp.page_commands() if target.type == "page" else fp.frame_commands()
            old = self._scripts.get(target.session_id)
            if old is not None:
                commands.insert(0, ("Page.removeScriptToEvaluateOnNewDocument", {"identifier": old}))
            window = [self._window(target, fp)] if target.type == "page" else []
            results = await _all(target, commands, *window)
            added = results.get("Page.addScriptToEvaluateOnNewDocument")
            if isinstance(added, dict) and "identifier" in added:
                self._scripts[target.session_id] = str(added["identifier"])
        elif target.type in WORKERS:
            commands = fp.worker_commands()
            target_id = str(target.info.get("targetId", ""))
            if target_id not in self._scripted:
                self._scripted.add(target_id)
                commands.append(("Runtime.evaluate", {"expression": fp.worker_script(), "silent": True}))
            await _all(target, commands)

    async def _window(self, target: AttachedTarget, fp: Fingerprint) -> None:
        """Size the tab's window so that its viewport is the fingerprint's. Headless Chromium's frame
        takes 87 px of a window (the TOOLBAR), more while an infobar shows (a first tab's, 143): a tab
        that already runs is measured after the resize and its window corrected."""
        found = await target.cdp.send("Browser.getWindowForTarget", {"targetId": target.info.get("targetId")})
        window = found["windowId"]
        bounds = {"windowState": "normal", **fp.window_bounds()}
        await target.cdp.send("Browser.setWindowBounds", {"windowId": window, "bounds": bounds})
        if target.waiting or fp.mobile:
            return  # not started: no document to measure yet; a phone's viewport is emulated
        seen = await target.send(
            "Runtime.evaluate",
            {"expression": "[outerHeight - innerHeight, innerHeight]", "returnByValue": True},
        )
        chrome, inner = seen.get("result", {}).get("value") or (None, None)
        if isinstance(chrome, int) and inner != fp.viewport[1] and 0 <= chrome < 400:
            bounds = {"windowState": "normal", **fp.window_bounds(chrome)}
            await target.cdp.send("Browser.setWindowBounds", {"windowId": window, "bounds": bounds})


async def _all(
    target: AttachedTarget, commands: list[tuple[str, dict[str, Any]]], *more: Awaitable[None]
) -> dict[str, Any]:
    """Send every command at once (Chromium runs a session's commands in order); log what failed, and
    return each command's answer (or exception) by method."""
    results = await asyncio.gather(
        *(target.send(method, params) for method, params in commands), *more, return_exceptions=True
    )
    names = [method for method, _ in commands] + ["Browser.setWindowBounds"] * len(more)
    failed = [f"{name}: {r}" for name, r in zip(names, results, strict=True) if isinstance(r, BaseException)]
    if failed:
        # A target that closed meanwhile fails everything it was sent (debug); anything else is a defect.
        gone = (
            "connection closed" in str(results) or "No target" in str(results) or "not found" in str(results)
        )
        (log.debug if gone else log.warning)("fingerprint on a %s target: %s", target.type, "; ".join(failed))
    return dict(zip(names, results, strict=True))
