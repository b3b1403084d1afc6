"""Fuzzing the REST API from its own `/openapi.json` with schemathesis: no 5xx, and every response (errors
included: the document's `default`) as the document says.

A server of its own, with a concurrency limit of 2: creates beyond it are 429s, not more browsers, and
every session a create makes is released at once. Bounded by example counts (derandomized, so a run is
repeatable); FUZZ_EXAMPLES scales them up for a longer local run.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from aiohttp import web
from conftest import Server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "16"))  # per operation and generation mode
CREATES = max(3, EXAMPLES // 4)  # positive creates start real browsers: fewer of them
DEEP_EXAMPLES = max(1, EXAMPLES // 2)  # per operation and mode, on an existing session
BUDGET = 150.0  # seconds the whole run may take, on 2 busy cores


@pytest.fixture(scope="module")
def fuzz_server(suite_root: Path) -> Iterator[Server]:
    env = {"BROWSERFLEET_CONCURRENCY": "2", "BROWSERFLEET_POOL_SIZE": "1"}
    server = Server(suite_root / "fuzz", env=env).start()
    yield server
    server.stop()


def test_the_document_lists_every_v1_route_with_its_models(fuzz_server: Server) -> None:
    from browserfleet.api import fetch, files, openapi, projects, replays, sessions

    document = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=30).json()  # no key: it is public
    assert document["openapi"].startswith("3.1")
    scheme = document["components"]["securitySchemes"]["BrowserbaseAuth"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-BB-API-Key"}
    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    for module in (sessions, projects, files, replays, fetch):
        for route in module.routes:
            assert isinstance(route, web.RouteDef)
            path = route.path.replace(r"{page:[0-9]{1,3}}", "{page}").replace(
                "{kind:console|network}", "{kind}"
            )
            assert (route.method, path) in listed, (route.method, path)
            assert openapi.declared(route.handler) is not None, f"{route.method} {path} declares no operation"
    created = document["paths"]["/v1/sessions"]["post"]
    assert created["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreatedSession"
    }
    assert "connectUrl" in document["components"]["schemas"]["CreatedSession"]["required"]
    assert "userMetadata" in document["components"]["schemas"]["CreateSession"]["properties"]


def test_fuzz_the_rest_api(fuzz_server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    headers = {"X-BB-API-Key": fuzz_server.api_key}
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    examples = 0
    started = time.monotonic()

    def release(session_id: str) -> None:
        response = httpx.post(
            f"{fuzz_server.url}/v1/sessions/{session_id}",
            json={"status": "REQUEST_RELEASE"},
            headers=headers,
            timeout=60,
        )
        assert response.status_code == 200, response.text

    def fuzz(operation: APIOperation, mode: GenerationMode, count: int, **fixed: dict[str, str]) -> None:
        @settings(
            max_examples=count,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected, not raised
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            nonlocal examples
            case = data.draw(operation.as_strategy(generation_mode=mode, **fixed))  # type: ignore[arg-type]
            try:
                response = case.call(headers=headers, timeout=30)
            except Exception as exc:  # a hang or a dropped connection is a failure too
                failures.append(
                    f"{operation.label} ({mode}, {fixed}): {exc!r}: {case.as_curl_command()}"[:3000]
                )
                return
            examples += 1
            statuses[response.status_code] += 1
            if response.status_code == 201 and operation.label == "POST /v1/sessions":
                try:
                    release(response.json()["id"])
                except (AssertionError, ValueError, KeyError, httpx.HTTPError) as exc:
                    failures.append(f"releasing what {operation.label} created: {exc!r}")
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance], headers=headers
                )
            except (FailureGroup, AssertionError) as exc:  # the check's report: what was sent and got
                failures.append(f"{operation.label} ({mode}, {fixed}): {exc}"[:3000])

        run()

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, [op.label for op in operations]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # 1. As generated: ids are random, so mostly the 404s (and 400s, 401s) of every route.
    for operation in operations:
        for mode in modes:
            if operation.label == "POST /v1/fetch" and mode == GenerationMode.POSITIVE:
                # Valid bodies load arbitrary URLs in a browser, and its 501 (`json`), 502 and 504 are
                # the contract's answers: tests/test_fetch.py covers them. Invalid ones are fuzzed.
                continue
            creates = operation.label == "POST /v1/sessions" and mode == GenerationMode.POSITIVE
            fuzz(operation, mode, CREATES if creates else EXAMPLES)
    # 2. On a running session and an ended one, so the routes get past their lookups.
    running = httpx.post(f"{fuzz_server.url}/v1/sessions", json={"keepAlive": True}, headers=headers)
    ended = httpx.post(f"{fuzz_server.url}/v1/sessions", json={}, headers=headers)
    assert running.status_code == ended.status_code == 201, (running.text, ended.text)
    release(ended.json()["id"])
    project_id = running.json()["projectId"]
    for session_id in (running.json()["id"], ended.json()["id"]):
        for operation in operations:
            if operation.label == "POST /v1/sessions/{id}":
                continue  # releasing the running session would end this pass's subject
            fixed: dict[str, dict[str, str]] = {}
            if operation.path.startswith("/v1/sessions/{id}"):
                fixed["path_parameters"] = {"id": session_id}
            elif operation.path == "/v1/downloads":
                fixed["query"] = {"sessionId": session_id}
            elif operation.path.startswith("/v1/projects/{id}"):
                fixed["path_parameters"] = {"id": project_id}
            if fixed:
                for mode in modes:
                    fuzz(operation, mode, DEEP_EXAMPLES, **fixed)
    release(running.json()["id"])
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {examples} requests over {len(operations)} operations in {elapsed:.1f} s: {dict(statuses)}"
    )
    log = fuzz_server.log.read_text(errors="replace")
    assert not failures, "\n\n".join(failures[:10]) + "\n\nserver log:\n" + log[-5000:]
    assert not [status for status in statuses if status >= 500]
    assert elapsed < BUDGET
    assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:4000]
