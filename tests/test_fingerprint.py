"""Fingerprints (browsers/fingerprint.py): what pages and workers of a session see, in every kind of target.

The browser tests open a session on the shared server and a page served here that reports what it sees:
its JavaScript values and, echoed by this file's HTTP server, the headers of its requests. The mapping
from a request to overrides is tested without Chromium below them.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browserfleet.browsers import fingerprint, forge
from browserfleet.browsers.spec import AppliedSpec, Position, Viewport
from browserfleet.errors import InvalidRequest
from tests.conftest import Server, wait_for

REPORT = """
async function report() {
  const d = navigator.userAgentData;
  const gl = (() => {
    const c = document.createElement("canvas").getContext("webgl");
    return c ? [c.getParameter(0x9245), c.getParameter(0x9246)] : null;
  })();
  return {
    ua: navigator.userAgent, platform: navigator.platform, webdriver: navigator.webdriver,
    brands: d && d.brands, uaPlatform: d && d.platform, mobile: d && d.mobile,
    high: d && await d.getHighEntropyValues(["platformVersion", "architecture", "fullVersionList", "model"]),
    langs: navigator.languages, tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
    locale: Intl.DateTimeFormat().resolvedOptions().locale,
    cores: navigator.hardwareConcurrency, memory: navigator.deviceMemory,
    screen: [screen.width, screen.height, screen.availWidth, screen.availHeight, screen.colorDepth],
    inner: [innerWidth, innerHeight], outer: [outerWidth, outerHeight], dpr: devicePixelRatio,
    touch: navigator.maxTouchPoints, gl,
    platformSource: Function.prototype.toString.call(
      Object.getOwnPropertyDescriptor(Navigator.prototype, "platform").get),
    headers: await (await fetch("/headers")).json(),
  };
}
function frameReport(host) {
  return new Promise((resolve) => {
    const frame = document.createElement("iframe");
    addEventListener("message", (e) => resolve(e.data), { once: true });
    frame.src = `http://${host}:${location.port}/frame.html`;
    document.body.appendChild(frame);
  });
}
function blankFrame() {
  const frame = document.createElement("iframe");
  document.body.appendChild(frame);
  const n = frame.contentWindow.navigator;
  return { ua: n.userAgent, platform: n.platform, langs: n.languages };
}
const workerReport = () => new Promise((resolve) => {
  new Worker("/worker.js").onmessage = (e) => resolve(e.data);
});
const sharedReport = () => new Promise((resolve) => {
  const w = new SharedWorker("/worker.js");
  w.port.onmessage = (e) => resolve(e.data);
  w.port.start();
});
async function serviceReport() {
  const reg = await navigator.serviceWorker.register("/worker.js");
  await navigator.serviceWorker.ready;
  return await new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (e) => resolve(e.data);
    reg.active.postMessage(0, [channel.port2]);
  });
}
"""
PAGE = f"<!doctype html><html><body><script>{REPORT}</script></body></html>"
FRAME = (
    f"<!doctype html><html><body><script>{REPORT}report().then((r) => parent.postMessage(r, '*'));</script>"
)
WORKER = """
async function report() {
  const d = navigator.userAgentData;
  return {
    ua: navigator.userAgent, platform: navigator.platform, webdriver: navigator.webdriver,
    brands: d && d.brands, uaPlatform: d && d.platform, mobile: d && d.mobile,
    high: d && await d.getHighEntropyValues(["platformVersion", "architecture", "fullVersionList", "model"]),
    langs: navigator.languages, tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
    cores: navigator.hardwareConcurrency, memory: navigator.deviceMemory,
    gl: (() => {
      const c = new OffscreenCanvas(8, 8).getContext("webgl");
      return c ? [c.getParameter(0x9245), c.getParameter(0x9246)] : null;
    })(),
    headers: await (await fetch("/headers")).json(),
  };
}
if (self.constructor.name === "SharedWorkerGlobalScope") {
  onconnect = async (e) => e.ports[0].postMessage(await report());
} else if (self.constructor.name === "ServiceWorkerGlobalScope") {
  self.addEventListener("install", () => self.skipWaiting());
  self.addEventListener("activate", (e) => e.waitUntil(clients.claim()));
  self.addEventListener("message", async (e) => e.ports[0].postMessage(await report()));
} else {
  report().then((r) => postMessage(r));
}
"""
FILES = {
    "/": ("text/html", PAGE),
    "/frame.html": ("text/html", FRAME),
    "/worker.js": ("application/javascript", WORKER),
}
# What every target of one session must report alike (pages and frames report more).
SHARED_KEYS = (
    "ua",
    "platform",
    "webdriver",
    "brands",
    "uaPlatform",
    "mobile",
    "langs",
    "tz",
    "cores",
    "memory",
)
SHARED_HEADERS = ("user-agent", "accept-language", "sec-ch-ua", "sec-ch-ua-platform", "sec-ch-ua-mobile")


class ReportHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/headers":
            body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
            kind = "application/json"
        elif self.path in FILES:
            kind, text = FILES[self.path]
            body = text.encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def report_site() -> Iterator[int]:
    """This file's site on 127.0.0.1 (also reached as localhost, another site); yields its port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ReportHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def create(server: Server, **settings: Any) -> dict[str, Any]:
    with server.http(server.api_key) as http:
        response = http.post("/v1/sessions", json={"browserSettings": settings} if settings else {})
    assert response.status_code == 201, response.text
    return dict(response.json())


def release(server: Server, session_id: str) -> None:
    with server.http(server.api_key) as http:
        http.post(f"/v1/sessions/{session_id}", json={"status": "REQUEST_RELEASE"})


def shared(report: dict[str, Any], worker: bool = False) -> dict[str, Any]:
    """What must be alike in every target. Workers have no navigator.webdriver, and Chromium sends their
    requests without the Sec-CH-UA headers (with or without an override): those only where present."""
    out = {k: report.get(k) for k in SHARED_KEYS if not (worker and k == "webdriver")}
    out["fullVersionList"] = (report.get("high") or {}).get("fullVersionList")
    headers = report["headers"]
    out["headers"] = {k: headers.get(k) for k in SHARED_HEADERS if not (worker and k.startswith("sec-ch"))}
    if worker:
        out["client hints"] = {k: v for k, v in headers.items() if k.startswith("sec-ch")}
    return out


def every_target(playwright: Any, session: dict[str, Any], port: int) -> dict[str, dict[str, Any]]:
    """The reports of the first tab, a new tab, a popup, a same-origin, a blank and a cross-site iframe,
    a dedicated, a shared and a service worker of one session."""
    browser = playwright.chromium.connect_over_cdp(session["connectUrl"])
    try:
        context = browser.contexts[0]
        page = context.pages[0]
        url = f"http://127.0.0.1:{port}/"
        page.goto(url)
        reports = {"first tab": page.evaluate("report()"), "version": browser.version}
        tab = context.new_page()
        tab.goto(url)
        reports["new tab"] = tab.evaluate("report()")
        with page.expect_popup() as opened:
            page.evaluate("window.open(location.href)")
        popup = opened.value
        popup.wait_for_load_state()
        reports["popup"] = popup.evaluate("report()")
        reports["iframe"] = page.evaluate("frameReport('127.0.0.1')")
        reports["cross-site iframe"] = page.evaluate("frameReport('localhost')")
        reports["blank iframe"] = page.evaluate("blankFrame()")
        reports["dedicated worker"] = page.evaluate("workerReport()")
        reports["shared worker"] = page.evaluate("sharedReport()")
        reports["service worker"] = page.evaluate("serviceReport()")
        return reports
    finally:
        browser.close()


def assert_coherent(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    first = reports["first tab"]
    expected = shared(first)
    for name in ("new tab", "popup", "iframe", "cross-site iframe"):
        assert shared(reports[name]) == expected, name
        assert reports[name]["screen"] == first["screen"] and reports[name]["dpr"] == first["dpr"], name
        assert reports[name]["gl"] == first["gl"], name
    for name in ("dedicated worker", "shared worker", "service worker"):
        seen = shared(reports[name], worker=True)
        hints = seen.pop("client hints")
        assert seen == {k: v for k, v in shared(first, worker=True).items() if k != "client hints"}, name
        assert all(first["headers"].get(k) == v for k, v in hints.items()), name
        # WebGL on an OffscreenCanvas: a dedicated worker has it; others may not (None).
        assert reports[name]["gl"] in ((first["gl"],) if name == "dedicated worker" else (first["gl"], None))
    blank = reports["blank iframe"]
    assert (blank["ua"], blank["platform"], blank["langs"]) == (
        first["ua"],
        first["platform"],
        first["langs"],
    )
    for name in ("first tab", "new tab", "popup"):
        inner, outer, screen = reports[name]["inner"], reports[name]["outer"], reports[name]["screen"]
        assert inner[0] <= outer[0] <= screen[0] and inner[1] < outer[1] <= screen[1], (name, inner, outer)
    return first


def assert_engine(first: dict[str, Any], version: str) -> None:
    """The fingerprint claims the engine that runs it, and never a headless one."""
    major = version.split(".")[0]
    assert f"Chrome/{major}.0.0.0" in first["ua"] and "Headless" not in first["ua"]
    assert first["webdriver"] is False
    names = [b["brand"] for b in first["brands"]]
    assert "Chromium" in names and not any("Headless" in n for n in names)
    assert {"brand": "Chromium", "version": version} in first["high"]["fullVersionList"]
    headers = first["headers"]
    assert headers["user-agent"] == first["ua"]
    assert f'"Chromium";v="{major}"' in headers["sec-ch-ua"] and "Headless" not in headers["sec-ch-ua"]
    assert headers["sec-ch-ua-platform"] == f'"{first["uaPlatform"]}"'
    assert "SwiftShader" not in json.dumps(first["gl"])
    assert first["platformSource"] == "function get platform() { [native code] }"


def pool_ready(server: Server, size: int = 2) -> None:
    """Until the shared server's pool is full (its browsers prepared with the default fingerprint), so
    that the next create takes a pooled browser and sets the session's own fingerprint over it."""
    wait_for(lambda: len(server.browser_pids()) >= size, timeout=60)
    time.sleep(2)  # the last one's agent starts after its launch


def test_a_session_asking_for_mac_sees_one_mac_in_every_target(
    server: Server, playwright: Any, report_site: int
) -> None:
    pool_ready(server)
    session = create(
        server,
        os="mac",
        viewport={"width": 1288, "height": 711},
        fingerprint={"locales": ["de-DE"], "browsers": ["chrome"], "httpVersion": "2"},
    )
    try:
        reports = every_target(playwright, session, report_site)
    finally:
        release(server, session["id"])
    first = assert_coherent(reports)
    assert_engine(first, reports["version"])
    assert "Macintosh; Intel Mac OS X" in first["ua"] and first["platform"] == "MacIntel"
    assert first["uaPlatform"] == "macOS" and first["mobile"] is False
    assert any(b["brand"] == "Google Chrome" for b in first["brands"])
    assert first["langs"] == ["de-DE", "de"] and first["locale"] == "de-DE"
    assert first["headers"]["accept-language"].startswith("de-DE,de;q=0.9")
    assert first["tz"] == "Europe/Berlin"
    for name in ("first tab", "new tab", "popup"):
        assert reports[name]["inner"] == [1288, 711], name
        assert reports[name]["outer"][0] == 1288 and 60 <= reports[name]["outer"][1] - 711 <= 160, name


def test_a_browser_launched_for_the_session_gets_it_too(
    make_server: Any, playwright: Any, report_site: int
) -> None:
    """No pool: the browser is launched for the create, and its agent starts with the session's own
    fingerprint (the other tests mostly get pooled browsers, prepared with the default one)."""
    server = make_server("fingerprint-cold", BROWSERFLEET_POOL_SIZE="0").start()
    session = create(server, os="linux", fingerprint={"locales": ["fr-FR"]})
    browser = playwright.chromium.connect_over_cdp(session["connectUrl"])
    try:
        page = browser.contexts[0].pages[0]
        page.goto(f"http://127.0.0.1:{report_site}/")
        first = page.evaluate("report()")
        tab = browser.contexts[0].new_page()
        tab.goto(f"http://127.0.0.1:{report_site}/")
        second = tab.evaluate("report()")
        worker = page.evaluate("workerReport()")
    finally:
        browser.close()
        release(server, session["id"])
    assert_engine(first, browser.version)
    assert "X11; Linux x86_64" in first["ua"] and first["uaPlatform"] == "Linux"
    assert first["langs"] == ["fr-FR", "fr"] and first["tz"] == "Europe/Paris"
    assert shared(second) == shared(first)
    assert shared(worker, worker=True)["ua"] == first["ua"]


def test_the_default_session_is_a_realistic_desktop(
    server: Server, playwright: Any, report_site: int
) -> None:
    pool_ready(server)
    session = create(server)
    try:
        reports = every_target(playwright, session, report_site)
    finally:
        release(server, session["id"])
    first = assert_coherent(reports)
    assert_engine(first, reports["version"])
    assert first["mobile"] is False and first["touch"] == 0 and first["dpr"] == 1
    assert first["uaPlatform"] in ("Windows", "macOS", "Linux")
    assert first["inner"] == list(fingerprint.DEFAULT_VIEWPORT)
    assert first["langs"] == ["en-US", "en"] and first["tz"] == "America/New_York"


def test_a_mobile_session_is_a_phone(server: Server, playwright: Any, report_site: int) -> None:
    session = create(server, os="mobile")
    browser = playwright.chromium.connect_over_cdp(session["connectUrl"])
    try:
        page = browser.contexts[0].pages[0]
        page.goto(f"http://127.0.0.1:{report_site}/")
        first = page.evaluate("report()")
        worker = page.evaluate("workerReport()")
    finally:
        browser.close()
        release(server, session["id"])
    assert "Android" in first["ua"] and "Mobile Safari" in first["ua"]
    assert first["uaPlatform"] == "Android" and first["mobile"] is True, first
    assert first["headers"]["sec-ch-ua-mobile"] == "?1"
    # A page without a viewport meta tag lays out 980 px wide on a phone, as on a real one; a drawn
    # device scale such as 2.625 makes Chromium round the window's width to 979-981 CSS px.
    assert first["touch"] > 0 and first["screen"][0] < 800 and abs(first["inner"][0] - 980) <= 1, first
    assert first["outer"][0] <= first["screen"][0] and first["outer"][1] <= first["screen"][1], first
    assert shared(worker, worker=True)["ua"] == first["ua"]
    assert shared(worker, worker=True)["uaPlatform"] == "Android"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"fingerprint": {"browsers": ["firefox"]}}, "browserSettings.fingerprint.browsers"),
        ({"fingerprint": {"browsers": ["netscape"]}}, "browserSettings.fingerprint.browsers"),
        ({"fingerprint": {"operatingSystems": ["ios"], "devices": ["mobile"]}}, "operatingSystems"),
        ({"fingerprint": {"httpVersion": 1}}, "browserSettings.fingerprint.httpVersion"),
        ({"fingerprint": {"httpVersion": "3"}}, "browserSettings.fingerprint.httpVersion"),
        ({"fingerprint": {"locales": ["not a locale"]}}, "browserSettings.fingerprint.locales[0]"),
        (
            {"fingerprint": {"screen": {"minWidth": 2000, "maxWidth": 1000}}},
            "browserSettings.fingerprint.screen",
        ),
        ({"fingerprint": {"screen": {"maxWidth": 100}}}, "browserSettings.fingerprint.screen"),
        ({"fingerprint": {"screen": {"maxWidth": 1.5}}}, "browserSettings.fingerprint.screen.maxWidth"),
        ({"fingerprint": {"browserListQuery": "last 2 versions"}}, "browserListQuery"),
        ({"fingerprint": {"colour": "blue"}}, "browserSettings.fingerprint.colour"),
        ({"fingerprint": "chrome"}, "browserSettings.fingerprint"),
        ({"os": "tablet"}, "browserSettings.os"),
        ({"os": "mac", "fingerprint": {"operatingSystems": ["windows"]}}, "browserSettings.os"),
        ({"viewport": {"width": 100000, "height": 700}}, "browserSettings.viewport.width"),
    ],
)
def test_a_fingerprint_that_cannot_be_is_a_400_naming_its_key(
    server: Server, settings: dict[str, Any], key: str
) -> None:
    with server.http(server.api_key) as http:
        response = http.post("/v1/sessions", json={"browserSettings": settings})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["statusCode"] == 400 and key in body["message"], body


def test_stagehand_python_floats_are_accepted(server: Server) -> None:
    """Stagehand-py camel-cases the legacy keys by hand and sends numbers as floats."""
    settings = {
        "fingerprint": {"screen": {"minWidth": 1024.0, "maxWidth": 2560.0}, "httpVersion": 2.0},
        "viewport": {"width": 1288, "height": 711},
    }
    with server.http(server.api_key) as http:
        response = http.post("/v1/sessions", json={"browserSettings": settings})
        assert response.status_code == 201, response.text
        http.post(f"/v1/sessions/{response.json()['id']}", json={"status": "REQUEST_RELEASE"})


def test_the_grease_brand_is_the_engines_own(playwright: Any, report_site: int) -> None:
    """brand_list reproduces Chromium's own GREASE brand and order for its version (a plain launch, no
    override), and the ones real Chrome releases sent."""
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{report_site}/")  # userAgentData needs a secure context
        brands = page.evaluate("navigator.userAgentData.brands")
        major = int(browser.version.split(".")[0])
    finally:
        browser.close()
    assert brands == fingerprint.brand_list(major, None)
    # Chrome 120 and 131 as they were sent (Sec-CH-UA of real releases).
    assert fingerprint.brand_list(120, "Google Chrome") == [
        {"brand": "Not_A Brand", "version": "8"},
        {"brand": "Chromium", "version": "120"},
        {"brand": "Google Chrome", "version": "120"},
    ]
    assert fingerprint.brand_list(131, "Google Chrome") == [
        {"brand": "Google Chrome", "version": "131"},
        {"brand": "Chromium", "version": "131"},
        {"brand": "Not_A Brand", "version": "24"},
    ]


# -- the pure mapping, without Chromium --------------------------------------------------------------

PRODUCT = "HeadlessChrome/156.0.8078.114"


def sample(agent: str, **values: Any) -> forge.Sample:
    screen = {"width": 1920, "height": 1080, "availWidth": 1920, "availHeight": 1040, "colorDepth": 24}
    return forge.Sample(agent, values, screen | values.pop("screen", {}))


WINDOWS_EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36 Edg/131.0.0.0"
)


def test_a_sample_is_rewritten_to_the_engines_version() -> None:
    data = {
        "platform": "Windows",
        "platformVersion": "19.0.0",
        "architecture": "x86",
        "bitness": "64",
        "fullVersionList": [{"brand": "Microsoft Edge", "version": "131.0.2903.86"}],
    }
    asked = fingerprint.wanted(AppliedSpec(fingerprint={"browsers": ["edge"], "locales": ["fr-FR"]}))
    fp = fingerprint.build(sample(WINDOWS_EDGE, userAgentData=data, platform="Win32"), asked, PRODUCT)
    assert fp.user_agent == WINDOWS_EDGE.replace("131.0.0.0", "156.0.0.0")
    assert fp.metadata["brands"] == fingerprint.brand_list(156, "Microsoft Edge")
    assert {"brand": "Microsoft Edge", "version": "156.0.2903.86"} in fp.metadata["fullVersionList"]
    assert {"brand": "Chromium", "version": "156.0.8078.114"} in fp.metadata["fullVersionList"]
    assert fp.metadata["platform"] == "Windows" and fp.metadata["mobile"] is False
    assert fp.languages == ("fr-FR", "fr") and fp.timezone == "Europe/Paris"
    commands = dict(fp.page_commands())
    override = commands["Emulation.setUserAgentOverride"]
    assert override["acceptLanguage"] == "fr-FR,fr" and override["platform"] == "Win32"
    metrics = commands["Emulation.setDeviceMetricsOverride"]
    # The viewport is the window's (an emulated size would crop screencasts): only screen and scale.
    assert (metrics["width"], metrics["height"], metrics["screenWidth"]) == (0, 0, 1920)
    assert commands["Emulation.setTimezoneOverride"] == {"timezoneId": "Europe/Paris"}
    assert "Win32" in commands["Page.addScriptToEvaluateOnNewDocument"]["source"]
    workers = dict(fp.worker_commands())
    assert workers["Network.setUserAgentOverride"] == override
    assert WINDOWS_EDGE.replace("131.0.0.0", "156.0.0.0") in fp.worker_script()
    assert fp.window_bounds() == {"width": 1280, "height": 720 + fingerprint.TOOLBAR["desktop"]}
    assert fp.window_bounds(143) == {"width": 1280, "height": 720 + 143}


def test_the_viewport_and_a_proxy_position_reach_the_overrides() -> None:
    applied = AppliedSpec(
        viewport=Viewport(1000, 0),  # 0: not set, as in CDP
        timezone="Asia/Tokyo",
        position=Position(35.68, 139.69, 50),
    )
    asked = fingerprint.wanted(applied)
    fp = fingerprint.build(sample(WINDOWS_EDGE), asked, PRODUCT)
    assert fp.viewport == (1000, fingerprint.DEFAULT_VIEWPORT[1]) and fp.timezone == "Asia/Tokyo"
    commands = dict(fp.page_commands())
    assert commands["Emulation.setGeolocationOverride"] == {
        "latitude": 35.68,
        "longitude": 139.69,
        "accuracy": 50,
    }
    assert commands["Emulation.setTimezoneOverride"] == {"timezoneId": "Asia/Tokyo"}
    with pytest.raises(InvalidRequest, match="timezone"):
        fingerprint.wanted(AppliedSpec(timezone="Mars/Olympus_Mons"))


def test_the_screen_holds_the_window() -> None:
    asked = fingerprint.wanted(AppliedSpec(viewport=Viewport(2500, 1500)))
    for _ in range(20):
        fp = fingerprint.generate(asked, PRODUCT)
        assert fp.screen.width >= 2500 and fp.screen.height >= 1500 + fingerprint.TOOLBAR["desktop"]
        assert fp.scale == 1  # nothing asked of the device: scale 1, as before fingerprints


def test_drawing_is_fast_and_follows_the_request() -> None:
    mac = fingerprint.wanted(AppliedSpec(os="mac"))
    phones = fingerprint.wanted(AppliedSpec(fingerprint={"devices": ["mobile"]}))
    desktops = fingerprint.wanted(AppliedSpec())
    # 400 draws: about 2 % of the data's mobile user agents are tablets', so a phone session that could
    # get one would here, nearly always.
    for _ in range(400):
        assert "Macintosh" in fingerprint.generate(mac, PRODUCT).user_agent
        phone = fingerprint.generate(phones, PRODUCT)
        assert "Android" in phone.user_agent and "Mobile Safari" in phone.user_agent, phone.user_agent
        assert phone.mobile and phone.touch_points > 0 and phone.metadata["platform"] == "Android"
        desktop = fingerprint.generate(desktops, PRODUCT)
        assert "Mobile" not in desktop.user_agent and "Android" not in desktop.user_agent
        assert desktop.metadata["platform"] in {"Windows", "macOS", "Linux"}, desktop.metadata


def test_a_sample_without_client_hints_gets_its_platform_from_the_user_agent() -> None:
    agent = (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Mobile Safari/537.36"
    )
    screen = {"width": 412, "height": 915, "devicePixelRatio": 2.625}
    sample = forge.Sample(agent, {"platform": "Linux armv81"}, screen)
    built = fingerprint.build(sample, fingerprint.wanted(AppliedSpec(os="mobile")), PRODUCT)
    assert built.metadata["platform"] == "Android" and built.mobile
    assert (
        fingerprint.platform_of(agent.replace("Linux; Android 10; K", "Windows NT 10.0; Win64; x64"))
        == "Windows"
    )


def test_locales_give_languages_and_time_zones() -> None:
    assert fingerprint.timezone_of("de-DE") == "Europe/Berlin"
    assert fingerprint.timezone_of("en-US") == "America/New_York"
    assert fingerprint.timezone_of("en") is None
    asked = fingerprint.wanted(AppliedSpec(fingerprint={"locales": ["EN-gb", "fr"]}))
    assert asked.locales == ("en-GB", "fr") and asked.timezone == "Europe/London"


def test_the_create_body_reaches_the_check() -> None:
    """A request the API would refuse (the server answers 400 with this message)."""
    with pytest.raises(InvalidRequest, match=r"browserSettings\.fingerprint\.devices: 'watch'"):
        fingerprint.check(AppliedSpec(fingerprint={"devices": ["watch"]}))


def test_empty_values_mean_the_default(server: Server) -> None:
    """Empty lists, an empty object and a zero side ask for nothing: the default, not a 400."""
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as http:
        for settings in ({"fingerprint": {"locales": []}}, {"fingerprint": {}}, {"viewport": {"width": 0}}):
            response = http.post("/v1/sessions", json={"browserSettings": settings})
            assert response.status_code == 201, (settings, response.text)
            http.post(f"/v1/sessions/{response.json()['id']}", json={"status": "REQUEST_RELEASE"})
