"""CA certificates (`/v1/certificates`) and `proxySettings.caCertificates`: the resource's shapes and
errors, what an upload must be (one valid CA certificate, PEM or DER), ids checked at create, and real
browsers that trust an uploaded CA for a local TLS server while one without it does not.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from browserbase import NotFoundError
from conftest import Server

from harness import tls


def upload(server: Server, data: bytes, api_key: str | None = None, name: str = "ca.pem") -> httpx.Response:
    with server.http(api_key or server.api_key) as http:
        return http.post("/v1/certificates", files={"file": (name, data)})


def test_upload_list_retrieve_and_delete_in_the_contracts_shapes(server: Server) -> None:
    bb = server.sdk()  # strict response validation
    ca = tls.make_ca("shapes CA")
    pem = bb.certificates.create(file=("ca.pem", ca.pem))
    der = bb.certificates.create(file=("ca.der", ca.der))
    assert pem.project_id == der.project_id and pem.id != der.id
    listed = [c.id for c in bb.certificates.list()]
    assert listed.index(der.id) < listed.index(pem.id)  # newest first
    assert bb.certificates.retrieve(pem.id).created_at == pem.created_at
    with server.http(server.api_key) as http:
        raw = http.get(f"/v1/certificates/{pem.id}").json()
        assert set(raw) == {"id", "createdAt", "updatedAt", "projectId"} and raw["createdAt"].endswith("Z")
        assert isinstance(http.get("/v1/certificates").json(), list)  # a bare array
        deleted = http.delete(f"/v1/certificates/{pem.id}")
        assert deleted.status_code == 204 and deleted.content == b""
        for answer in (http.get(f"/v1/certificates/{pem.id}"), http.delete(f"/v1/certificates/{pem.id}")):
            assert answer.status_code == 404 and "not found" in answer.json()["message"]
        assert http.get("/v1/certificates/not-a-uuid").status_code == 404
    assert pem.id not in [c.id for c in bb.certificates.list()]
    bb.certificates.delete(der.id)


def test_another_projects_certificate_is_not_found(server: Server) -> None:
    _project, other_key = server.new_project("certificates-other")
    theirs = upload(server, tls.make_ca("their CA").pem, other_key).json()["id"]
    bb = server.sdk()
    with pytest.raises(NotFoundError):
        bb.certificates.retrieve(theirs)
    with pytest.raises(NotFoundError):
        bb.certificates.delete(theirs)
    assert theirs not in [c.id for c in bb.certificates.list()]
    with server.http(server.api_key) as http:
        refused = http.post("/v1/sessions", json={"proxySettings": {"caCertificates": [theirs]}})
    assert refused.status_code == 404 and theirs in refused.json()["message"]
    assert server.sdk(other_key).certificates.retrieve(theirs).id == theirs  # still there for its owner


def _two() -> bytes:
    return tls.make_ca("one").pem + tls.make_ca("two").pem


@pytest.mark.parametrize(
    "make, status, why",
    [
        (lambda: b"hello, I am not a certificate", 400, "not an X.509 certificate (PEM or DER)"),
        (lambda: b"", 400, "The file is empty"),
        (
            lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            400,
            "no readable certificate",
        ),
        (lambda: tls.make_ca(ca=False).pem, 400, "not a CA certificate (basicConstraints CA:FALSE"),
        (lambda: tls.make_ca(ca=None).pem, 400, "it has no basicConstraints extension"),
        (lambda: tls.issue(tls.make_ca(), ["site.test"]).pem, 400, "not a CA certificate"),
        (lambda: tls.make_ca().key_pem, 400, "holds a private key"),
        (lambda: tls.make_ca().pem + tls.make_ca().key_pem, 400, "holds a private key"),
        (_two, 400, "holds 2 certificates"),
        (lambda: tls.make_ca(days=-1).pem, 400, "expired on"),
        (lambda: b"A" * 70_000, 413, "over 64 KiB"),
    ],
)
def test_an_upload_that_is_not_one_valid_ca_certificate_is_refused_saying_which(
    server: Server, make: Any, status: int, why: str
) -> None:
    response = upload(server, make())
    assert response.status_code == status, response.text
    assert why in response.json()["message"]


def test_a_body_that_is_not_a_multipart_file_is_a_400(server: Server) -> None:
    with server.http(server.api_key) as http:
        not_multipart = http.post("/v1/certificates", content=tls.make_ca().pem)
        no_file = http.post("/v1/certificates", files={"other": ("ca.pem", tls.make_ca().pem)})
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.json()["message"]
    assert no_file.status_code == 400 and "Missing the 'file' field" in no_file.json()["message"]


def test_unknown_or_deleted_certificates_are_a_404_at_create_before_any_browser(server: Server) -> None:
    gone = upload(server, tls.make_ca().pem).json()["id"]
    with server.http(server.api_key) as http:
        assert http.delete(f"/v1/certificates/{gone}").status_code == 204
        running = len(http.get("/v1/sessions", params={"status": "RUNNING"}).json())
        for ids in (["182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"], ["not-a-uuid"], [gone]):
            response = http.post("/v1/sessions", json={"proxySettings": {"caCertificates": ids}})
            assert response.status_code == 404, response.text
            assert f"Certificate {ids[0]} not found" in response.json()["message"]
        too_many = http.post("/v1/sessions", json={"proxySettings": {"caCertificates": [gone] * 33}})
        assert too_many.status_code == 400
        assert len(http.get("/v1/sessions", params={"status": "RUNNING"}).json()) == running


def test_a_session_trusts_an_uploaded_ca_and_one_without_it_does_not(server: Server, playwright: Any) -> None:
    ca = tls.make_ca("local TLS CA")
    with tls.serving(tls.issue(ca, ["127.0.0.1"])) as port:
        bb = server.sdk()
        certificate = bb.certificates.create(file=("ca.der", ca.der))
        trusting = bb.sessions.create(proxy_settings={"ca_certificates": [certificate.id]})
        plain = bb.sessions.create()
        bb.certificates.delete(certificate.id)  # a running session keeps trusting it
        url = f"https://127.0.0.1:{port}/"

        browser = playwright.chromium.connect_over_cdp(trusting.connect_url)
        page = browser.contexts[0].pages[0]
        response = page.goto(url)
        assert response is not None and response.status == 200 and page.title() == "Secure page"
        # A new tab, and a fetch from the page, trust it too (the browser's store, not a tab's setting).
        tab = browser.contexts[0].new_page()
        assert tab.goto(url) is not None and tab.evaluate(f"fetch('{url}').then(r => r.status)") == 200
        browser.close()

        browser = playwright.chromium.connect_over_cdp(plain.connect_url)
        with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
            browser.contexts[0].pages[0].goto(url)
        browser.close()
    stored = server.read_store(lambda store: store.session(trusting.id))
    assert stored is not None and stored.create_params["applied"]["ca_certificates"] == [certificate.id]
