"""The REST contract through the official Python SDK (strict response validation) and raw HTTP."""

from __future__ import annotations

import json
import re

import browserbase
import pytest
from conftest import Server, each_database

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@each_database()
def test_create_retrieve_list_release_with_the_sdk(server: Server) -> None:
    bb = server.sdk()
    session = bb.sessions.create(user_metadata={"order": {"status": "shipped"}}, region="eu-central-1")
    assert session.status == "RUNNING"
    assert session.connect_url.startswith(server.ws_url + "/?signingKey=")
    assert session.selenium_remote_url == server.url + "/webdriver"
    assert session.signing_key and session.region == "eu-central-1"
    assert session.user_metadata == {"order": {"status": "shipped"}}
    assert (session.expires_at - session.started_at).total_seconds() == pytest.approx(300, abs=1)

    fetched = bb.sessions.retrieve(session.id)
    assert fetched.id == session.id and fetched.status == "RUNNING"
    assert fetched.connect_url == session.connect_url
    assert session.id in [s.id for s in bb.sessions.list(status="RUNNING")]

    released = bb.sessions.update(session.id, status="REQUEST_RELEASE")
    assert released.status == "COMPLETED" and released.ended_at is not None
    # Releasing again is not an error: it answers the session as it is.
    again = bb.sessions.update(session.id, status="REQUEST_RELEASE", project_id=session.project_id)
    assert again.status == "COMPLETED" and again.ended_at == released.ended_at
    assert session.id not in [s.id for s in bb.sessions.list(status="RUNNING")]
    assert bb.sessions.retrieve(session.id).connect_url is None


@each_database()
def test_wire_format(server: Server) -> None:
    with server.http(server.api_key) as http:
        created = http.post("/v1/sessions", json={"timeout": 300.0, "keepAlive": False, "futureField": 1})
        assert created.status_code == 201
        assert created.headers["content-type"].startswith("application/json")
        body = created.json()
        for name in ("createdAt", "updatedAt", "startedAt", "expiresAt"):
            assert ISO_Z.match(body[name]), body[name]
        assert body["region"] == "us-west-2" and body["proxyBytes"] == 0
        assert int(created.headers["x-ratelimit-limit"]) == 25
        assert int(created.headers["x-ratelimit-remaining"]) < 25
        ended = http.post(f"/v1/sessions/{body['id']}", json={"status": "REQUEST_RELEASE"}).json()
        assert ISO_Z.match(ended["endedAt"])
        assert "connectUrl" not in ended


@each_database()
def test_create_accepts_every_contract_field(server: Server) -> None:
    # What the SDK's own "all params" test sends, plus the legacy fingerprint and float numbers.
    bb = server.sdk()
    context = bb.contexts.create()  # a context must exist (an unknown one is a 404)
    session = bb.sessions.create(
        browser_settings={
            "context": {"id": context.id, "persist": True},
            "fingerprint": {"httpVersion": 2, "screen": {"maxWidth": 1920.0}},
            "viewport": {"height": 711.0, "width": 1288.0},
            "block_ads": True,
            "solve_captchas": True,
            "record_session": True,
            "log_session": True,
            "advanced_stealth": False,
            "os": "linux",
            "allowed_domains": ["example.com"],
            "ignore_certificate_errors": False,
        },
        keep_alive=True,
        # (`browserbase` entries and CA certificate ids need what this server lacks: tests/test_proxies.py,
        # tests/test_certificates.py.)
        proxies=[{"type": "external", "server": "http://p:1", "domain_pattern": "*.nowhere.test"}],
        proxy_settings={"ca_certificates": []},
        region="ap-southeast-1",
        api_timeout=60,
        user_metadata={"foo": "bar"},
    )
    assert session.context_id == context.id and session.keep_alive is True
    bb.sessions.update(session.id, status="REQUEST_RELEASE")


@each_database()
def test_metadata_query(server: Server) -> None:
    bb = server.sdk()
    shipped = bb.sessions.create(
        user_metadata={"order": {"status": "shipped", "n": 5}, "tag": "q-test", 'say "it\'s"': "ok"}
    )
    pending = bb.sessions.create(user_metadata={"order": {"status": "pending"}, "tag": "q-test"})
    try:
        found = bb.sessions.list(q="user_metadata['order']['status']:'shipped'")
        assert shipped.id in [s.id for s in found] and pending.id not in [s.id for s in found]
        both = {s.id for s in bb.sessions.list(q="user_metadata['tag']:'q-test'")}
        assert {shipped.id, pending.id} <= both
        # Only string equality: a number stored as a number does not match its string form.
        assert bb.sessions.list(q="user_metadata['order']['n']:'5'") == []
        assert bb.sessions.list(q="user_metadata['order']['status']:'lost'") == []
        # Quotes in keys and values: \' inside single quotes.
        odd = bb.sessions.list(q="user_metadata['say \"it\\'s\"']:'ok'")
        assert [s.id for s in odd] == [shipped.id]
    finally:
        for s in (shipped, pending):
            bb.sessions.update(s.id, status="REQUEST_RELEASE")


@pytest.mark.parametrize(
    "q, why",
    [
        ("order:'x'", "must start with user_metadata"),
        ("user_metadata:'x'", "at least one ['key']"),
        ("user_metadata['a'", "expected ']'"),
        ("user_metadata['a']'x'", "expected ':'"),
        ("user_metadata['a']:'x", "unterminated"),
        ("user_metadata['a']:'x' AND 1", "only one clause"),
        ("user_metadata['']:'x'", "empty key"),
    ],
)
def test_malformed_query_is_a_400_that_says_why(server: Server, q: str, why: str) -> None:
    with server.http(server.api_key) as http:
        response = http.get("/v1/sessions", params={"q": q})
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    assert why in body["message"]


@each_database()
def test_projects_and_usage(server: Server) -> None:
    bb = server.sdk()
    projects = bb.projects.list()
    assert len(projects) == 1
    project = bb.projects.retrieve(projects[0].id)
    assert project.concurrency == 25 and project.default_timeout == 300
    session = bb.sessions.create()
    bb.sessions.update(session.id, status="REQUEST_RELEASE")
    usage = bb.projects.usage(project.id)
    assert usage.browser_minutes >= 1 and usage.proxy_bytes == 0


@each_database()
def test_one_project_never_sees_another(server: Server) -> None:
    _, other_key = server.new_project("isolation", concurrency=2)
    mine = server.sdk().sessions.create()
    theirs = server.sdk(other_key)
    try:
        with pytest.raises(browserbase.NotFoundError):
            theirs.sessions.retrieve(mine.id)
        with pytest.raises(browserbase.NotFoundError):
            theirs.sessions.update(mine.id, status="REQUEST_RELEASE")
        assert mine.id not in [s.id for s in theirs.sessions.list()]
        with pytest.raises(browserbase.NotFoundError):
            theirs.projects.retrieve(mine.project_id)
        assert [p.id for p in theirs.projects.list()] != [mine.project_id]
        with pytest.raises(browserbase.NotFoundError):
            theirs.sessions.create(project_id=mine.project_id)
        assert server.sdk().sessions.retrieve(mine.id).status == "RUNNING"
    finally:
        server.sdk().sessions.update(mine.id, status="REQUEST_RELEASE")


def test_auth_is_required_everywhere(server: Server) -> None:
    routes = [
        ("GET", "/v1/sessions"),
        ("POST", "/v1/sessions"),
        ("GET", "/v1/sessions/x"),
        ("POST", "/v1/sessions/x"),
        ("GET", "/v1/projects"),
        ("GET", "/v1/projects/x"),
        ("GET", "/v1/projects/x/usage"),
    ]
    for key in (None, "wrong-key"):
        with server.http(key) as http:
            for method, path in routes:
                response = http.request(method, path, json={} if method == "POST" else None)
                assert response.status_code == 401, (key, method, path)
                assert response.json()["statusCode"] == 401
    # The header name is case-insensitive.
    with server.http() as http:
        assert http.get("/v1/projects", headers={"x-bb-api-key": server.api_key}).status_code == 200
    with pytest.raises(browserbase.AuthenticationError):
        server.sdk("bf_not_a_key").sessions.list()


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"timeout": 59}).encode(), "timeout"),
        (json.dumps({"timeout": 21601}).encode(), "timeout"),
        (json.dumps({"timeout": "soon"}).encode(), "timeout"),
        (json.dumps({"timeout": 60.5}).encode(), "timeout"),
        (json.dumps({"keepAlive": {"x": 1}}).encode(), "keepAlive"),
        (json.dumps({"region": "mars-1"}).encode(), "region"),
        (json.dumps({"userMetadata": "nope"}).encode(), "userMetadata"),
        (json.dumps({"userMetadata": {"k": "v" * 600}}).encode(), "512"),
        (json.dumps({"browserSettings": {"viewport": {"width": "wide"}}}).encode(), "viewport"),
        (json.dumps({"proxies": [{"type": "carrier-pigeon"}]}).encode(), "proxies"),
    ],
)
def test_bad_create_bodies_are_400s(server: Server, body: bytes, fragment: str) -> None:
    with server.http(server.api_key) as http:
        response = http.post("/v1/sessions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    payload = response.json()
    assert set(payload) == {"statusCode", "error", "message"}
    assert fragment in payload["message"]


@each_database()
def test_bad_update_and_list_requests(server: Server) -> None:
    with server.http(server.api_key) as http:
        session = http.post("/v1/sessions", json={}).json()
        bad_status = http.post(f"/v1/sessions/{session['id']}", json={"status": "PAUSE"})
        assert bad_status.status_code == 400 and "status" in bad_status.json()["message"]
        assert http.post(f"/v1/sessions/{session['id']}", content=b"").status_code == 400
        assert http.get("/v1/sessions", params={"status": "SLEEPING"}).status_code == 400
        assert (
            http.post(f"/v1/sessions/{session['id']}", json={"status": "REQUEST_RELEASE"}).status_code == 200
        )
        missing = http.get("/v1/sessions/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
        big = http.post("/v1/sessions", content=b"{" + b" " * (2 * 1024**2) + b"}")
        assert big.status_code == 413 and big.json()["statusCode"] == 413


def test_unknown_routes_are_404_in_the_contract_shape(server: Server) -> None:
    with server.http(server.api_key) as http:
        for method, path in [("GET", "/v1/nothing"), ("DELETE", "/v1/sessions"), ("PUT", "/v1/projects")]:
            response = http.request(method, path)
            assert response.status_code == 404
            assert response.json() == {
                "statusCode": 404,
                "error": "Not Found",
                "message": f"Route {method}:{path} not found",
            }
