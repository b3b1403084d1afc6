"""Request validation (pydantic) and response shapes (camelCase, ISO-8601 `Z` timestamps).

Responses are built through their models (`SessionOut`, `ProjectOut`, ...), and `/openapi.json` is
generated from the same models, so the document and what the routes send cannot drift apart.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from browserfleet.browsers import navigation
from browserfleet.store.models import Project, Session

Region = Literal["us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1"]
Status = Literal["PENDING", "RUNNING", "ERROR", "TIMED_OUT", "COMPLETED"]
METADATA_LIMIT = 512


class _Open(BaseModel):
    # Unknown keys are accepted and kept (clients send fields from newer or older SDKs).
    model_config = ConfigDict(extra="allow")


class ContextRef(_Open):
    id: str = Field(max_length=64)  # the width of sessions.context_id: checked before a browser is taken
    persist: bool = False


class Viewport(_Open):
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)


class Geolocation(_Open):
    country: str = Field(min_length=2, max_length=2)
    state: str | None = None
    city: str | None = None


class ProxyEntry(_Open):
    type: Literal["browserbase", "external", "none"]
    domainPattern: str | None = None
    geolocation: Geolocation | None = None
    server: str | None = None
    username: str | None = None
    password: str | None = None


def _domain(entry: str) -> str:
    navigation.parse_domain(entry)  # ValueError: the entry, and what is wrong with it
    return entry


AllowedDomain = Annotated[str, AfterValidator(_domain)]


class BrowserSettings(_Open):
    context: ContextRef | None = None
    extensionId: str | None = None
    viewport: Viewport | None = None
    blockAds: bool | None = None
    solveCaptchas: bool | None = None
    captchaImageSelector: str | None = None
    captchaInputSelector: str | None = None
    recordSession: bool | None = None
    logSession: bool | None = None
    advancedStealth: bool | None = None
    verified: bool | None = None
    os: Literal["windows", "mac", "linux", "mobile", "tablet"] | None = None
    allowedDomains: list[AllowedDomain] | None = Field(default=None, max_length=navigation.MAX_ENTRIES)
    ignoreCertificateErrors: bool | None = None
    fingerprint: dict[str, Any] | None = None
    # Newer keys of the hosted service (docs/settings.md says what each does here).
    size: Literal["small", "medium", "large"] | None = None
    enablePdfViewer: bool | None = None
    enableNativeSelectPolyfill: bool | None = None
    headful: bool | None = None
    # The hosted service's pre-installed extensions by name, or uploaded extensions by id.
    extensions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=16
    )


class ProxySettings(_Open):
    caCertificates: list[str] | None = Field(default=None, max_length=32)  # ids from /v1/certificates


class CreateSession(_Open):
    projectId: str | None = None
    extensionId: str | None = None
    browserSettings: BrowserSettings | None = None
    timeout: int | None = Field(default=None, ge=60, le=21600)
    keepAlive: bool | None = None
    proxies: bool | list[ProxyEntry] | None = None
    proxySettings: ProxySettings | None = None
    region: Region | None = None
    userMetadata: dict[str, Any] | None = None

    @field_validator("userMetadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            # Counted as JSON.stringify(...).length is: in UTF-16 code units.
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-16-le")) // 2
            if size > METADATA_LIMIT:
                raise ValueError(f"must be at most {METADATA_LIMIT} characters as JSON (got {size})")
        return value


def unknown_keys(model: BaseModel, where: str = "") -> list[str]:
    """The dotted paths of every key a client sent that no model here names (accepted, see `_Open`)."""
    found = [f"{where}{key}" for key in model.model_extra or {}]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, BaseModel):
                path = f"{where}{name}.{i}." if isinstance(value, list) else f"{where}{name}."
                found += unknown_keys(item, path)
    return found


class UpdateSession(_Open):
    status: Literal["REQUEST_RELEASE"]
    projectId: str | None = None


class ListSessions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Status | None = None
    # userMetadata is 512 characters at most: no query that can match any is longer.
    q: str | None = Field(default=None, max_length=1024, description="user_metadata['key']...:'value'")

    @field_validator("q")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# A datetime in, ISO-8601 UTC with milliseconds and a `Z` out.
Timestamp = Annotated[
    datetime,
    PlainSerializer(timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


Uri = Annotated[str, Field(json_schema_extra={"format": "uri"})]


class _Out(BaseModel):
    # Response models: what they name is all that is sent.
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Out):
    """Every error response, in the shape Fastify (and so Browserbase) answers with."""

    statusCode: int = Field(ge=400, le=599)
    error: str
    message: str


class SessionOut(_Out):
    id: str
    createdAt: Timestamp
    updatedAt: Timestamp
    projectId: str
    startedAt: Timestamp
    endedAt: Timestamp | None
    expiresAt: Timestamp
    status: Status
    proxyBytes: int = Field(ge=0)
    keepAlive: bool
    region: Region
    contextId: str | None
    userMetadata: dict[str, Any] | None
    avgCpuUsage: int | None = Field(description="Mean CPU use of the browser, % of one core")
    memoryUsage: int | None = Field(description="Peak memory (PSS) of the browser, bytes")


class RunningSession(SessionOut):
    """A session with what it takes to connect to it (retrieve adds these while it runs)."""

    connectUrl: Uri | None = None
    seleniumRemoteUrl: Uri | None = None
    signingKey: str | None = None


class CreatedSession(SessionOut):
    connectUrl: Uri
    seleniumRemoteUrl: Uri
    signingKey: str


class ProjectOut(_Out):
    id: str
    createdAt: Timestamp
    updatedAt: Timestamp
    name: str
    ownerId: str
    defaultTimeout: int = Field(ge=60, le=21600)
    concurrency: int = Field(ge=1)


class ProjectUsage(_Out):
    browserMinutes: int = Field(ge=0)
    proxyBytes: int = Field(ge=0)


def session_fields(row: Session) -> dict[str, Any]:
    return {
        "id": row.id,
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
        "projectId": row.project_id,
        "startedAt": row.started_at,
        "endedAt": row.ended_at,
        "expiresAt": row.expires_at,
        "status": row.status,
        "proxyBytes": row.proxy_bytes,
        "keepAlive": row.keep_alive,
        "region": row.region,
        "contextId": row.context_id,
        "userMetadata": row.user_metadata,
        "avgCpuUsage": row.avg_cpu_usage,
        "memoryUsage": row.memory_usage,
    }


def session_json(row: Session) -> dict[str, Any]:
    return SessionOut(**session_fields(row)).model_dump(mode="json")


def project_json(row: Project) -> dict[str, Any]:
    return ProjectOut(
        id=row.id,
        createdAt=row.created_at,
        updatedAt=row.updated_at,
        name=row.name,
        ownerId=row.owner_id,
        defaultTimeout=row.default_timeout,
        concurrency=row.concurrency,
    ).model_dump(mode="json")
