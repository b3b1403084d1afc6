"""Every method of the official Python SDK (`browserbase`, strict response validation) against a real
server: each gets a 2xx whose body parses as the SDK's own model, or, for the hosted service's features
a self-hosted server does not have, a clear 501 in the contract's error shape naming the feature.

The methods are found by walking the client's resources, and each must have a call written here: a
method a newer SDK adds fails this test until someone decides what it should get.
"""

from __future__ import annotations

import datetime
import inspect
import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import browserbase
import pytest
from browserbase import Browserbase
from browserbase._resource import SyncAPIResource
from conftest import Server, wait_for

# The hosted service's features a self-hosted server does not have: 501, naming the resource.
NOT_OFFERED = {
    "search": "/v1/search",
    "agents": "/v1/agents",
    "functions": "/v1/functions",
    "secrets": "/v1/secrets",
    "webhooks": "/v1/webhooks",
}


# Methods whose answer is not JSON, and the content type it must have.
BINARY = {
    "sessions.downloads.list": "application/zip",
    "sessions.replays.retrieve_page": "application/vnd.apple.mpegurl",
}


def sdk_methods(client: Browserbase) -> set[str]:
    """`resource.sub.method` of every public method of the client's resources."""
    found: set[str] = set()

    def walk(resource: object, path: list[str]) -> None:
        for name in sorted(dir(type(resource))):
            if name.startswith("_") or name in ("with_raw_response", "with_streaming_response"):
                continue
            value = getattr(resource, name)
            if isinstance(value, SyncAPIResource):
                walk(value, [*path, name])
            elif inspect.ismethod(value) and isinstance(resource, SyncAPIResource):
                found.add(".".join([*path, name]))

    walk(client, [])
    return found


@dataclass
class Walk:
    """What the calls share: the client, the project, and what earlier calls made."""

    server: Server
    bb: Browserbase
    project_id: str
    site: str
    playwright: Any
    made: dict[str, str] = field(default_factory=dict)

    def id(self, kind: str) -> str:
        return self.made.get(kind, "00000000-0000-4000-8000-000000000000")


def extension_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", '{"manifest_version": 3, "name": "walk", "version": "1.0"}')
    return out.getvalue()


def ca_certificate() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "walk test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def record_a_page(w: Walk) -> None:
    """A tab with frames in the session's recording, so that its replay has a playlist to fetch."""
    browser = w.playwright.chromium.connect_over_cdp(w.bb.sessions.retrieve(w.id("session")).connect_url)
    page = browser.contexts[0].pages[0]
    page.goto(f"{w.site}/animated.html")
    time.sleep(1.5)
    browser.close()  # keepAlive: the session runs on


def logs_after_a_page(w: Walk) -> Any:
    record_a_page(w)
    return w.bb.sessions.logs.list(w.id("session"))


def replay_ready(w: Walk) -> bool:
    return w.bb.sessions.replays.retrieve(w.id("session")).page_count > 0


def keep(w: Walk, kind: str, made: Any) -> Any:
    w.made[kind] = made.id
    return made


def released(w: Walk) -> Any:
    session = w.bb.sessions.update(w.id("session"), status="REQUEST_RELEASE", project_id=w.project_id)
    assert session.status == "COMPLETED"
    wait_for(lambda: replay_ready(w), timeout=90, interval=0.5)
    return session


# In the order they run: each call may use what an earlier one made. The value is what the call returns.
CALLS: list[tuple[str, Callable[[Walk], Any]]] = [
    ("projects.list", lambda w: w.bb.projects.list()),
    ("projects.retrieve", lambda w: w.bb.projects.retrieve(w.project_id)),
    ("projects.usage", lambda w: w.bb.projects.usage(w.project_id)),
    ("sessions.create", lambda w: keep(w, "session", w.bb.sessions.create(keep_alive=True))),
    ("sessions.retrieve", lambda w: w.bb.sessions.retrieve(w.id("session"))),
    ("sessions.list", lambda w: w.bb.sessions.list(status="RUNNING")),
    ("sessions.debug", lambda w: w.bb.sessions.debug(w.id("session"), expires_in=600)),
    (
        "sessions.uploads.create",
        lambda w: w.bb.sessions.uploads.create(w.id("session"), file=("a.txt", b"hi")),
    ),
    ("sessions.logs.list", logs_after_a_page),
    ("sessions.downloads.list", lambda w: w.bb.sessions.downloads.list(w.id("session"))),
    ("sessions.recording.retrieve", lambda w: w.bb.sessions.recording.retrieve(w.id("session"))),
    ("sessions.update", released),
    ("sessions.replays.retrieve", lambda w: w.bb.sessions.replays.retrieve(w.id("session"))),
    (
        "sessions.replays.retrieve_page",
        lambda w: w.bb.sessions.replays.retrieve_page("0", id=w.id("session")),
    ),
    (
        "sessions.recording.downloads.create",
        lambda w: w.bb.sessions.recording.downloads.create(w.id("session")),
    ),
    ("sessions.recording.downloads.list", lambda w: w.bb.sessions.recording.downloads.list(w.id("session"))),
    ("fetch_api.create", lambda w: w.bb.fetch_api.create(url=f"{w.site}/index.html", format="markdown")),
    ("contexts.create", lambda w: keep(w, "context", w.bb.contexts.create(project_id=w.project_id))),
    ("contexts.retrieve", lambda w: w.bb.contexts.retrieve(w.id("context"))),
    ("contexts.update", lambda w: w.bb.contexts.update(w.id("context"))),
    ("contexts.delete", lambda w: w.bb.contexts.delete(w.id("context"))),
    (
        "extensions.create",
        lambda w: keep(w, "extension", w.bb.extensions.create(file=("x.zip", extension_zip()))),
    ),
    ("extensions.retrieve", lambda w: w.bb.extensions.retrieve(w.id("extension"))),
    ("extensions.delete", lambda w: w.bb.extensions.delete(w.id("extension"))),
    (
        "certificates.create",
        lambda w: keep(w, "certificate", w.bb.certificates.create(file=ca_certificate())),
    ),
    ("certificates.list", lambda w: w.bb.certificates.list()),
    ("certificates.retrieve", lambda w: w.bb.certificates.retrieve(w.id("certificate"))),
    ("certificates.delete", lambda w: w.bb.certificates.delete(w.id("certificate"))),
    ("search.web", lambda w: w.bb.search.web(query="browserfleet")),
    ("agents.create", lambda w: w.bb.agents.create(name="a")),
    ("agents.list", lambda w: w.bb.agents.list()),
    ("agents.retrieve", lambda w: w.bb.agents.retrieve("agentId")),
    ("agents.update", lambda w: w.bb.agents.update("agentId", name="b")),
    ("agents.delete", lambda w: w.bb.agents.delete("agentId")),
    ("agents.runs.create", lambda w: w.bb.agents.runs.create(task="t")),
    ("agents.runs.list", lambda w: w.bb.agents.runs.list()),
    ("agents.runs.retrieve", lambda w: w.bb.agents.runs.retrieve("runId")),
    ("agents.runs.list_messages", lambda w: w.bb.agents.runs.list_messages("runId")),
    ("functions.secrets.list", lambda w: w.bb.functions.secrets.list("id")),
    ("functions.secrets.attach", lambda w: w.bb.functions.secrets.attach("id", secret_id="s")),
    ("functions.secrets.detach", lambda w: w.bb.functions.secrets.detach("s", id="id")),
    (
        "secrets.create",
        lambda w: w.bb.secrets.create(keypair_id="k", sealed_secret_value="v", secret_key="n"),
    ),
    ("secrets.list", lambda w: w.bb.secrets.list()),
    ("secrets.retrieve", lambda w: w.bb.secrets.retrieve("id")),
    ("secrets.update", lambda w: w.bb.secrets.update("id", keypair_id="k", sealed_secret_value="v")),
    ("secrets.delete", lambda w: w.bb.secrets.delete("id")),
    ("secrets.get_public_key", lambda w: w.bb.secrets.get_public_key()),
    ("webhooks.create", lambda w: w.bb.webhooks.create(endpoint="https://x.test/", event_types=[])),
    ("webhooks.list", lambda w: w.bb.webhooks.list()),
    ("webhooks.retrieve", lambda w: w.bb.webhooks.retrieve("id")),
    ("webhooks.update", lambda w: w.bb.webhooks.update("id", endpoint="https://y.test/")),
    ("webhooks.rotate_secret", lambda w: w.bb.webhooks.rotate_secret("id")),
    ("webhooks.delete", lambda w: w.bb.webhooks.delete("id")),
]


def test_every_sdk_method_has_a_call_here() -> None:
    client = Browserbase(api_key="k", base_url="http://127.0.0.1:9")
    written = [name for name, _ in CALLS]
    assert len(written) == len(set(written))
    assert set(written) == sdk_methods(client)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # contexts.update, recording.retrieve
def test_every_sdk_method_gets_a_2xx_that_parses_strictly_or_a_clear_501(
    server: Server, site: str, playwright: Any
) -> None:
    project_id, key = server.new_project("sdk-walk", concurrency=3)
    walk = Walk(server, server.sdk(key, max_retries=0), project_id, site, playwright)
    outcomes: dict[str, str] = {}
    problems: list[str] = []
    for name, call in CALLS:
        resource = name.split(".")[0]
        try:
            result = call(walk)
        except browserbase.APIStatusError as exc:
            status, body = exc.status_code, exc.body
            outcomes[name] = str(status)
            if resource in NOT_OFFERED:
                clear = (
                    status == 501
                    and isinstance(body, dict)
                    and set(body) == {"statusCode", "error", "message"}
                    and NOT_OFFERED[resource] in str(body["message"])
                    and exc.response.headers.get("x-should-retry") == "false"
                )
                if not clear:
                    problems.append(f"{name}: not a clear 501: {status} {body}")
            else:
                problems.append(f"{name}: {status} {body}")
            continue
        except browserbase.APIResponseValidationError as exc:
            problems.append(f"{name}: the answer does not parse strictly: {exc}")
            continue
        outcomes[name] = "2xx"
        if resource in NOT_OFFERED:
            problems.append(f"{name}: answered 2xx, but it is not offered")
        if name in BINARY:  # the SDK hands these over as bytes: their type is what says they parse
            kind = result.headers.get("content-type", "")
            if not kind.startswith(BINARY[name]) or not result.read():
                problems.append(f"{name}: {kind!r}, not {BINARY[name]}")
    assert not problems, "\n".join(problems)
    # What each kind got, so a run shows the shape at a glance.
    assert {outcomes[n] for n, _ in CALLS if n.split(".")[0] in NOT_OFFERED} == {"501"}
    offered = [n for n, _ in CALLS if n.split(".")[0] not in NOT_OFFERED]
    assert {outcomes[n] for n in offered} == {"2xx"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/functions/f1/invoke"),
        ("GET", "/v1/functions/f1/builds"),
        ("POST", "/v1/agents/runs/r1/stop"),
        ("PATCH", "/v1/search"),
        ("GET", "/v1/webhooks/w1/secret/extra/deep"),
    ],
)
def test_spec_only_routes_of_those_features_are_501_too(server: Server, method: str, path: str) -> None:
    with server.http(server.api_key) as http:
        answer = http.request(method, path)
        unauthenticated = http.request(method, path, headers={"X-BB-API-Key": ""})
    assert answer.status_code == 501
    body = answer.json()
    assert body["error"] == "Not Implemented" and "not offered" in body["message"]
    assert unauthenticated.status_code == 401  # the key first, as everywhere
