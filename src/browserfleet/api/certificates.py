"""Routes under /v1/certificates (the contract's §10): a project's CA certificates, which sessions trust
when their create names them in `proxySettings.caCertificates` (docs/certificates.md).

Upload (multipart `file`, PEM or DER, one CA certificate) → 200 {id, createdAt, updatedAt, projectId};
list (a bare array, newest first), retrieve, delete (204, soft: a running session keeps trusting it).
Another project's certificate is a 404 like an unknown one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel

from browserfleet.api import schemas
from browserfleet.api.context import caller, owned, services
from browserfleet.api.files import read_file_field
from browserfleet.api.openapi import operation
from browserfleet.artifacts import certificates
from browserfleet.errors import NotFound
from browserfleet.store.models import Certificate

routes = web.RouteTableDef()

FORM = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}


class CertificateOut(BaseModel):
    id: str
    createdAt: schemas.Timestamp
    updatedAt: schemas.Timestamp
    projectId: str


def certificate_json(row: Certificate) -> dict[str, object]:
    return CertificateOut(
        id=row.id, createdAt=row.created_at, updatedAt=row.updated_at, projectId=row.project_id
    ).model_dump(mode="json")


@routes.post("/v1/certificates")
@operation("Upload a CA certificate", {200: CertificateOut}, multipart=FORM)
async def create_certificate(request: web.Request) -> web.Response:
    project = await caller(request)
    _name, data = await read_file_field(
        request,
        "the certificate",
        certificates.MAX_BYTES,
        f"The file is over {certificates.MAX_BYTES // 1024} KiB: not one certificate",
    )
    parsed = certificates.parse(data)
    now = datetime.now(UTC)
    row = Certificate(
        id=str(uuid.uuid4()),
        project_id=project.id,
        pem=parsed.pem,
        subject=parsed.subject,
        sha256=parsed.sha256,
        created_at=now,
        updated_at=now,
    )
    await services(request).store.add_resource(row)
    return web.json_response(certificate_json(row))


@routes.get("/v1/certificates")
@operation("List CA certificates", {200: list[CertificateOut]})
async def list_certificates(request: web.Request) -> web.Response:
    project = await caller(request)
    rows = await services(request).store.resources(Certificate, project.id)
    return web.json_response([certificate_json(row) for row in rows])


@routes.get("/v1/certificates/{id}")
@operation("Get a CA certificate", {200: CertificateOut})
async def get_certificate(request: web.Request) -> web.Response:
    return web.json_response(certificate_json(await owned(request, Certificate, "Certificate")))


@routes.delete("/v1/certificates/{id}")
@operation("Delete a CA certificate", {204: None})
async def delete_certificate(request: web.Request) -> web.Response:
    row = await owned(request, Certificate, "Certificate")
    store = services(request).store
    deleted = await store.delete_resource(Certificate, row.id, row.project_id, datetime.now(UTC))
    if not deleted:  # deleted meanwhile by another request
        raise NotFound(f"Certificate {row.id} not found")
    return web.Response(status=204)
