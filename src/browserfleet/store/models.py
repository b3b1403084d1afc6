"""ORM models. Timestamps are timezone-aware UTC datetimes.

The column types keep one behaviour on SQLite and PostgreSQL: times are stored as UTC whatever offset
they come with, and free text (`StoredText`) that PostgreSQL cannot hold (NUL) is made storable there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back aware datetimes (SQLite forgets the zone).

    A time with another offset is converted first: SQLite would keep its wall-clock digits and drop the
    offset (PostgreSQL converts); a naive one is taken as UTC, as stored times are."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class StoredText(TypeDecorator[str]):
    """Text from outside (names, page titles, URLs, reasons). PostgreSQL's text holds no NUL character:
    there, a NUL is stored (and looked up) as U+FFFD, where it would fail the whole write. SQLite
    stores it as it is. (The API refuses NUL in what clients send; this covers what pages and
    operators hand in.)"""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is not None and dialect.name == "postgresql" and "\x00" in value:
            return value.replace("\x00", "\ufffd")
        return value


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(StoredText)  # TEXT on PostgreSQL (migration 0005), as on SQLite
    owner_id: Mapped[str] = mapped_column(String(64))
    default_timeout: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(BigInteger)  # BIGINT on PostgreSQL (0005): SQLite's range
    # Session creations allowed per rolling 60 s (None: no such limit, the default).
    creations_per_minute: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    # sha256 hex of the key: keys are 256-bit random tokens, so a fast hash is enough at rest.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(StoredText, default="")  # TEXT on PostgreSQL (migration 0005)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(StoredText, nullable=True)
    keep_alive: Mapped[bool] = mapped_column(Boolean, default=False)
    region: Mapped[str] = mapped_column(String(32))
    context_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The create body as received, for settings later issues implement.
    create_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    proxy_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    avg_cpu_usage: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_usage: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Where the browser runs, so a restarted server can find and kill it.
    browser_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    browser_profile: Mapped[str | None] = mapped_column(StoredText, nullable=True)

    __table_args__ = (
        Index("ix_sessions_project_created", "project_id", "created_at"),
        Index("ix_sessions_project_status_created", "project_id", "status", "created_at"),
    )


class MetadataLeaf(Base):
    """One string value in a session's userMetadata, by its key path: what `q` queries use, indexed,
    so a query is a lookup and not a JSON scan of every session (same on SQLite and PostgreSQL)."""

    __tablename__ = "session_metadata"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    # The JSON array of keys, e.g. ["order","status"].
    path: Mapped[str] = mapped_column(StoredText, primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36))
    value: Mapped[str] = mapped_column(StoredText)

    __table_args__ = (Index("ix_session_metadata_lookup", "project_id", "path", "value"),)


def metadata_leaves(metadata: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(path, value) for every string in the metadata, however deep; numbers, booleans and arrays are not
    queryable (as on Browserbase), so they have no leaf."""
    import json

    leaves: list[tuple[str, str]] = []

    def walk(node: dict[str, Any], path: list[str]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, [*path, key])
            elif isinstance(value, str):
                leaves.append((json.dumps([*path, key], ensure_ascii=False), value))

    walk(metadata or {}, [])
    return leaves


class Download(Base):
    """A file a session's browser downloaded, stored under the session's artifacts (`stored_name`)."""

    __tablename__ = "downloads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(StoredText)  # as the page named it
    stored_name: Mapped[str] = mapped_column(StoredText)  # name-<unix ms>.ext, its name in the zip
    mime_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 hex
    url: Mapped[str] = mapped_column(StoredText, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionPage(Base):
    """One tab a session opened, in the order it opened (`page_index` is the contract's pageId), with
    the state of its recording."""

    __tablename__ = "session_pages"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    page_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(StoredText, default="")
    title: Mapped[str] = mapped_column(StoredText, default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Recording: OFF, RECORDING, ENCODING, READY, EMPTY (no frame) or FAILED.
    recording: Mapped[str] = mapped_column(String(16), default="OFF")
    frame_count: Mapped[int] = mapped_column(Integer, default=0)
    start_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    end_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # MP4 export: NOT_REQUESTED, PENDING, COMPLETED or FAILED.
    mp4_status: Mapped[str] = mapped_column(String(16), default="NOT_REQUESTED")
    mp4_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SessionSample(Base):
    """CPU and memory of a session's whole browser process tree at one moment."""

    __tablename__ = "session_samples"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    cpu_percent: Mapped[float] = mapped_column(Float)  # of one core, over the interval before `at`
    memory_bytes: Mapped[int] = mapped_column(BigInteger)  # PSS


class ServerSecret(Base):
    """Server-wide secrets (e.g. the key that signs connect tokens), shared by gateway replicas."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(StoredText)


class BrowserContext(Base):
    """A context (`/v1/contexts`): a saved Chromium profile. Its archive (encrypted) is kept by the
    artifact storage under `archive_key`; none until a session first persists it."""

    __tablename__ = "contexts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str | None] = mapped_column(StoredText, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    archive_key: Mapped[str | None] = mapped_column(StoredText, nullable=True)
    archive_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    archive_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # of the stored bytes
    # The running session persisting into it, if any (two may not: the second create is a 409).
    persisting_session: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Extension(Base):
    """An uploaded extension (`/v1/extensions`): its zip is kept by the artifact storage."""

    __tablename__ = "extensions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    file_name: Mapped[str] = mapped_column(StoredText)
    name: Mapped[str] = mapped_column(StoredText, default="")  # manifest.json's
    version: Mapped[str] = mapped_column(StoredText, default="")
    archive_key: Mapped[str] = mapped_column(StoredText)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Certificate(Base):
    """A CA certificate (`/v1/certificates`) sessions may be told to trust (PEM text)."""

    __tablename__ = "certificates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    pem: Mapped[str] = mapped_column(StoredText)
    subject: Mapped[str] = mapped_column(StoredText, default="")
    sha256: Mapped[str] = mapped_column(String(64))  # of the DER
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
