"""The gateway's CDP policy: a session's client cannot reach the host's files through its browser.

The first half is the policy's specification: a pure matrix of what is refused, rewritten and passed
(no Chromium). The second half checks the same against a real browser through the server.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import Server, session_browser, wait_for
from playwright.sync_api import Error as PlaywrightError

from browserfleet.gateway.policy import DOMAINS, METHODS, REFUSED, Policy, Unanswerable, web_url

DOWNLOADS = PurePosixPath("/srv/bf/profiles/p1/downloads")
UPLOADS = PurePosixPath("/srv/bf/sessions/s1/uploads")
POLICY = Policy(DOWNLOADS, UPLOADS)


def sent(message: dict[str, Any] | str, policy: Policy = POLICY) -> tuple[str, dict[str, Any]]:
    """("pass" | "rewritten" | "refused", what Chromium gets)."""
    payload = message.encode() if isinstance(message, str) else json.dumps(message).encode()
    out = policy.apply(payload)
    if out is None:
        return "pass", json.loads(payload)
    got = json.loads(out)
    verdict = "refused" if got["method"].startswith("browserfleet: ") else "rewritten"
    return verdict, got


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("", True),
        ("about:blank", True),
        ("https://example.com/a", True),
        ("HTTP://127.0.0.1:1/", True),
        ("data:text/html,hi", True),
        ("file:///etc/passwd", False),
        ("FILE:///etc/passwd", False),
        ("  \tfile:///etc/passwd", False),
        ("fi\nle:///etc/passwd", False),
        ("view-source:file:///etc/passwd", False),
        ("view-source:https://example.com", True),
        ("filesystem:file:///x", False),
        ("/etc/passwd", False),
        ("chrome://settings", False),
        ("devtools://devtools/bundled/inspector.html", False),
        ("chrome-extension://abc/x.html", False),
    ],
)
def test_only_web_urls_pass(url: str, allowed: bool) -> None:
    assert web_url(url) is allowed


# -- methods: the allow-list and its exceptions ----------------------------------------------------

# Every method refused whatever its parameters, and why (the reason is in the answer's message).
REFUSED_METHODS = [
    ("Extensions.loadUnpacked", {"path": "/etc"}),  # loads any directory of the host as an extension
    ("PWA.install", {"manifestId": "x"}),  # installs from and launches with host files
    ("PWA.launchFilesInApp", {"manifestId": "x", "files": ["/etc/hostname"]}),
    ("Tethering.bind", {"port": 22}),  # binds ports
    ("Cast.enable", {}),  # discovers sinks on the host's network
    ("Cast.startDesktopMirroring", {"sinkName": "x"}),
    ("DeviceAccess.enable", {}),  # the host's Bluetooth/USB devices
    ("DeviceAccess.selectPrompt", {"id": "1", "deviceId": "2"}),
    ("SystemInfo.getInfo", {}),  # command line, GPU and machine
    ("SystemInfo.getProcessInfo", {}),  # the browser's processes
    ("Browser.getBrowserCommandLine", {}),  # host paths (profile, data dir)
    ("Browser.getHistograms", {}),
    ("Browser.getHistogram", {"name": "x"}),
    ("Browser.crash", {}),  # may leave a core dump on the host
    ("Browser.crashGpuProcess", {}),
    ("Memory.getBrowserSamplingProfile", {}),  # module paths and load addresses
    ("Memory.getSamplingProfile", {}),
    ("Memory.getAllTimeSamplingProfile", {}),
    ("Memory.startSampling", {}),
    ("Memory.stopSampling", {}),
    ("Target.exposeDevToolsProtocol", {"targetId": "T"}),  # a page with CDP would bypass the gateway
    ("Target.openDevTools", {"targetId": "T"}),  # so would a DevTools window
    # Not in the allow-list: unknown domains, and unlisted methods of the process-level domains.
    ("Foo.bar", {}),
    ("NewDomain.enable", {}),
    ("Browser.someNewMethod", {}),
    ("Target.someNewMethod", {}),
    ("Tracing.someNewMethod", {}),
    ("browserfleet: fake", {}),
    ("", {}),
]


@pytest.mark.parametrize("method, params", REFUSED_METHODS)
def test_refused_methods(method: str, params: dict[str, Any]) -> None:
    verdict, got = sent({"id": 7, "method": method, "params": params, "sessionId": "S1"})
    assert verdict == "refused"
    assert got == {"id": 7, "method": got["method"], "params": {}, "sessionId": "S1"}
    assert got["method"].startswith(f"browserfleet: {method}: ")


def test_every_refusal_listed_is_in_the_matrix() -> None:
    tested = {m for m, _ in REFUSED_METHODS} | {m.split(".")[0] + ".*" for m, _ in REFUSED_METHODS}
    assert set(REFUSED) <= tested


# What Playwright, Puppeteer, Stagehand, chromedriver and the DevTools frontend send, among others.
PASSED = [
    ("Browser.getVersion", {}),
    ("Browser.close", {}),
    ("Browser.setPermission", {"permission": {"name": "geolocation"}, "setting": "granted"}),
    ("Browser.grantPermissions", {"permissions": ["geolocation"]}),
    ("Browser.getWindowForTarget", {}),
    ("Browser.setWindowBounds", {"windowId": 1, "bounds": {"width": 800}}),
    ("Browser.setDownloadBehavior", {"behavior": "deny"}),
    ("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}),
    ("Target.setDiscoverTargets", {"discover": True}),
    ("Target.attachToTarget", {"targetId": "T", "flatten": True}),
    ("Target.attachToBrowserTarget", {}),
    ("Target.createBrowserContext", {"disposeOnDetach": True, "proxyServer": "http://proxy:3128"}),
    ("Target.createTarget", {"url": "about:blank", "browserContextId": "C"}),
    ("Target.createTarget", {}),
    ("Target.getTargets", {}),
    ("Target.getTargetInfo", {}),
    ("Target.closeTarget", {"targetId": "T"}),
    ("Target.disposeBrowserContext", {"browserContextId": "C"}),
    ("Target.getDevToolsTarget", {"targetId": "T"}),
    ("Page.navigate", {"url": "https://example.com/"}),
    ("Page.navigate", {"url": "javascript:void 0"}),
    ("Page.enable", {}),
    ("Page.crash", {}),  # the session's own renderer
    ("Page.addScriptToEvaluateOnNewDocument", {"source": "1", "worldName": "w"}),
    ("Page.createIsolatedWorld", {"frameId": "F", "grantUniveralAccess": True}),  # Playwright's utility world
    ("Page.printToPDF", {"transferMode": "ReturnAsStream"}),
    ("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}),
    ("Page.captureSnapshot", {}),
    ("Page.startScreencast", {"format": "jpeg"}),
    ("Page.setInterceptFileChooserDialog", {"enabled": True}),
    ("Page.getResourceContent", {"frameId": "F", "url": "file:///etc/hostname"}),  # only loaded resources
    ("Page.setDownloadBehavior", {"behavior": "default"}),
    ("Runtime.evaluate", {"expression": "fetch('file:///etc/passwd')"}),  # JS, not CDP: the page's sandbox
    ("Runtime.callFunctionOn", {"functionDeclaration": "x => x", "arguments": [{"value": {"a": [1]}}]}),
    ("Runtime.runIfWaitingForDebugger", {}),
    ("Runtime.addBinding", {"name": "b"}),
    ("Emulation.setUserAgentOverride", {"userAgent": "x"}),
    (
        "Emulation.setDeviceMetricsOverride",
        {"width": 1, "height": 1, "deviceScaleFactor": 1, "mobile": False},
    ),
    ("Network.enable", {}),
    ("Network.setExtraHTTPHeaders", {"headers": {"a": "b"}}),
    ("Network.loadNetworkResource", {"url": "https://example.com/", "frameId": "F", "options": {}}),
    ("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}),
    ("Fetch.fulfillRequest", {"requestId": "1", "responseCode": 200, "body": ""}),
    ("Fetch.continueRequest", {"requestId": "1"}),
    ("Fetch.continueRequest", {"requestId": "1", "url": "https://example.com/other"}),
    ("Input.dispatchMouseEvent", {"type": "mousePressed", "x": 1, "y": 1}),
    (
        "Input.dispatchDragEvent",
        {"type": "dragEnter", "x": 1, "y": 1, "data": {"items": [], "dragOperationsMask": 1}},
    ),
    ("DOM.setFileInputFiles", {"files": [str(UPLOADS / "a.txt")], "nodeId": 1}),
    ("DOM.setFileInputFiles", {"files": [], "nodeId": 1}),
    ("DOM.getFileInfo", {"objectId": "o"}),
    ("Storage.getCookies", {}),
    ("Security.setIgnoreCertificateErrors", {"ignore": True}),
    ("Tracing.start", {"transferMode": "ReturnAsStream", "traceConfig": {"includedCategories": ["x"]}}),
    ("Tracing.start", {"categories": "-*,devtools.timeline", "transferMode": "ReportEvents"}),
    ("Tracing.end", {}),
    ("IO.read", {"handle": "h"}),
    ("IO.close", {"handle": "h"}),
    ("Extensions.getExtensions", {}),
    ("Memory.getDOMCounters", {}),
    ("SystemInfo.getFeatureState", {"featureState": "x"}),
    ("Overlay.setShowFPSCounter", {"show": True}),
    ("CSS.enable", {}),
    ("Debugger.enable", {}),
    ("Profiler.start", {}),
    ("HeapProfiler.takeHeapSnapshot", {}),
    ("Audits.enable", {}),
    ("Log.enable", {}),
    ("Inspector.enable", {}),
    ("ServiceWorker.enable", {}),
    ("Animation.enable", {}),
    ("Accessibility.getFullAXTree", {}),
    ("DOMSnapshot.captureSnapshot", {"computedStyles": []}),
    ("WebAuthn.enable", {}),
    ("Schema.getDomains", {}),
    ("Console.enable", {}),
]


@pytest.mark.parametrize("method, params", PASSED)
def test_passed_methods(method: str, params: dict[str, Any]) -> None:
    message = {"id": 3, "method": method, "params": params, "sessionId": "S"}
    assert sent(message) == ("pass", message)


def test_every_allowed_domain_and_method_passes() -> None:
    for method in [f"{domain}.enable" for domain in sorted(DOMAINS)] + sorted(METHODS):
        if method in ("Target.sendMessageToTarget", "Target.setRemoteLocations"):
            continue  # one needs a message to carry, the other is rewritten: see below
        assert POLICY.apply(json.dumps({"id": 1, "method": method}).encode()) is None, method


# -- parameters: URLs, files, downloads, tracing -----------------------------------------------------


@pytest.mark.parametrize(
    "method, params",
    [
        ("Page.navigate", {"url": "file:///etc/passwd"}),
        ("Page.navigate", {"url": " FILE:///"}),
        ("Page.navigate", {"url": "chrome://settings"}),
        ("Page.navigate", {"url": 5}),
        ("Target.createTarget", {"url": "view-source:file:///etc/passwd"}),
        ("Target.createTarget", {"url": "devtools://devtools/bundled/inspector.html"}),
        ("Network.loadNetworkResource", {"url": "file:///etc/passwd", "frameId": "F", "options": {}}),
        ("Fetch.continueRequest", {"requestId": "1", "url": "file:///etc/hostname"}),
        ("Tracing.start", {"perfettoConfig": "AAAA"}),  # raw Perfetto: any data source, any output
        ("Tracing.start", {"tracingBackend": "system"}),
        ("DOM.setFileInputFiles", {"files": ["/etc/passwd"], "nodeId": 1}),
        ("DOM.setFileInputFiles", {"files": [str(UPLOADS / ".." / "logs" / "cdp.jsonl")], "nodeId": 1}),
        ("DOM.setFileInputFiles", {"files": ["/tmp/.uploads/../../etc/passwd"], "nodeId": 1}),
        ("DOM.setFileInputFiles", {"files": [str(UPLOADS)], "nodeId": 1}),  # the directory itself
        ("DOM.setFileInputFiles", {"files": [str(UPLOADS) + "-other/a"], "nodeId": 1}),
        ("DOM.setFileInputFiles", {"files": ["a.txt"], "nodeId": 1}),  # relative: the browser's cwd
        ("DOM.setFileInputFiles", {"files": [str(UPLOADS / "a\x00/../../x")], "nodeId": 1}),
        ("DOM.setFileInputFiles", {"files": [5], "nodeId": 1}),
        ("DOM.setFileInputFiles", {"files": "/etc/passwd", "nodeId": 1}),
        ("Page.handleFileChooser", {"action": "accept", "files": ["/etc/passwd"]}),
        (
            "Input.dispatchDragEvent",
            {"type": "drop", "x": 1, "y": 1, "data": {"items": [], "files": ["/etc/x"]}},
        ),
    ],
)
def test_refused_parameters(method: str, params: dict[str, Any]) -> None:
    verdict, got = sent({"id": 9, "method": method, "params": params})
    assert verdict == "refused" and got["method"].startswith(f"browserfleet: {method}: "), got
    assert "/srv/bf" not in got["method"]  # reasons never show the host's paths


@pytest.mark.parametrize(
    "files, expected",
    [
        (["/tmp/.uploads/a.txt"], [str(UPLOADS / "a.txt")]),  # Browserbase's documented path
        (
            [str(UPLOADS / "sub" / ".." / "a.txt")],
            [str(UPLOADS / "a.txt")],
        ),  # the path checked is the one sent
        ([str(UPLOADS) + "//a.txt"], [str(UPLOADS / "a.txt")]),
        (
            ["/tmp/.uploads/d/b.txt", str(UPLOADS / "c.txt")],
            [str(UPLOADS / "d" / "b.txt"), str(UPLOADS / "c.txt")],
        ),
    ],
)
def test_upload_paths_are_rewritten(files: list[str], expected: list[str]) -> None:
    verdict, got = sent({"id": 1, "method": "DOM.setFileInputFiles", "params": {"files": files, "nodeId": 3}})
    assert verdict == "rewritten" and got["params"] == {"files": expected, "nodeId": 3}
    drag = {"type": "drop", "x": 1, "y": 2, "data": {"items": [], "files": files, "dragOperationsMask": 1}}
    verdict, got = sent({"id": 2, "method": "Input.dispatchDragEvent", "params": drag})
    assert verdict == "rewritten" and got["params"] == {**drag, "data": {**drag["data"], "files": expected}}


def test_the_alias_is_left_alone_where_the_browser_sees_uploads_at_it() -> None:
    inside = Policy(PurePosixPath("/tmp/.downloads"), PurePosixPath("/tmp/.uploads"))
    message = {"id": 1, "method": "DOM.setFileInputFiles", "params": {"files": ["/tmp/.uploads/a.txt"]}}
    assert sent(message, inside) == ("pass", message)
    for escape in ("/tmp/.uploads/../../etc/passwd", "/tmp/.uploads", "/tmp/.uploadsx/a"):
        escaping = {"id": 1, "method": "DOM.setFileInputFiles", "params": {"files": [escape]}}
        assert sent(escaping, inside)[0] == "refused"


@pytest.mark.parametrize(
    "method, params",
    [
        ("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": "/"}),
        ("Browser.setDownloadBehavior", {"behavior": "allowAndName", "eventsEnabled": True}),
        ("Browser.setDownloadBehavior", {"behavior": "deny", "downloadPath": "/etc"}),
        ("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": "relative/dir"}),
    ],
)
def test_download_paths_are_rewritten(method: str, params: dict[str, Any]) -> None:
    """Wherever the client asks, downloads land in the session's own directory."""
    verdict, got = sent({"id": 4, "method": method, "params": params, "sessionId": "S"})
    assert verdict == "rewritten"
    assert got == {
        "id": 4,
        "method": method,
        "params": {**params, "downloadPath": str(DOWNLOADS)},
        "sessionId": "S",
    }


def test_remote_debugging_locations_are_emptied() -> None:
    """The DevTools frontend asks for localhost:9229 (Node) at start; the browser must not connect out."""
    locations = {"locations": [{"host": "localhost", "port": 9229}]}
    verdict, got = sent({"id": 4, "method": "Target.setRemoteLocations", "params": locations})
    assert verdict == "rewritten" and got["params"] == {"locations": []}
    none = {"id": 4, "method": "Target.setRemoteLocations", "params": {"locations": []}}
    assert sent(none) == ("pass", none)


# -- strict JSON: what Chromium runs is what was checked ---------------------------------------------

UNANSWERABLE = {
    "vertical tab escape": r'{"id":1,"method":"Target.createTarget","params":{"url":"file:///etc/hostname\v"}}',
    "hex escape": r'{"id":1,"method":"Browser.getVersion","params":{"a":"\x41"}}',
    "raw control character": '{"id":1,"method":"Browser.getVersion","params":{"a":"\x01"}}',
    "raw newline in a string": '{"id":1,"method":"Browser.getVersion","params":{"a":"\n"}}',
    "NaN": '{"id":1,"method":"Browser.getVersion","params":{"a":NaN}}',
    "Infinity": '{"id":1,"method":"Browser.getVersion","params":{"a":Infinity}}',
    "-Infinity": '{"id":1,"method":"Browser.getVersion","params":{"a":-Infinity}}',
    "overflowing number": '{"id":1,"method":"Browser.getVersion","params":{"a":1e400}}',
    "huge integer": '{"id":1,"method":"Browser.getVersion","params":{"a":' + "9" * 5000 + "}}",
    "duplicate method": '{"id":1,"method":"Browser.getBrowserCommandLine","method":"Browser.getVersion"}',
    "duplicate id": '{"id":1,"id":2,"method":"Browser.getVersion"}',
    "nested duplicate": '{"id":1,"method":"Page.navigate","params":{"url":"https://a/","url":"file:///"}}',
    "comment": '{"id":1,/*x*/"method":"Browser.getVersion"}',
    "single quotes": "{'id':1,'method':'Browser.getVersion'}",
    "trailing comma": '{"id":1,"method":"Browser.getVersion",}',
    "trailing data": '{"id":1,"method":"Browser.getVersion"} {"id":2,"method":"Browser.crash"}',
    "not an object": '[{"id":1,"method":"Browser.getVersion"}]',
    "a string": '"Browser.getVersion"',
    "no id": '{"method":"Browser.getVersion"}',
    "float id": '{"id":1.0,"method":"Browser.getVersion"}',  # Chromium would take it as 1
    "boolean id": '{"id":true,"method":"Browser.getVersion"}',
    "string id": '{"id":"1","method":"Browser.getVersion"}',
    "id over int32": '{"id":2147483648,"method":"Browser.getVersion"}',
    "byte order mark": '\ufeff{"id":1,"method":"Browser.getVersion"}',
    "10,000 deep": '{"id":1,"method":"Browser.getVersion","params":{"a":' + "[" * 10000 + "]" * 10000 + "}}",
    "empty": "",
}


@pytest.mark.parametrize("name", UNANSWERABLE)
def test_messages_that_do_not_parse_strictly_cannot_go_on(name: str) -> None:
    with pytest.raises(Unanswerable):
        POLICY.apply(UNANSWERABLE[name].encode())


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id":1,"method":"Browser.getVersion","params":{"a":"\xff"}}',
        b'{"id":1,"method":"Browser.getVersion","params":{"a":"\xc0\xaf"}}',  # an overlong "/"
        b'{"id":1,"method":"Browser.getVersion","params":{"a":"\xed\xa0\x80"}}',  # an encoded surrogate
        '{"id":1,"method":"Browser.getVersion"}'.encode("utf-16"),
        '{"id":1,"method":"Browser.getVersion"}'.encode("utf-32-le"),
    ],
)
def test_invalid_utf8_cannot_go_on(payload: bytes) -> None:
    with pytest.raises(Unanswerable):
        POLICY.apply(payload)


REFUSED_WHOLE = {
    "lone high surrogate": r'{"id":1,"method":"Browser.getVersion","params":{"a":"\ud800"}}',
    "lone low surrogate": r'{"id":1,"method":"Browser.getVersion","params":{"a":"x\udfff"}}',
    "surrogate in a key": r'{"id":1,"method":"Browser.getVersion","params":{"\ud800":1}}',
    "surrogate in the method": r'{"id":1,"method":"Page.navigate\ud800","params":{"url":"file:///"}}',
    "400 deep": '{"id":1,"method":"Browser.getVersion","params":{"a":' + "[" * 400 + "]" * 400 + "}}",
    "unknown top-level key": '{"id":1,"method":"Browser.getVersion","extra":1}',
    "params not an object": '{"id":1,"method":"Browser.getBrowserCommandLine","params":[]}',
    "method not a string": '{"id":1,"method":["Browser.getVersion"]}',
    "no method": '{"id":1}',
    "escaped method name": r'{"id":1,"method":"Target.create\u0054arget","params":{"url":"file:///etc/hostname"}}',
    "escaped URL": r'{"id":1,"method":"Target.createTarget","params":{"url":"fil\u0065:///etc/hostname"}}',
}


@pytest.mark.parametrize("name", REFUSED_WHOLE)
def test_messages_chromium_would_read_differently_are_refused(name: str) -> None:
    verdict, got = sent(REFUSED_WHOLE[name])
    assert verdict == "refused" and got["id"] == 1, got


def test_a_bad_session_id_is_refused_on_the_browser_session() -> None:
    for session in (r'"S\ud800"', "5", "null"):
        verdict, got = sent('{"id":1,"method":"Browser.getVersion","sessionId":' + session + "}")
        assert verdict == "refused" and "sessionId" not in got


def test_valid_unicode_passes_as_it_was_sent() -> None:
    for text in (r'"\ud83d\ude00"', '"\U0001f600"', r'"\u00e9\n\t\\\/\""', '"é"'):
        payload = '{"id":1,"method":"Runtime.evaluate","params":{"expression":' + text + "}}"
        assert POLICY.apply(payload.encode()) is None, text
    deep = '{"id":1,"method":"Runtime.evaluate","params":{"a":' + "[" * 290 + "]" * 290 + "}}"
    assert POLICY.apply(deep.encode()) is None


# -- messages inside messages --------------------------------------------------------------------------


def inner(message: dict[str, Any] | str, **outer: Any) -> dict[str, Any]:
    text = message if isinstance(message, str) else json.dumps(message)
    return {"id": 50, "method": "Target.sendMessageToTarget", "params": {"message": text, **outer}}


def test_a_nested_command_is_checked_and_answered_by_its_target() -> None:
    navigate = {"id": 7, "method": "Page.navigate", "params": {"url": "file:///etc/hostname"}}
    verdict, got = sent(inner(navigate, sessionId="T1"))
    assert verdict == "rewritten" and got["params"]["sessionId"] == "T1"
    nested = json.loads(got["params"]["message"])
    assert nested["id"] == 7 and nested["method"].startswith("browserfleet: Page.navigate: ")
    # Twice nested, and rewritten rather than refused.
    download = {
        "id": 8,
        "method": "Page.setDownloadBehavior",
        "params": {"behavior": "allow", "downloadPath": "/"},
    }
    verdict, got = sent(inner(inner(download)))
    assert verdict == "rewritten"
    twice = json.loads(json.loads(got["params"]["message"])["params"]["message"])
    assert twice["params"]["downloadPath"] == str(DOWNLOADS)


def test_harmless_nested_commands_pass_unchanged() -> None:
    message = inner({"id": 7, "method": "Runtime.evaluate", "params": {"expression": "1"}}, targetId="T")
    assert sent(message) == ("pass", message)


@pytest.mark.parametrize(
    "nested",
    [
        r'{"id":7,"method":"Page.navigate","params":{"url":"file:///etc/hostname\v"}}',
        '{"id":7,"method":"Page.navigate","method":"Runtime.evaluate"}',
        '{"method":"Page.navigate","params":{"url":"file:///"}}',
        "not json",
    ],
)
def test_nested_messages_that_cannot_be_checked_refuse_the_outer_one(nested: str) -> None:
    verdict, got = sent(inner(nested))
    assert verdict == "refused" and got["id"] == 50
    assert got["method"].startswith("browserfleet: Target.sendMessageToTarget: ")


def test_nesting_is_bounded_and_the_deepest_allowed_level_answers() -> None:
    verdict, got = sent(inner(inner(inner(inner({"id": 1, "method": "Browser.getVersion"})))))
    assert verdict == "rewritten"
    for _ in range(3):
        got = json.loads(got["params"]["message"])
    assert got["id"] == 50 and got["method"] == (
        "browserfleet: Target.sendMessageToTarget: messages nested too deep"
    )


def test_a_nested_message_must_be_a_string() -> None:
    message = {"id": 1, "method": "Target.sendMessageToTarget", "params": {"message": {"id": 2}}}
    assert sent(message)[0] == "refused"


# -- against a real browser ----------------------------------------------------------------------------


@pytest.fixture
def session_page(server: Server, playwright: Any) -> Any:
    session = server.sdk().sessions.create()
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    _, profile = session_browser(server, session.id)
    page = browser.contexts[0].pages[0]
    yield page, browser, profile, server.data_dir / "sessions" / session.id
    browser.close()


def test_host_files_cannot_be_opened(session_page: Any) -> None:
    page, browser, _, _ = session_page
    with pytest.raises(PlaywrightError, match=r"browserfleet: Page\.navigate"):
        page.goto("file:///etc/hostname")
    cdp = browser.new_browser_cdp_session()
    for url in ("file:///etc/passwd", "view-source:file:///etc/passwd", " FILE:///"):
        with pytest.raises(PlaywrightError, match=r"browserfleet: Target\.createTarget"):
            cdp.send("Target.createTarget", {"url": url})
    page_cdp = page.context.new_cdp_session(page)
    frame_id = page_cdp.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
    with pytest.raises(PlaywrightError, match=r"browserfleet: Network\.loadNetworkResource"):
        page_cdp.send(
            "Network.loadNetworkResource",
            {"url": "file:///etc/passwd", "frameId": frame_id, "options": {}},
        )
    with pytest.raises(PlaywrightError, match=r"browserfleet: Extensions\.loadUnpacked"):
        cdp.send("Extensions.loadUnpacked", {"path": "/etc"})
    # The session still works after refusals.
    assert page.evaluate("2 + 2") == 4


def test_pages_cannot_navigate_themselves_to_host_files(session_page: Any, site: str) -> None:
    """Renderer-initiated navigations to file: are Chromium's to refuse; check it does."""
    page, browser, _, _ = session_page
    page.goto(f"{site}/index.html")
    page.evaluate("window.open('file:///etc/hostname'); location.href = 'file:///etc/hostname'")
    page.wait_for_timeout(500)
    urls = [p.url for context in browser.contexts for p in context.pages]
    assert not [u for u in urls if u.startswith("file:")], urls


def test_file_inputs_take_only_the_sessions_uploads(server: Server, session_page: Any) -> None:
    page, _, profile, artifacts = session_page
    page.set_content("<input type=file id=f>")
    cdp = page.context.new_cdp_session(page)
    node = cdp.send(
        "DOM.querySelector", {"nodeId": cdp.send("DOM.getDocument")["root"]["nodeId"], "selector": "#f"}
    )
    escapes = (
        "/etc/passwd",
        str(artifacts / "uploads" / ".." / "logs" / "cdp.jsonl"),
        str(profile / "user-data" / "Local State"),
        "/tmp/.uploads/../../etc/passwd",
    )
    for path in escapes:
        with pytest.raises(PlaywrightError, match=r"browserfleet: DOM\.setFileInputFiles"):
            cdp.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [path]})
    # A file written straight into the kept uploads folder is not offered to the browser: only the
    # upload route does that. The one uploaded through the API is there, at Browserbase's path.
    server.sdk().sessions.uploads.create(artifacts.name, file=("notes.txt", b"mine"))
    cdp.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": ["/tmp/.uploads/notes.txt"]})
    assert page.evaluate("document.getElementById('f').files[0].name") == "notes.txt"
    assert page.evaluate("document.getElementById('f').files[0].text()") == "mine"


def test_download_path_is_always_the_sessions_own(session_page: Any, site: str, tmp_path: Path) -> None:
    page, browser, _, artifacts = session_page
    elsewhere = tmp_path / "chosen-by-client"
    cdp = browser.new_browser_cdp_session()
    cdp.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(elsewhere)})
    page.goto(f"{site}/download.html")
    page.click("#dl")

    def finished() -> list[str]:
        # Once complete, a download is moved out of the browser's profile into the session's artifacts.
        folder = artifacts / "downloads"
        return [p.read_text() for p in folder.iterdir()] if folder.exists() else []

    wait_for(lambda: finished() == ["secret-ish bytes\n"])
    assert not elsewhere.exists()


def raw_cdp(server: Server, session_id: str, messages: list[str]) -> list[dict[str, Any]]:
    """Send hand-written CDP text (escapes, duplicates) on a session's socket; the answers, in order."""
    import asyncio
    import json
    from concurrent.futures import ThreadPoolExecutor

    import websockets

    async def go() -> list[dict[str, Any]]:
        url = f"{server.ws_url}/?apiKey={server.api_key}&sessionId={session_id}"
        async with websockets.connect(url, compression=None, max_size=None) as ws:
            answers = []
            for message in messages:
                await ws.send(message)
                while True:
                    answer = json.loads(await ws.recv())
                    if "id" in answer:
                        answers.append(answer)
                        break
            return answers

    with ThreadPoolExecutor(1) as thread:  # the sync Playwright fixture may hold this thread's loop
        return thread.submit(asyncio.run, go()).result()


def test_escapes_do_not_slip_past(server: Server) -> None:
    session = server.sdk().sessions.create(keep_alive=True)
    try:
        answers = raw_cdp(
            server,
            session.id,
            [
                '{"id": 1, "method": "Target.create\\u0054arget", "params": {"url": "file:///etc/hostname"}}',
                '{"id": 2, "method": "SystemInfo.g\\u0065tInfo"}',
                '{"id": 3, "method": "Target.createTarget", "params": {"url": "fil\\u0065:///etc/hostname"}}',
                '{"id": 4, "method": "PWA.launchFilesInApp",'
                ' "params": {"manifestId": "x", "files": ["/etc/hostname"]}}',
                '{"id": 5, "method": "Browser.getVersion"}',
            ],
        )
        for answer in answers[:4]:
            assert "browserfleet" in answer["error"]["message"], answer
        assert answers[4]["result"]["product"].startswith("Chrome/")
    finally:
        server.sdk().sessions.update(session.id, status="REQUEST_RELEASE")


def test_drag_and_drop_cannot_carry_host_files(session_page: Any) -> None:
    page, _, _, _ = session_page
    cdp = page.context.new_cdp_session(page)
    drag = {
        "type": "drop",
        "x": 10,
        "y": 10,
        "data": {"items": [], "files": ["/etc/hostname"], "dragOperationsMask": 1},
    }
    with pytest.raises(PlaywrightError, match=r"browserfleet: Input\.dispatchDragEvent"):
        cdp.send("Input.dispatchDragEvent", drag)


def test_clients_are_told_when_the_session_ends(server: Server) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import websockets

    session = server.sdk().sessions.create(keep_alive=True)

    async def go() -> tuple[int | None, str | None]:
        async with websockets.connect(session.connect_url, compression=None, max_size=None) as ws:
            await ws.send('{"id": 1, "method": "Browser.getVersion"}')
            await ws.recv()
            await asyncio.to_thread(server.sdk().sessions.update, session.id, status="REQUEST_RELEASE")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            rcvd = closed.value.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, None)

    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(asyncio.run, go()).result() == (1001, "session ended")


def test_the_devtools_frontend_is_never_refused(
    server: Server, site: str, playwright: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Chromium's own DevTools, opened through the gateway, uses many domains: none of it is refused."""
    import os

    from conftest import RESOLVER_RULES

    bb = server.sdk()
    session = bb.sessions.create(keep_alive=True)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    viewer = playwright.chromium.launch(
        executable_path="/usr/lib/chromium/chromium",
        args=[RESOLVER_RULES.replace('"', "")],
        env={**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("devtools-viewer"))},
    )
    try:
        browser.contexts[0].pages[0].goto(f"{site}/index.html")
        page = viewer.new_page(viewport={"width": 1280, "height": 720})
        page.goto(bb.sessions.debug(session.id).pages[0].debugger_url)
        page.wait_for_timeout(3000)
        for panel in ("Console", "Sources", "Network", "Performance", "Memory", "Application", "Security"):
            page.keyboard.press("Control+Shift+P")
            page.keyboard.type(f"Show {panel}")
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)

        def frontend_entries() -> list[Any]:
            logs = bb.sessions.logs.list(session.id)
            methods = {log.method for log in logs}
            return list(logs) if {"CSS.enable", "Overlay.enable", "Debugger.enable"} <= methods else []

        logs = wait_for(frontend_entries)
        refused = [
            (log.method, log.response.result)
            for log in logs  # type: ignore[attr-defined]
            if log.response is not None and "browserfleet:" in json.dumps(log.response.result)
        ]
        assert refused == []
    finally:
        viewer.close()
        browser.close()
        bb.sessions.update(session.id, status="REQUEST_RELEASE")
