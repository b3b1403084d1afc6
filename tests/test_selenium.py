"""Selenium against the WebDriver endpoint (`seleniumRemoteUrl`), with the official Python bindings: the
session's own browser, driven by a chromedriver whose CDP passes the gateway; sessions made by the API
and by a new-session command; Playwright on the same session at once; uploads both ways; bad input."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    InvalidSessionIdException,
    SessionNotCreatedException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.client_config import ClientConfig
from selenium.webdriver.remote.file_detector import LocalFileDetector
from selenium.webdriver.remote.remote_connection import RemoteConnection

from tests.conftest import Server, wait_for


def connect(url: str, headers: dict[str, str], options: Options | None = None) -> webdriver.Remote:
    """A Remote driver whose every command carries `headers` (docs/selenium.md)."""
    config = ClientConfig(remote_server_addr=url, extra_headers=headers, timeout=60)
    return webdriver.Remote(
        command_executor=RemoteConnection(client_config=config), options=options or Options()
    )


def create(server: Server, **body: Any) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as http:
        response = http.post("/v1/sessions", json={"browserSettings": {"recordSession": False}, **body})
        assert response.status_code == 201, response.text
        return dict(response.json())


def status(server: Server, session_id: str) -> str:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
        return str(http.get(f"/v1/sessions/{session_id}").json()["status"])


def release(server: Server, session_id: str) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
        http.post(f"/v1/sessions/{session_id}", json={"status": "REQUEST_RELEASE"})


@contextlib.contextmanager
def driving(server: Server, **body: Any) -> Iterator[tuple[dict[str, Any], webdriver.Remote]]:
    session = create(server, **body)
    driver = connect(session["seleniumRemoteUrl"], {"x-bb-signing-key": session["signingKey"]})
    try:
        yield session, driver
    finally:
        with contextlib.suppress(WebDriverException):
            driver.quit()
        release(server, session["id"])


def test_the_commands_of_a_test_suite(server: Server, site: str) -> None:
    with driving(server) as (session, driver):
        assert driver.session_id == session["id"]  # one id for both (docs/selenium.md)
        driver.get(f"{site}/index.html")
        assert driver.title == "Museum of Local Art"
        heading = driver.find_element(By.TAG_NAME, "h1")
        assert heading.text == "Museum of Local Art"
        driver.find_element(By.LINK_TEXT, "Tickets").click()
        wait_for(lambda: driver.current_url.endswith("/tickets.html"))
        assert driver.execute_script("return 6 * 7") == 42
        assert driver.get_screenshot_as_png().startswith(b"\x89PNG")
        driver.execute_script("document.body.innerHTML = '<input id=q><iframe id=f></iframe>'")
        box = driver.find_element(By.ID, "q")
        box.send_keys("hello")
        assert box.get_attribute("value") == "hello"
        frame = driver.find_element(By.ID, "f")
        driver.execute_script("arguments[0].srcdoc = '<p id=inner>framed</p>'", frame)
        wait_for(
            lambda: driver.execute_script(
                "return !!document.getElementById('f').contentDocument.getElementById('inner')"
            )
        )
        driver.switch_to.frame(frame)
        assert driver.find_element(By.ID, "inner").text == "framed"
        driver.switch_to.default_content()
        driver.execute_script("setTimeout(() => alert('hi'), 0)")
        alert = wait_for(lambda: _alert(driver))
        assert alert.text == "hi"
        alert.accept()
        first = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(f"{site}/upload.html")
        assert driver.title == "Upload" and len(driver.window_handles) == 2
        driver.switch_to.window(first)
        assert driver.title != "Upload"


def _alert(driver: webdriver.Remote) -> Any:
    with contextlib.suppress(WebDriverException):
        alert = driver.switch_to.alert
        _ = alert.text
        return alert
    return None


def test_quit_ends_the_session_and_keep_alive_does_not(server: Server, site: str) -> None:
    session = create(server)
    driver = connect(session["seleniumRemoteUrl"], {"x-bb-signing-key": session["signingKey"]})
    driver.get(f"{site}/index.html")
    driver.quit()
    assert wait_for(lambda: status(server, session["id"]) == "COMPLETED")
    kept = create(server, keepAlive=True)
    try:
        driver = connect(kept["seleniumRemoteUrl"], {"x-bb-signing-key": kept["signingKey"]})
        driver.get(f"{site}/index.html")
        driver.quit()
        assert status(server, kept["id"]) == "RUNNING"
        again = connect(kept["seleniumRemoteUrl"], {"x-bb-signing-key": kept["signingKey"]})
        assert again.title == "Museum of Local Art"  # the same browser, the page it was left on
        again.quit()
        assert status(server, kept["id"]) == "RUNNING"
    finally:
        release(server, kept["id"])


def test_an_api_key_alone_creates_the_session(server: Server, site: str) -> None:
    options = Options()
    options.set_capability("bb:options", {"userMetadata": {"suite": "selenium"}, "keepAlive": False})
    driver = connect(f"{server.url}/webdriver", {"x-bb-api-key": server.api_key}, options)
    try:
        driver.get(f"{site}/index.html")
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
            row = http.get(f"/v1/sessions/{driver.session_id}").json()
        assert row["status"] == "RUNNING" and row["userMetadata"] == {"suite": "selenium"}
    finally:
        driver.quit()
    assert wait_for(lambda: status(server, driver.session_id) == "COMPLETED")


def test_an_api_key_and_a_session_id_header(server: Server, site: str) -> None:
    session = create(server)
    try:
        driver = connect(
            session["seleniumRemoteUrl"], {"x-bb-api-key": server.api_key, "session-id": session["id"]}
        )
        driver.get(f"{site}/index.html")
        assert driver.session_id == session["id"] and driver.title == "Museum of Local Art"
        driver.quit()
    finally:
        release(server, session["id"])


def test_playwright_and_selenium_share_one_session(server: Server, site: str, playwright: Any) -> None:
    with driving(server, browserSettings={"recordSession": False}, keepAlive=False) as (session, driver):
        browser = playwright.chromium.connect_over_cdp(session["connectUrl"])
        try:
            page = browser.contexts[0].pages[0]
            driver.get(f"{site}/index.html")
            wait_for(lambda: page.title() == "Museum of Local Art")
            page.evaluate("document.title = 'set by playwright'")
            assert driver.title == "set by playwright"
        finally:
            browser.close()
        assert status(server, session["id"]) == "RUNNING"  # the WebDriver session still counts
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
            logs = http.get(f"/v1/sessions/{session['id']}/logs").json()
        methods = {entry.get("method") for entry in logs}
        assert "Page.navigate" in methods or "Runtime.callFunctionOn" in methods, sorted(map(str, methods))[
            :40
        ]


def test_files_uploaded_by_the_api_and_by_selenium(server: Server, site: str, tmp_path: Any) -> None:
    with driving(server) as (session, driver):
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as http:
            sent = http.post(
                f"/v1/sessions/{session['id']}/uploads", files={"file": ("by-api.txt", b"from the API")}
            )
            assert sent.status_code == 200, sent.text
        driver.get(f"{site}/upload.html")
        driver.find_element(By.ID, "file").send_keys("/tmp/.uploads/by-api.txt")
        wait_for(lambda: driver.find_element(By.ID, "out").text == "by-api.txt:from the API")
        local = tmp_path / "by-selenium.txt"
        local.write_text("from Selenium")
        driver.file_detector = LocalFileDetector()
        driver.get(f"{site}/upload.html")
        driver.find_element(By.ID, "file").send_keys(str(local))
        wait_for(lambda: driver.find_element(By.ID, "out").text == "by-selenium.txt:from Selenium")


def raw(
    server: Server, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return http.request(method, f"/webdriver{path}", headers=headers, content=body)


def w3c(response: httpx.Response) -> str:
    value = response.json()["value"]
    assert set(value) == {"error", "message", "stacktrace"}, value
    return str(value["error"])


def test_bad_requests_get_w3c_errors(server: Server) -> None:
    session = create(server)
    signed = {"x-bb-signing-key": session["signingKey"], "Content-Type": "application/json"}
    try:
        assert raw(server, "POST", "/session", {}, b"{}").status_code == 401
        response = raw(server, "POST", "/session", signed, b"{not json")
        assert response.status_code == 400 and w3c(response) == "invalid argument"
        response = raw(
            server,
            "POST",
            "/session",
            signed,
            b'{"capabilities": {"alwaysMatch": {"browserName": "firefox"}}}',
        )
        assert response.status_code == 500 and w3c(response) == "session not created"
        for caps in (
            {"goog:chromeOptions": {"binary": "/bin/sh"}},
            {"goog:chromeOptions": {"debuggerAddress": "127.0.0.1:9222"}},
            {"proxy": {"proxyType": "manual", "httpProxy": "10.0.0.1:3128"}},
            {"bogus": 1},
        ):
            body = json.dumps({"capabilities": {"alwaysMatch": caps}}).encode()
            response = raw(server, "POST", "/session", signed, body)
            assert response.status_code == 400 and w3c(response) == "invalid argument", (caps, response.text)
        response = raw(
            server, "POST", "/session", signed, b'{"capabilities": {"alwaysMatch": {"webSocketUrl": true}}}'
        )
        assert response.status_code == 500 and "BiDi" in response.json()["value"]["message"]
        response = raw(server, "GET", f"/session/{session['id']}/url", signed)
        assert response.status_code == 404 and w3c(response) == "invalid session id"  # none open yet
        response = raw(server, "GET", "/nothing/here", signed)
        assert response.status_code == 404 and w3c(response) == "unknown command"
        other = create(server)
        try:
            response = raw(server, "GET", f"/session/{other['id']}/url", signed)
            assert response.status_code == 404 and w3c(response) == "invalid session id"
        finally:
            release(server, other["id"])
    finally:
        release(server, session["id"])
    response = raw(server, "GET", f"/session/{session['id']}/url", signed)
    assert response.status_code == 404 and w3c(response) == "invalid session id"  # ended


def test_se_file_refuses_what_extension_uploads_refuse(server: Server) -> None:
    with driving(server) as (session, driver):
        signed = {"x-bb-signing-key": session["signingKey"], "Content-Type": "application/json"}

        def send(data: bytes) -> httpx.Response:
            body = json.dumps({"file": base64.b64encode(data).decode()}).encode()
            return raw(server, "POST", f"/session/{session['id']}/se/file", signed, body)

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("../escape.txt", "x")
        response = send(out.getvalue())
        assert response.status_code == 400 and w3c(response) == "invalid argument"
        assert "'..'" in response.json()["value"]["message"] or ".." in response.json()["value"]["message"]
        response = send(b"not a zip")
        assert response.status_code == 400 and w3c(response) == "invalid argument"
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("bomb.txt", b"\0" * (64 * 1024 * 1024))
        response = send(out.getvalue())
        assert response.status_code == 400 and "bomb" in response.json()["value"]["message"]
        assert driver.title == ""  # the WebDriver session is still fine


def test_one_projects_key_never_reaches_another_projects_session(server: Server) -> None:
    session = create(server)
    try:
        _project, other_key = server.new_project("selenium-other")
        with pytest.raises(InvalidSessionIdException):
            connect(session["seleniumRemoteUrl"], {"x-bb-api-key": other_key, "session-id": session["id"]})
        # Nor by the path of a command, with no WebDriver session open or with one (opened with the
        # session's own project's key, which the endpoint then remembers).
        driver = connect(
            session["seleniumRemoteUrl"], {"x-bb-api-key": server.api_key, "session-id": session["id"]}
        )
        try:
            response = raw(server, "GET", f"/session/{session['id']}/url", {"x-bb-api-key": other_key})
            assert response.status_code == 404 and w3c(response) == "invalid session id"
        finally:
            driver.quit()
    finally:
        release(server, session["id"])


def test_a_second_new_session_is_refused_while_one_is_open(server: Server) -> None:
    with driving(server) as (session, _driver):
        with pytest.raises(SessionNotCreatedException):
            connect(session["seleniumRemoteUrl"], {"x-bb-signing-key": session["signingKey"]})


def test_what_selenium_sends_meets_the_cdp_policy(server: Server, site: str) -> None:
    """chromedriver's CDP passes the gateway: a file: URL, by WebDriver or by goog/cdp/execute, is refused."""
    with driving(server) as (_session, driver):
        driver.get(f"{site}/index.html")
        with pytest.raises(WebDriverException):
            driver.get("file:///etc/passwd")
        assert "root:" not in driver.page_source
        driver.command_executor.add_command("cdp", "POST", "/session/$sessionId/goog/cdp/execute")
        with pytest.raises(WebDriverException, match="browserfleet"):
            driver.execute("cdp", {"cmd": "Page.navigate", "params": {"url": "file:///etc/passwd"}})
        with pytest.raises(WebDriverException, match="browserfleet"):
            driver.execute("cdp", {"cmd": "Target.exposeDevToolsProtocol", "params": {"targetId": "x"}})
        title = driver.execute("cdp", {"cmd": "Runtime.evaluate", "params": {"expression": "document.title"}})
        assert title["value"]["result"]["value"] == "Museum of Local Art"


def test_no_chromedriver_outlives_its_session(server: Server, site: str) -> None:
    import psutil

    def drivers() -> set[int]:
        return {
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if any("chromedriver" in part for part in (p.info.get("cmdline") or [])[:12])
        }

    before = drivers()
    with driving(server) as (_session, driver):
        driver.get(f"{site}/index.html")
        assert drivers() - before
    assert wait_for(lambda: not (drivers() - before))


def test_node_selenium_webdriver(server: Server, site: str) -> None:
    import shutil

    from test_node_clients import run_script

    node = shutil.which("node")
    assert node is not None, "node is not on PATH (make node-deps)"
    out = run_script(node, "selenium_webdriver.mjs", server, site)
    assert out == {
        "sameId": True,
        "title": "Museum of Local Art",
        "heading": "Museum of Local Art",
        "answer": 42,
        "png": "PNG",
        "status": "COMPLETED",
    }


def test_status_answers_as_a_grid_does(server: Server) -> None:
    response = raw(server, "GET", "/status", {"x-bb-api-key": server.api_key})
    assert response.status_code == 200 and response.json()["value"]["ready"] is True
    response = raw(server, "GET", "/status", {})
    assert response.status_code == 401 and w3c(response) == "unknown error"
    # Through Selenium's own connection, as a tool that probes the remote end does.
    config = ClientConfig(remote_server_addr=f"{server.url}/webdriver", extra_headers=server.headers)
    connection = RemoteConnection(client_config=config)
    connection.add_command("status", "GET", "/status")
    assert connection.execute("status", {})["value"]["ready"] is True


def test_a_selenium_sessions_downloads_are_stored(server: Server, site: str) -> None:
    with driving(server) as (session, driver):
        driver.get(f"{site}/download.html")
        driver.find_element(By.ID, "dl").click()

        def stored() -> list[dict[str, Any]]:
            with server.http(server.api_key) as http:
                listing = http.get("/v1/downloads", params={"sessionId": session["id"]}).json()
            return list(listing["downloads"])

        found = wait_for(stored)
        assert [d["filename"] for d in found] == ["report.txt"]  # type: ignore[union-attr]


def _processes_mentioning(marker: str) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in proc.info.get("cmdline") or []):
                found.append(proc.pid)
    return found


def test_a_command_path_never_smuggles_a_request_to_chromedriver(server: Server) -> None:
    """CR LF in a command's path (percent-encoded) must not end the request line to chromedriver: else a
    client writes a second request of its own, e.g. a new chromedriver session whose capabilities (its
    own browser binary and arguments, no CDP policy) were never reduced to the allow-list."""
    marker = "--bf-review-smuggled"
    smuggled = {
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/lib/chromium/chromium",
                    "args": ["--headless", "--no-sandbox", marker],
                },
            }
        }
    }
    with driving(server) as (session, driver):
        signed = {"x-bb-signing-key": session["signingKey"], "Content-Type": "application/json"}
        head = "x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\nPOST /session"
        encoded = head.replace("\r", "%0D").replace("\n", "%0A").replace(" ", "%20")
        # The route's pattern (`.*`) stops at a line break in the path; the query is not matched by it.
        response = raw(
            server,
            "POST",
            f"?enableProxy=true/session/{session['id']}/{encoded}",
            signed,
            json.dumps(smuggled).encode(),
        )
        deadline = time.monotonic() + 10
        while not (launched := _processes_mentioning(marker)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not launched, f"chromedriver launched a browser of the client's: {launched}"
        assert response.status_code in (400, 404), response.text
        assert driver.title == ""  # the WebDriver session is still fine


def test_chromedriver_s_own_session_id_never_reaches_the_client(server: Server) -> None:
    """The WebDriver session id a client sees is the Browserbase session's (docs/selenium.md): the
    driver's own id, which chromedriver puts in some error messages, is not passed on."""
    import re

    with driving(server) as (session, _driver):
        signed = {"x-bb-signing-key": session["signingKey"]}
        response = raw(server, "GET", f"/session/{session['id']}/no/such/command", signed)
        assert response.status_code == 404 and w3c(response) == "unknown command"
        assert not re.search(r"\b[0-9a-f]{32}\b", response.text), response.text[:300]


def test_se_cdp_is_the_sessions_connect_url(server: Server) -> None:
    """Selenium's DevTools features connect to `se:cdp`: the session's connectUrl, through the gateway."""
    from websockets.sync.client import connect as ws_connect

    with driving(server) as (session, driver):
        assert driver.capabilities["se:cdp"] == session["connectUrl"]
        assert driver.capabilities["se:cdpVersion"].split(".")[0].isdigit()
        assert "debuggerAddress" not in driver.capabilities["goog:chromeOptions"]  # the server's own
        with ws_connect(driver.capabilities["se:cdp"]) as cdp:
            cdp.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
            assert json.loads(cdp.recv(timeout=30))["result"]["product"].startswith("Chrome/")
            cdp.send(
                json.dumps({"id": 2, "method": "Target.exposeDevToolsProtocol", "params": {"targetId": "x"}})
            )
            assert "browserfleet" in json.loads(cdp.recv(timeout=30))["error"]["message"]


def test_a_session_made_by_a_failed_new_session_is_released(server: Server) -> None:
    def running() -> set[str]:
        with server.http(server.api_key) as http:
            return {s["id"] for s in http.get("/v1/sessions", params={"status": "RUNNING"}).json()}

    before = running()
    body = json.dumps({"capabilities": {"alwaysMatch": {"pageLoadStrategy": "sideways"}}}).encode()
    headers = {"x-bb-api-key": server.api_key, "Content-Type": "application/json"}
    response = raw(server, "POST", "/session", headers, body)
    assert response.status_code == 400 and w3c(response) == "invalid argument"  # chromedriver's answer
    assert wait_for(lambda: running() <= before)
