"""Request validation (pydantic) and response shapes (camelCase, ISO-8601 `Z` timestamps)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from browserfleet.store.models import Project, Session

Region = Literal["us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1"]
Status = Literal["PENDING", "RUNNING", "ERROR", "TIMED_OUT", "COMPLETED"]
METADATA_LIMIT = 512


class _Open(BaseModel):
    # Unknown keys are accepted and kept (clients send fields from newer or older SDKs).
    model_config = ConfigDict(extra="allow")


class ContextRef(_Open):
    id: str
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
    allowedDomains: list[str] | None = None
    ignoreCertificateErrors: bool | None = None
    fingerprint: dict[str, Any] | None = None


class CreateSession(_Open):
    projectId: str | None = None
    extensionId: str | None = None
    browserSettings: BrowserSettings | None = None
    timeout: int | None = Field(default=None, ge=60, le=21600)
    keepAlive: bool | None = None
    proxies: bool | list[ProxyEntry] | None = None
    proxySettings: dict[str, Any] | None = None
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


class UpdateSession(_Open):
    status: Literal["REQUEST_RELEASE"]
    projectId: str | None = None


class ListSessions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Status | None = None
    q: str | None = None


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def session_json(row: Session) -> dict[str, Any]:
    return {
        "id": row.id,
        "createdAt": timestamp(row.created_at),
        "updatedAt": timestamp(row.updated_at),
        "projectId": row.project_id,
        "startedAt": timestamp(row.started_at),
        "endedAt": timestamp(row.ended_at),
        "expiresAt": timestamp(row.expires_at),
        "status": row.status,
        "proxyBytes": row.proxy_bytes,
        "keepAlive": row.keep_alive,
        "region": row.region,
        "contextId": row.context_id,
        "userMetadata": row.user_metadata,
        "avgCpuUsage": row.avg_cpu_usage,
        "memoryUsage": row.memory_usage,
    }


def project_json(row: Project) -> dict[str, Any]:
    return {
        "id": row.id,
        "createdAt": timestamp(row.created_at),
        "updatedAt": timestamp(row.updated_at),
        "name": row.name,
        "ownerId": row.owner_id,
        "defaultTimeout": row.default_timeout,
        "concurrency": row.concurrency,
    }
