"""The rest of the create body: newer keys of the hosted service accepted and stored, the settings this
server does not perform stored as such, unknown keys accepted and recorded by name, and what a user
would rely on (an extension by name or by several ids) refused with a 400 that says why."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Server

from browserfleet.api import schemas
from browserfleet.api.sessions import session_spec
from browserfleet.errors import InvalidRequest


def spec_of(body: dict[str, Any]) -> dict[str, Any]:
    return session_spec(schemas.CreateSession.model_validate(body)).summary()


def test_newer_keys_are_stored_as_not_performed() -> None:
    summary = spec_of(
        {
            "browserSettings": {
                "size": "large",
                "enablePdfViewer": True,
                "enableNativeSelectPolyfill": False,
                "headful": True,
                "extensions": [],
            }
        }
    )
    assert summary == {
        "applied": {"enable_pdf_viewer": True},  # applied (browsers/pdf.py), not merely stored
        "notPerformed": {"size": "large", "enableNativeSelectPolyfill": False, "headful": True},
    }


def test_captcha_and_stealth_settings_are_kept_in_the_spec() -> None:
    summary = spec_of(
        {
            "browserSettings": {
                "solveCaptchas": False,
                "captchaImageSelector": "#img",
                "captchaInputSelector": "#in",
                "advancedStealth": True,
            }
        }
    )
    assert summary["applied"] == {
        "solve_captchas": False,
        "captcha_image_selector": "#img",
        "captcha_input_selector": "#in",
        "verified": True,
    }


def test_unknown_keys_are_accepted_and_recorded_by_name_only() -> None:
    summary = spec_of(
        {
            "futureKey": {"secret": "hunter2"},
            "browserSettings": {"newSetting": 1, "viewport": {"width": 800, "depth": 3}},
            "proxies": [{"type": "none", "extra": True}],
        }
    )
    assert summary["unknownKeys"] == [
        "futureKey",
        "browserSettings.newSetting",
        "browserSettings.viewport.depth",
        "proxies.0.extra",
    ]
    assert "hunter2" not in repr(summary)
    many = spec_of({f"k{i}": i for i in range(500)})
    assert len(many["unknownKeys"]) == 50  # bounded: a body of unknown keys cannot bloat the row


def test_an_extension_in_extensions_is_the_sessions_extension() -> None:
    assert spec_of({"browserSettings": {"extensions": ["e1"]}})["launch"] == {"extension_id": "e1"}
    same = {"extensionId": "e1", "browserSettings": {"extensionId": "e1", "extensions": ["e1", "e1"]}}
    assert spec_of(same)["launch"] == {"extension_id": "e1"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"browserSettings": {"extensions": ["onepassword"]}}, "pre-installed extension of the hosted"),
        ({"browserSettings": {"extensions": ["browser-events"]}}, "upload it (POST /v1/extensions)"),
        ({"extensionId": "a", "browserSettings": {"extensionId": "b"}}, "name 2 different ones"),
        ({"extensionId": "a", "browserSettings": {"extensions": ["b", "c"]}}, "name 3 different ones"),
    ],
)
def test_extensions_that_cannot_be_loaded_are_refused(body: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words.replace("(", r"\(").replace(")", r"\)")):
        spec_of(body)


@pytest.mark.parametrize(
    "settings",
    [{"size": "huge"}, {"enablePdfViewer": "maybe"}, {"extensions": "e1"}, {"extensions": [""]}],
)
def test_newer_keys_of_the_wrong_shape_are_400(server: Server, settings: dict[str, Any]) -> None:
    with server.http(server.api_key) as http:
        answer = http.post("/v1/sessions", json={"browserSettings": settings})
    assert answer.status_code == 400, answer.text
    assert f"browserSettings.{next(iter(settings))}" in answer.json()["message"]
    assert answer.headers["x-should-retry"] == "false"


def test_a_create_with_every_newer_key_runs_and_stores_them(server: Server) -> None:
    body = {
        "browserSettings": {
            "size": "medium",
            "enableNativeSelectPolyfill": True,
            "solveCaptchas": True,
            "verified": True,
            "somethingNew": "x",
        },
        "brandNewTopLevel": [1, 2],
    }
    with server.http(server.api_key) as http:
        created = http.post("/v1/sessions", json=body)
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        http.post(f"/v1/sessions/{session_id}", json={"status": "REQUEST_RELEASE"})
    row = server.read_store(lambda store: store.session(session_id))
    assert row is not None
    assert row.create_params == {
        "applied": {"verified": True},
        "notPerformed": {"size": "medium", "enableNativeSelectPolyfill": True},
        "unknownKeys": ["brandNewTopLevel", "browserSettings.somethingNew"],
    }
    with server.http(server.api_key) as http:
        refused = http.post("/v1/sessions", json={"browserSettings": {"extensions": ["onepassword"]}})
    assert refused.status_code == 400 and "onepassword" in refused.json()["message"]
