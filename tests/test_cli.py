"""The operator's side: bootstrap key, the projects and keys commands, settings from the environment."""

from __future__ import annotations

import re
from typing import Any

import browserbase
import pytest
from conftest import Server, each_database


def test_generated_key_is_printed_once_and_stored_hashed(make_server: Any) -> None:
    srv: Server = make_server("generated-key", BROWSERFLEET_API_KEY="")
    srv.start()
    printed = re.findall(r"API key \(shown once, stored hashed\): (bf_\S+)", srv.log.read_text())
    assert len(printed) == 1
    key = printed[0]
    assert srv.sdk(key).projects.list()[0].name == "default"
    srv.stop()
    srv.start()  # a second start does not make or show another key
    assert len(re.findall(r"API key \(shown once", srv.log.read_text())) == 1
    assert srv.sdk(key).sessions.list() == []
    raw = (srv.data_dir / "browserfleet.db").read_bytes()
    assert key.encode() not in raw
    hashes = [row.key_hash for row in srv.read_store(lambda store: store.keys())]
    assert len(hashes) == 1 and len(hashes[0]) == 64


@each_database()
def test_projects_and_keys_commands(server: Server) -> None:
    project_id, key = server.new_project("ops", concurrency=3)
    listed = server.cli("projects", "list")
    assert project_id in listed and "ops" in listed
    server.cli("projects", "update", project_id, "--concurrency", "7", "--default-timeout", "900")
    project = server.sdk(key).projects.retrieve(project_id)
    assert (project.concurrency, project.default_timeout) == (7, 900)
    session = server.sdk(key).sessions.create()
    assert (session.expires_at - session.started_at).total_seconds() == pytest.approx(900, abs=1)
    server.sdk(key).sessions.update(session.id, status="REQUEST_RELEASE")

    second = server.cli("keys", "create", project_id, "--name", "ci").strip()
    assert server.sdk(second).projects.retrieve(project_id).id == project_id
    keys = server.cli("keys", "list", project_id)
    assert second[:12] in keys and second not in keys  # only prefixes are shown (only hashes are kept)
    assert "revoked 1 key" in server.cli("keys", "revoke", second[:12])
    with pytest.raises(browserbase.AuthenticationError):
        server.sdk(second).projects.list()
    assert "revoked 1 key" in server.cli("keys", "revoke", key)  # the whole key works too
    with pytest.raises(browserbase.AuthenticationError):
        server.sdk(key).projects.list()


def test_limits_and_public_url_from_the_environment(make_server: Any) -> None:
    srv: Server = make_server(
        "env-settings",
        BROWSERFLEET_CONCURRENCY="4",
        BROWSERFLEET_DEFAULT_TIMEOUT="120",
        BROWSERFLEET_PUBLIC_URL="https://fleet.example.test/bf/",
    )
    srv.start()
    bb = srv.sdk()
    project = bb.projects.list()[0]
    assert (project.concurrency, project.default_timeout) == (4, 120)
    session = bb.sessions.create()
    assert session.connect_url.startswith("wss://fleet.example.test/bf/?signingKey=")
    assert session.selenium_remote_url == "https://fleet.example.test/bf/webdriver"
    assert (session.expires_at - session.started_at).total_seconds() == pytest.approx(120, abs=1)
    bb.sessions.update(session.id, status="REQUEST_RELEASE")


def test_bad_cli_input_is_refused(server: Server) -> None:
    import subprocess

    from conftest import CLI

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args, "--data-dir", str(server.data_dir)],
            env=server.environ(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert run("projects", "update", "no-such-project", "--concurrency", "2").returncode == 1
    assert run("projects", "create", "x", "--concurrency", "0").returncode == 2
    assert run("projects", "create", "x", "--default-timeout", "30").returncode == 2
    assert run("keys", "create", "no-such-project").returncode == 1
    assert run("keys", "revoke", "bf_nothing").returncode == 1
