"""Contexts: `/v1/contexts` through the official SDK, and `browserSettings.context` on real Chromium. A
login on a page this test serves on 127.0.0.1 (an HttpOnly session cookie, a persistent cookie,
localStorage, IndexedDB) survives into the next session; a save killed midway keeps the last good
copy; the archive on disk is sealed; what a hostile browser plants in its profile stays out."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import re
import secrets
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import browserbase
import pytest
from conftest import Server, each_database, session_browser, wait_for

from browserfleet.artifacts import profile_archive, sealing
from browserfleet.store.models import BrowserContext

# -- the site: a login that leaves state of every kind -------------------------------------------

APP_JS = """
function idb(write) {
  return new Promise((resolve) => {
    const open = indexedDB.open("app", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("kv");
    open.onerror = () => resolve("error");
    open.onsuccess = () => {
      const tx = open.result.transaction("kv", write === undefined ? "readonly" : "readwrite");
      const store = tx.objectStore("kv");
      if (write === undefined) {
        const got = store.get("tag");
        got.onsuccess = () => resolve(got.result === undefined ? null : got.result);
      } else {
        store.put(write, "tag");
        tx.oncomplete = () => resolve(write);
      }
    };
  });
}
"""


class LoginSite(http.server.BaseHTTPRequestHandler):
    """`/login?tag=T` logs in: cookies `sid` (session, HttpOnly) and `remember` (a day), localStorage
    and IndexedDB `tag`; `/whoami` echoes the Cookie header; `/app` is a blank page of the origin."""

    def do_GET(self) -> None:
        url = urlparse(self.path)
        tag = parse_qs(url.query).get("tag", [""])[0]
        headers: list[tuple[str, str]] = []
        if url.path == "/login":
            headers = [
                ("Set-Cookie", f"sid=sid-{tag}; Path=/; HttpOnly"),
                ("Set-Cookie", f"remember=rem-{tag}; Path=/; Max-Age=86400"),
            ]
            body = (
                f"<title>logging in</title><script>{APP_JS}"
                f"localStorage.setItem('tag', 'ls-{tag}');"
                f"idb('idb-{tag}').then(() => {{ document.title = 'logged in'; }});</script>"
            )
        elif url.path == "/whoami":
            body = self.headers.get("Cookie", "")
        elif url.path == "/app":
            body = f"<title>app</title><script>{APP_JS}</script>"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if url.path == "/whoami" else "text/html")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def login_site() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoginSite)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# -- helpers -------------------------------------------------------------------------------------


def with_context(context_id: str, persist: bool) -> dict[str, Any]:
    return {"context": {"id": context_id, "persist": persist}}


def stored(server: Server, context_id: str) -> BrowserContext | None:
    row: BrowserContext | None = server.read_store(lambda store: store.resource(BrowserContext, context_id))
    return row


def archive_key(server: Server, context_id: str) -> str | None:
    row = stored(server, context_id)
    return None if row is None else row.archive_key


def log_in(server: Server, playwright: Any, site: str, context_id: str, tag: str) -> str:
    """A session persisting the context logs in as `tag` and its client leaves (ending it)."""
    session = server.sdk().sessions.create(browser_settings=with_context(context_id, True))
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/login?tag={tag}")
    page.wait_for_function("document.title === 'logged in'")
    browser.close()  # the last client leaves: the session ends, and its profile is saved
    # Ended, as the server sees it (a moment after the client's close); its save may still run.
    wait_for(lambda: server.sdk().sessions.retrieve(session.id).status == "COMPLETED")
    return session.id


def state(page: Any, site: str) -> dict[str, Any]:
    """What the site knows of the browser: the cookies it is sent, localStorage, IndexedDB."""
    page.goto(f"{site}/whoami")
    header = page.inner_text("body").strip()
    cookies = dict(part.split("=", 1) for part in header.split("; ")) if header else {}
    page.goto(f"{site}/app")
    return {
        "cookies": cookies,
        "local": page.evaluate("localStorage.getItem('tag')"),
        "idb": page.evaluate("idb()"),
    }


def state_in_new_session(server: Server, playwright: Any, site: str, context_id: str) -> dict[str, Any]:
    bb = server.sdk()
    session = bb.sessions.create(browser_settings=with_context(context_id, False))
    assert session.context_id == context_id
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    try:
        return state(browser.contexts[0].pages[0], site)
    finally:
        browser.close()
        bb.sessions.update(session.id, status="REQUEST_RELEASE")


def logged_in_as(tag: str) -> dict[str, Any]:
    return {
        "cookies": {"sid": f"sid-{tag}", "remember": f"rem-{tag}"},
        "local": f"ls-{tag}",
        "idb": f"idb-{tag}",
    }


NOTHING = {"cookies": {}, "local": None, "idb": None}


def opened_archive(server: Server, context_id: str) -> bytes:
    """The context's archive decrypted, with the key the server keeps in its store."""
    row = stored(server, context_id)
    assert row is not None and row.archive_key is not None
    secret = server.read_store(lambda store: store.secret("context-archives", lambda: ""))
    sealed = (server.data_dir / "blobs" / row.archive_key).read_bytes()
    return sealing.Sealer([sealing.derive_key(secret)]).open(sealed, context_id)


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {member.name: member for member in tar}


# -- the REST resource ---------------------------------------------------------------------------


@each_database()
def test_create_retrieve_update_delete_through_the_sdk(server: Server) -> None:
    bb = server.sdk()  # strict response validation
    created = bb.contexts.create()
    assert created.cipher_algorithm == "AES-256-CBC" and created.initialization_vector_size == 16
    assert created.upload_url.startswith("https://") and ".invalid/" in created.upload_url
    got = bb.contexts.retrieve(created.id)
    assert got.id == created.id and got.name is None
    assert got.project_id == bb.projects.list()[0].id
    with pytest.warns(DeprecationWarning):  # the SDK's word; it answers the same fields as create
        assert bb.contexts.update(created.id).id == created.id
    bb.contexts.delete(created.id)
    with pytest.raises(browserbase.NotFoundError):
        bb.contexts.retrieve(created.id)
    with pytest.raises(browserbase.NotFoundError):
        bb.contexts.delete(created.id)
    with pytest.raises(browserbase.NotFoundError), pytest.warns(DeprecationWarning):
        bb.contexts.update(created.id)
    with server.http(server.api_key) as http:
        assert http.get("/v1/contexts/not-a-context").status_code == 404
        response = http.put(
            f"/v1/contexts/{created.id}", content=b"", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 404 and response.json()["statusCode"] == 404


@each_database()
def test_names_are_trimmed_and_unique_per_project_case_insensitively(server: Server) -> None:
    bb = server.sdk()
    name = f"Work {secrets.token_hex(4)}"
    first = bb.contexts.create(name=f"  {name}\t")
    assert bb.contexts.retrieve(first.id).name == name
    with pytest.raises(browserbase.ConflictError) as clash:
        bb.contexts.create(name=name.upper())
    assert first.id in str(clash.value) and clash.value.response.headers["x-should-retry"] == "false"
    for bad in ("", "   ", "x" * 129):
        with pytest.raises(browserbase.BadRequestError, match="name"):
            bb.contexts.create(name=bad)
    assert bb.contexts.create(name="é" * 128).id  # characters, not bytes
    with server.http(server.api_key) as http:
        assert http.post("/v1/contexts", json={"name": 7}).status_code == 400
    # Another project may use the name; a deleted context frees it.
    _, other_key = server.new_project(f"contexts-names-{secrets.token_hex(3)}")
    assert server.sdk(other_key).contexts.create(name=name).id
    bb.contexts.delete(first.id)
    assert bb.contexts.create(name=name.lower()).id


@each_database()
def test_racing_creates_never_make_two_contexts_of_one_name(server: Server) -> None:
    name = f"race-{secrets.token_hex(4)}"
    with server.http(server.api_key) as http, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: http.post("/v1/contexts", json={"name": name}), range(6)))
    created = [a.json()["id"] for a in answers if a.status_code == 201]
    assert {a.status_code for a in answers} <= {201, 409}
    assert len(created) <= 1
    live = [c for c in created if stored(server, c) is not None]
    assert len(live) == len(created)


@each_database()
def test_another_projects_context_is_not_found(server: Server) -> None:
    _, other_key = server.new_project(f"contexts-outsider-{secrets.token_hex(3)}")
    theirs = server.sdk(other_key).contexts.create()
    bb = server.sdk()
    with pytest.raises(browserbase.NotFoundError):
        bb.contexts.retrieve(theirs.id)
    with pytest.raises(browserbase.NotFoundError), pytest.warns(DeprecationWarning):
        bb.contexts.update(theirs.id)
    with pytest.raises(browserbase.NotFoundError):
        bb.contexts.delete(theirs.id)
    for persist in (False, True):
        with pytest.raises(browserbase.NotFoundError, match=theirs.id):
            bb.sessions.create(browser_settings=with_context(theirs.id, persist))
    assert server.sdk(other_key).contexts.retrieve(theirs.id).id == theirs.id  # untouched
    row = stored(server, theirs.id)
    assert row is not None and row.persisting_session is None
    # projectId in a body must be the key's own.
    with pytest.raises(browserbase.NotFoundError):
        bb.contexts.create(project_id=row.project_id)


@each_database()
def test_unknown_or_deleted_contexts_are_404_at_create(server: Server) -> None:
    bb = server.sdk()
    for unknown in ("00000000-0000-4000-8000-000000000000", "no-such-context"):
        with pytest.raises(browserbase.NotFoundError, match="Context"):
            bb.sessions.create(browser_settings=with_context(unknown, True))
    deleted = bb.contexts.create()
    bb.contexts.delete(deleted.id)
    with pytest.raises(browserbase.NotFoundError):
        bb.sessions.create(browser_settings=with_context(deleted.id, False))


# -- one persisting session at a time ------------------------------------------------------------


@each_database()
def test_one_session_persists_a_context_while_others_read_it(server: Server) -> None:
    bb = server.sdk()
    context = bb.contexts.create()
    writer = bb.sessions.create(browser_settings=with_context(context.id, True), keep_alive=True)
    row = stored(server, context.id)
    assert row is not None and row.persisting_session == writer.id
    with pytest.raises(browserbase.ConflictError, match=writer.id) as refused:
        bb.sessions.create(browser_settings=with_context(context.id, True))
    assert "persist" in str(refused.value) and refused.value.response.headers["x-should-retry"] == "false"
    readers = [bb.sessions.create(browser_settings=with_context(context.id, False)) for _ in range(2)]
    assert all(r.status == "RUNNING" and r.context_id == context.id for r in readers)
    for session in (writer, *readers):
        bb.sessions.update(session.id, status="REQUEST_RELEASE")
    # Freed when the writer ends (a create right after waits for its save rather than refusing).
    again = bb.sessions.create(browser_settings=with_context(context.id, True))
    bb.sessions.update(again.id, status="REQUEST_RELEASE")
    wait_for(lambda: (r := stored(server, context.id)) is not None and r.persisting_session is None)


def test_concurrent_persisting_creates_one_wins(server: Server) -> None:
    bb = server.sdk()
    context = bb.contexts.create()
    with ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(
                lambda _: server.http(server.api_key).post(
                    "/v1/sessions", json={"browserSettings": with_context(context.id, True)}
                ),
                range(3),
            )
        )
    assert sorted(a.status_code for a in answers) == [201, 409, 409], [a.text for a in answers]
    winner = next(a.json()["id"] for a in answers if a.status_code == 201)
    assert all(winner in a.json()["message"] for a in answers if a.status_code == 409)
    bb.sessions.update(winner, status="REQUEST_RELEASE")


# -- the profile, through real sessions ----------------------------------------------------------


def test_a_login_persists_into_the_next_session(server: Server, playwright: Any, login_site: str) -> None:
    bb = server.sdk()
    context = bb.contexts.create()
    assert state_in_new_session(server, playwright, login_site, context.id) == NOTHING
    writer = log_in(server, playwright, login_site, context.id, "ada")
    # At once (the SDK's own example sleeps 5 s): a create waits for the save of a session that ended.
    assert state_in_new_session(server, playwright, login_site, context.id) == logged_in_as("ada")
    assert bb.sessions.retrieve(writer).context_id == context.id
    updated = bb.contexts.retrieve(context.id).updated_at
    assert updated > bb.contexts.retrieve(context.id).created_at
    # A second login replaces the first; the old archive is deleted.
    first_key = archive_key(server, context.id)
    log_in(server, playwright, login_site, context.id, "grace")
    assert state_in_new_session(server, playwright, login_site, context.id) == logged_in_as("grace")
    assert archive_key(server, context.id) != first_key
    assert first_key is not None and not (server.data_dir / "blobs" / first_key).exists()
    # Encrypted at rest: neither the values nor any compressed stream can be read in the stored bytes.
    key = archive_key(server, context.id)
    assert key is not None
    on_disk = (server.data_dir / "blobs" / key).read_bytes()
    row = stored(server, context.id)
    assert row is not None and row.archive_sha256 == hashlib.sha256(on_disk).hexdigest()
    assert on_disk.startswith(sealing.MAGIC) and row.archive_size == len(on_disk)
    for plain in (b"grace", b"sid-", b"SQLite format", b"leveldb"):
        assert plain not in on_disk
    for start in (0, len(sealing.MAGIC) + 8 + 12):  # nor is it, or its payload, a gzip stream
        with pytest.raises(OSError):
            gzip.decompress(on_disk[start:])
    opened = opened_archive(server, context.id)
    assert opened.startswith(b"\x1f\x8b")
    assert b"sid-grace" in gzip.decompress(opened)  # the session cookie, saved over CDP
    names = members(opened)
    assert "cookies.json" in names and "user-data/Default/Cookies" in names
    assert not [n for n in names if "/Cache" in n or "Code Cache" in n or "GPUCache" in n or "History" in n]
    # Deleting the context removes its archive.
    bb.contexts.delete(context.id)
    assert not (server.data_dir / "blobs" / key).exists()


def test_without_persist_nothing_is_saved(server: Server, playwright: Any, login_site: str) -> None:
    bb = server.sdk()
    context = bb.contexts.create()
    log_in(server, playwright, login_site, context.id, "kept")
    assert state_in_new_session(server, playwright, login_site, context.id) == logged_in_as("kept")
    key = archive_key(server, context.id)
    before = bb.contexts.retrieve(context.id).updated_at
    session = bb.sessions.create(browser_settings=with_context(context.id, False))
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{login_site}/login?tag=dropped")
    page.wait_for_function("document.title === 'logged in'")
    browser.close()
    wait_for(lambda: bb.sessions.retrieve(session.id).status == "COMPLETED")
    time.sleep(1)  # a save, were there one, would be done by now
    assert archive_key(server, context.id) == key
    assert bb.contexts.retrieve(context.id).updated_at == before
    assert state_in_new_session(server, playwright, login_site, context.id) == logged_in_as("kept")


def test_a_browser_closed_by_its_client_is_saved_from_its_files(
    server: Server, playwright: Any, login_site: str
) -> None:
    context = server.sdk().contexts.create()
    session = server.sdk().sessions.create(browser_settings=with_context(context.id, True))
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{login_site}/login?tag=closer")
    page.wait_for_function("document.title === 'logged in'")
    browser.new_browser_cdp_session().send("Browser.close")  # as Puppeteer's browser.close() does
    wait_for(lambda: archive_key(server, context.id) is not None)
    seen = state_in_new_session(server, playwright, login_site, context.id)
    assert seen["local"] == "ls-closer" and seen["idb"] == "idb-closer"
    assert seen["cookies"]["remember"] == "rem-closer"


def test_what_the_browser_plants_in_its_profile_stays_out(
    server: Server, playwright: Any, login_site: str, tmp_path: Path
) -> None:
    marker = f"TOP-SECRET-{secrets.token_hex(8)}"
    secret_dir = tmp_path / "secret-dir"
    secret_dir.mkdir()
    (secret_dir / "inside").write_text(marker)
    secret_file = tmp_path / "secret-file"
    secret_file.write_text(marker)
    bb = server.sdk()
    context = bb.contexts.create()
    session = bb.sessions.create(browser_settings=with_context(context.id, True))
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{login_site}/login?tag=planted")
    page.wait_for_function("document.title === 'logged in'")
    _, profile = session_browser(server, session.id)
    default = profile / "user-data" / "Default"
    planted = {
        "user-data/Default/Local Storage/leak": lambda p: p.symlink_to(secret_file),
        "user-data/Default/IndexedDB/leak-dir": lambda p: p.symlink_to(secret_dir, target_is_directory=True),
        "user-data/Default/IndexedDB/fifo": lambda p: os.mkfifo(p),
        "user-data/Default/IndexedDB/hard": lambda p: os.link(secret_file, p),
        "user-data/Default/Login Data-wal": lambda p: p.symlink_to("/etc/shadow"),
    }
    for name, plant in planted.items():
        plant(profile / name)
    # A kept directory replaced by a link to the outside.
    (default / "File System").mkdir(exist_ok=True)
    os.rename(default / "File System", tmp_path / "moved")
    (default / "File System").symlink_to(secret_dir, target_is_directory=True)
    browser.close()
    wait_for(lambda: archive_key(server, context.id) is not None, timeout=30)
    opened = gzip.decompress(opened_archive(server, context.id))
    assert marker.encode() not in opened
    assert b"root:" not in opened
    names = members(opened_archive(server, context.id))
    assert not set(planted) & set(names) and "user-data/Default/File System" not in names
    assert "user-data/Default/Local Storage" in names  # the rest of the profile is saved
    assert state_in_new_session(server, playwright, login_site, context.id) == logged_in_as("planted")
    assert "left out" in server.log.read_text(errors="replace")


def test_session_cookies_come_back_over_cdp(server: Server, playwright: Any, login_site: str) -> None:
    """Chromium may also keep session cookies in its Cookies file: without that file, the cookies saved
    over CDP alone must bring the login back."""
    context = server.sdk().contexts.create()
    log_in(server, playwright, login_site, context.id, "cdp")
    wait_for(lambda: (r := stored(server, context.id)) is not None and r.persisting_session is None)
    without = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(opened_archive(server, context.id)), mode="r:gz") as old,
        tarfile.open(fileobj=without, mode="w:gz") as new,
    ):
        for member in old:
            if not member.name.startswith("user-data/Default/Cookies"):
                new.addfile(member, old.extractfile(member) if member.isreg() else None)
    secret = server.read_store(lambda store: store.secret("context-archives", lambda: ""))
    resealed = sealing.Sealer([sealing.derive_key(secret)]).seal(without.getvalue(), context.id)
    key = archive_key(server, context.id)
    assert key is not None
    (server.data_dir / "blobs" / key).write_bytes(resealed)
    digest = hashlib.sha256(resealed).hexdigest()
    assert server.read_store(
        lambda store: store.update_resource(BrowserContext, context.id, archive_sha256=digest)
    )
    assert state_in_new_session(server, playwright, login_site, context.id) == logged_in_as("cdp")


def test_a_damaged_archive_is_a_clear_503_and_frees_the_claim(
    server: Server, playwright: Any, login_site: str
) -> None:
    context = server.sdk().contexts.create()
    log_in(server, playwright, login_site, context.id, "damaged")
    wait_for(lambda: (r := stored(server, context.id)) is not None and r.persisting_session is None)
    key = archive_key(server, context.id)
    assert key is not None
    path = server.data_dir / "blobs" / key
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with server.http(server.api_key) as http:
        for persist in (True, True):  # the first's claim is given back when its launch fails
            response = http.post("/v1/sessions", json={"browserSettings": with_context(context.id, persist)})
            assert response.status_code == 503, response.text
            assert "saved profile is damaged" in response.json()["message"]
            assert response.headers["x-should-retry"] == "false"
    row = stored(server, context.id)
    assert row is not None and row.persisting_session is None and row.archive_key == key


def test_a_crashed_browser_is_not_saved(server: Server, playwright: Any, login_site: str) -> None:
    context = server.sdk().contexts.create()
    log_in(server, playwright, login_site, context.id, "before-crash")
    wait_for(lambda: (r := stored(server, context.id)) is not None and r.persisting_session is None)
    good = archive_key(server, context.id)
    session = server.sdk().sessions.create(browser_settings=with_context(context.id, True), keep_alive=True)
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{login_site}/login?tag=crashed")
    page.wait_for_function("document.title === 'logged in'")
    pid, _ = session_browser(server, session.id)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: server.sdk().sessions.retrieve(session.id).status == "ERROR")
    wait_for(lambda: (r := stored(server, context.id)) is not None and r.persisting_session is None)
    assert archive_key(server, context.id) == good
    assert f"context {context.id} not saved: the browser had exited" in server.log.read_text(errors="replace")
    assert state_in_new_session(server, playwright, login_site, context.id) == logged_in_as("before-crash")


def test_deleting_a_context_in_use_breaks_no_session(
    server: Server, playwright: Any, login_site: str
) -> None:
    bb = server.sdk()
    context = bb.contexts.create()
    log_in(server, playwright, login_site, context.id, "gone")
    wait_for(lambda: (r := stored(server, context.id)) is not None and r.persisting_session is None)
    writer = bb.sessions.create(browser_settings=with_context(context.id, True), keep_alive=True)
    reader = bb.sessions.create(browser_settings=with_context(context.id, False), keep_alive=True)
    blobs = server.data_dir / "blobs" / "contexts"
    key = archive_key(server, context.id)
    assert key is not None and (server.data_dir / "blobs" / key).exists()
    bb.contexts.delete(context.id)
    assert not (server.data_dir / "blobs" / key).exists()  # its archive goes with it
    for session in (writer, reader):
        browser = playwright.chromium.connect_over_cdp(session.connect_url)
        assert state(browser.contexts[0].pages[0], login_site) == logged_in_as("gone")
        browser.close()
    before = set(blobs.iterdir())
    bb.sessions.update(writer.id, status="REQUEST_RELEASE")
    bb.sessions.update(reader.id, status="REQUEST_RELEASE")
    wait_for(lambda: f"context {context.id} was deleted" in server.log.read_text(errors="replace"))
    assert set(blobs.iterdir()) <= before  # what the writer's end saved is not kept


def test_the_docs_example_runs(server: Server, login_site: str) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "contexts.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    code = code.replace("http://127.0.0.1:7800", server.url).replace(
        "https://www.sfmoma.org", f"{login_site}/login?tag=docs"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "BROWSERBASE_API_KEY": server.api_key},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[0] == "['remember', 'sid']"


# -- crashes and limits (servers of their own) ---------------------------------------------------


@pytest.mark.timeout(300)  # three sessions, two server starts and a large profile, on 2 shared cores
def test_a_save_killed_midway_keeps_the_last_good_copy(
    make_server: Any, playwright: Any, login_site: str
) -> None:
    srv: Server = make_server("contexts-kill", BROWSERFLEET_POOL_SIZE="0").start()
    context = srv.sdk().contexts.create()
    log_in(srv, playwright, login_site, context.id, "good")
    wait_for(lambda: archive_key(srv, context.id) is not None)
    good = archive_key(srv, context.id)
    # A second login with a large file in its profile, so that writing its archive takes a while.
    session = srv.sdk().sessions.create(browser_settings=with_context(context.id, True))
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{login_site}/login?tag=lost")
    page.wait_for_function("document.title === 'logged in'")
    _, profile = session_browser(srv, session.id)
    (profile / "user-data/Default/IndexedDB/big.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    blobs = srv.data_dir / "blobs" / "contexts"
    browser.close()
    # Killed while the new archive is being written (its temporary file exists).
    wait_for(lambda: any(p.name.startswith(".tmp-") for p in blobs.iterdir()), timeout=60, interval=0.005)
    srv.stop(signal.SIGKILL)
    assert archive_key(srv, context.id) == good
    srv.start()
    assert not [p for p in blobs.iterdir() if p.name.startswith(".tmp-")]
    assert state_in_new_session(srv, playwright, login_site, context.id) == logged_in_as("good")
    # The claim of the killed session was freed at start: the context can be persisted again.
    log_in(srv, playwright, login_site, context.id, "after")
    wait_for(lambda: archive_key(srv, context.id) not in (None, good))
    assert state_in_new_session(srv, playwright, login_site, context.id) == logged_in_as("after")


def test_a_profile_over_the_limit_is_not_saved(make_server: Any, playwright: Any, login_site: str) -> None:
    srv: Server = make_server(
        "contexts-limit", BROWSERFLEET_POOL_SIZE="0", BROWSERFLEET_CONTEXT_MAX_MB="2"
    ).start()
    context = srv.sdk().contexts.create()
    log_in(srv, playwright, login_site, context.id, "small")
    wait_for(lambda: archive_key(srv, context.id) is not None)
    session = srv.sdk().sessions.create(browser_settings=with_context(context.id, True))
    browser = playwright.chromium.connect_over_cdp(session.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{login_site}/login?tag=big")
    page.wait_for_function("document.title === 'logged in'")
    _, profile = session_browser(srv, session.id)
    (profile / "user-data/Default/IndexedDB/big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    browser.close()
    wait_for(lambda: "its profile is over 2 MB" in srv.log.read_text(errors="replace"))
    assert state_in_new_session(srv, playwright, login_site, context.id) == logged_in_as("small")


def test_a_graceful_stop_saves_and_a_secret_set_later_still_opens_earlier_archives(
    make_server: Any, playwright: Any, login_site: str
) -> None:
    srv: Server = make_server("contexts-secret", BROWSERFLEET_POOL_SIZE="0").start()
    context = srv.sdk().contexts.create()
    # Running when the server stops: its profile is saved as the stop ends it.
    running = srv.sdk().sessions.create(browser_settings=with_context(context.id, True), keep_alive=True)
    browser = playwright.chromium.connect_over_cdp(running.connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{login_site}/login?tag=before")
    page.wait_for_function("document.title === 'logged in'")
    browser.close()
    srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0
    assert archive_key(srv, context.id) is not None
    srv.env["BROWSERFLEET_SECRET"] = "an operator's secret"
    srv.start()
    assert state_in_new_session(srv, playwright, login_site, context.id) == logged_in_as("before")
    before = archive_key(srv, context.id)
    log_in(srv, playwright, login_site, context.id, "with-secret")
    wait_for(lambda: archive_key(srv, context.id) != before)
    key = archive_key(srv, context.id)
    assert key is not None
    sealed = (srv.data_dir / "blobs" / key).read_bytes()
    assert sealing.Sealer([sealing.derive_key("an operator's secret")]).open(sealed, context.id)


# -- the archive and the seal, without a browser -------------------------------------------------


def test_unpack_writes_only_plain_files_inside(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:

        def add(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("user-data/../../escape")
        add("/abs")
        add("user-data//double")
        add("user-data/./dot")
        add("user-data/link", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add("user-data/hard", kind=tarfile.LNKTYPE, link="user-data/ok")
        add("user-data/dev", kind=tarfile.CHRTYPE)
        add("user-data/fifo", kind=tarfile.FIFOTYPE)
        add("outside-user-data")
        add("user-data/Default/ok", b"fine")
        add("cookies.json", b'[{"name": "a", "value": "b"}, 3]')
    dest = tmp_path / "dest"
    dest.mkdir()
    cookies = profile_archive.unpack(buffer.getvalue(), dest)
    assert cookies == [{"name": "a", "value": "b"}]
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == ["dest", "dest/Default", "dest/Default/ok"]
    assert (dest / "Default" / "ok").read_bytes() == b"fine"
    with pytest.raises(profile_archive.ArchiveError):
        profile_archive.unpack(b"not an archive", dest)


def test_pack_reads_no_link_and_stops_at_its_limit(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("SECRET")
    user_data = tmp_path / "user-data"
    default = user_data / "Default"
    (default / "Local Storage" / "leveldb").mkdir(parents=True)
    (default / "Local Storage" / "leveldb" / "000003.log").write_bytes(b"kept")
    (default / "Cache").mkdir()
    (default / "Cache" / "data_0").write_bytes(b"cache")
    (default / "Service Worker" / "CacheStorage").mkdir(parents=True)
    (default / "Service Worker" / "CacheStorage" / "x").write_bytes(b"cache storage")
    (default / "Cookies").symlink_to(outside)
    (default / "IndexedDB").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(default / "Local Storage" / "fifo")
    os.link(outside, default / "Local Storage" / "hard")
    (user_data / "Local State").write_text("{}")
    archive, skipped = profile_archive.pack(user_data, [{"name": "c"}], 1024)
    names = set(members(archive))
    assert names == {
        "user-data/Local State",
        "user-data/Default",
        "user-data/Default/Local Storage",
        "user-data/Default/Local Storage/leveldb",
        "user-data/Default/Local Storage/leveldb/000003.log",
        "user-data/Default/Service Worker",
        "cookies.json",
    }
    assert b"SECRET" not in gzip.decompress(archive)
    assert sorted(skipped) == [
        "user-data/Default/Cookies",
        "user-data/Default/IndexedDB",
        "user-data/Default/Local Storage/fifo",
        "user-data/Default/Local Storage/hard",
    ]
    (default / "Local Storage" / "big").write_bytes(b"x" * 2048)
    with pytest.raises(profile_archive.TooBig):
        profile_archive.pack(user_data, None, 1024)


def test_a_sealed_archive_opens_only_as_it_was_sealed() -> None:
    mine, other = sealing.derive_key("mine"), sealing.derive_key("other")
    sealed = sealing.Sealer([mine]).seal(b"profile", "ctx-1")
    assert sealing.Sealer([other, mine]).open(sealed, "ctx-1") == b"profile"  # any key it knows
    with pytest.raises(sealing.SealError, match="a key this server does not have"):
        sealing.Sealer([other]).open(sealed, "ctx-1")
    with pytest.raises(sealing.SealError, match="not this context"):
        sealing.Sealer([mine]).open(sealed, "ctx-2")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(sealing.SealError):
        sealing.Sealer([mine]).open(bytes(flipped), "ctx-1")
    with pytest.raises(sealing.SealError, match="not a browserfleet"):
        sealing.Sealer([mine]).open(b"plain text", "ctx-1")
    assert sealing.Sealer([mine]).seal(b"profile", "ctx-1") != sealed  # a fresh nonce each time
