"""Every query browserfleet makes. Callers get detached ORM rows back, never a SQL handle."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import defer
from sqlalchemy.sql import ColumnElement

from browserfleet.store import db
from browserfleet.store.models import (
    ApiKey,
    BrowserContext,
    Certificate,
    Download,
    Extension,
    MetadataLeaf,
    Project,
    ServerSecret,
    Session,
    SessionPage,
    SessionSample,
    metadata_leaves,
)

ENDED = ("COMPLETED", "ERROR", "TIMED_OUT")
R = TypeVar("R", BrowserContext, Extension, Certificate)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = db.sessionmaker(engine)

    @classmethod
    async def open(cls, url: str) -> Store:
        engine = db.create_engine(url)
        await db.migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- server secrets --------------------------------------------------------------------------

    async def secret(self, name: str, make: Any) -> str:
        """The named secret, created with `make()` the first time it is asked for."""
        async with self._sessions.begin() as s:
            row = await s.get(ServerSecret, name)
            if row is None:
                row = ServerSecret(name=name, value=make())
                s.add(row)
            return row.value

    # -- projects and keys -----------------------------------------------------------------------

    async def add_project(self, project: Project) -> Project:
        async with self._sessions.begin() as s:
            s.add(project)
        return project

    async def project(self, project_id: str) -> Project | None:
        async with self._sessions() as s:
            return await s.get(Project, project_id)

    async def projects(self) -> Sequence[Project]:
        async with self._sessions() as s:
            return (await s.scalars(select(Project).order_by(Project.created_at))).all()

    async def update_project(self, project_id: str, **fields: Any) -> Project | None:
        async with self._sessions.begin() as s:
            project = await s.get(Project, project_id)
            if project is None:
                return None
            for name, value in fields.items():
                setattr(project, name, value)
            return project

    async def add_key(self, key: ApiKey) -> None:
        async with self._sessions.begin() as s:
            s.add(key)

    async def key(self, key_hash: str) -> ApiKey | None:
        async with self._sessions() as s:
            return await s.get(ApiKey, key_hash)

    async def keys(self, project_id: str | None = None) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if project_id:
            query = query.where(ApiKey.project_id == project_id)
        async with self._sessions() as s:
            return (await s.scalars(query)).all()

    async def revoke_key(self, key_hash: str, when: datetime) -> bool:
        async with self._sessions.begin() as s:
            result = await s.execute(
                update(ApiKey)
                .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
                .values(revoked_at=when)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def keys_with_prefix(self, prefix: str) -> Sequence[ApiKey]:
        async with self._sessions() as s:
            return (await s.scalars(select(ApiKey).where(ApiKey.prefix == prefix))).all()

    # -- sessions --------------------------------------------------------------------------------

    async def add_session(self, session: Session) -> None:
        async with self._sessions.begin() as s:
            s.add(session)
            await s.flush()  # the session row first: its leaves reference it
            s.add_all(
                MetadataLeaf(session_id=session.id, project_id=session.project_id, path=path, value=value)
                for path, value in metadata_leaves(session.user_metadata)
            )

    async def update_session(self, session_id: str, **fields: Any) -> None:
        async with self._sessions.begin() as s:
            await s.execute(update(Session).where(Session.id == session_id).values(**fields))

    async def end_session(self, session_id: str, status: str, when: datetime, reason: str) -> bool:
        """Mark a session ended unless it already is; True when this call ended it."""
        async with self._sessions.begin() as s:
            result = await s.execute(
                update(Session)
                .where(Session.id == session_id, Session.status.not_in(ENDED))
                .values(status=status, ended_at=when, updated_at=when, end_reason=reason)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def session(self, session_id: str, project_id: str | None = None) -> Session | None:
        async with self._sessions() as s:
            row = await s.get(Session, session_id)
        if row is None or (project_id is not None and row.project_id != project_id):
            return None
        return row

    async def sessions(
        self,
        project_id: str,
        status: str | None = None,
        metadata: tuple[tuple[str, ...], str] | None = None,
    ) -> Sequence[Session]:
        if metadata:
            keys, value = metadata
            # Driven from the indexed leaves, which carry the project: with the sessions' own project
            # index in play, SQLite preferred walking every session of the project in created_at order.
            query = (
                select(Session)
                .join(MetadataLeaf, MetadataLeaf.session_id == Session.id)
                .where(
                    MetadataLeaf.project_id == project_id,
                    MetadataLeaf.path == json.dumps(list(keys), ensure_ascii=False),
                    MetadataLeaf.value == value,
                )
            )
        else:
            query = select(Session).where(Session.project_id == project_id)
        if status:
            query = query.where(Session.status == status)
        # Lists never show the create body or where the browser ran: skip loading them.
        query = query.order_by(Session.created_at.desc()).options(
            defer(Session.create_params), defer(Session.browser_profile), defer(Session.end_reason)
        )
        async with self._sessions() as s:
            return (await s.scalars(query)).all()

    async def live_sessions(self) -> Sequence[Session]:
        """Sessions not ended: after a restart these are the ones whose browsers must be reaped."""
        async with self._sessions() as s:
            return (await s.scalars(select(Session).where(Session.status.not_in(ENDED)))).all()

    async def browser_minutes(self, project_id: str, now: datetime) -> int:
        """Billed like Browserbase: each session's run time rounded up to whole minutes, at least one."""
        query = select(Session.started_at, Session.ended_at).where(Session.project_id == project_id)
        total = 0
        async with self._sessions() as s:
            for started, ended in (await s.execute(query)).all():
                seconds = ((ended or now) - started).total_seconds()
                total += max(1, math.ceil(seconds / 60))
        return total

    async def proxy_bytes(self, project_id: str) -> int:
        query = select(func.coalesce(func.sum(Session.proxy_bytes), 0)).where(
            Session.project_id == project_id
        )
        async with self._sessions() as s:
            return int((await s.execute(query)).scalar_one())

    # -- downloads -------------------------------------------------------------------------------

    async def add_download(self, download: Download) -> None:
        async with self._sessions.begin() as s:
            s.add(download)

    async def downloads(
        self,
        session_id: str,
        filters: list[Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[Sequence[Download], int]:
        """A session's downloads, oldest first, and how many match in all."""
        where = [Download.session_id == session_id, *(filters or [])]
        query = select(Download).where(*where).order_by(Download.created_at, Download.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        async with self._sessions() as s:
            total = (await s.execute(select(func.count()).select_from(Download).where(*where))).scalar_one()
            return (await s.scalars(query)).all(), int(total)

    async def download(self, download_id: str) -> Download | None:
        async with self._sessions() as s:
            return await s.get(Download, download_id)

    async def delete_downloads(self, session_id: str, download_id: str | None = None) -> list[str]:
        """Forget a session's downloads (or one); the stored names, for the caller to remove."""
        where = [Download.session_id == session_id]
        if download_id is not None:
            where.append(Download.id == download_id)
        async with self._sessions.begin() as s:
            names = (await s.scalars(select(Download.stored_name).where(*where))).all()
            await s.execute(delete(Download).where(*where))
        return list(names)

    # -- pages and their recordings --------------------------------------------------------------

    async def add_page(self, page: SessionPage) -> None:
        async with self._sessions.begin() as s:
            s.add(page)

    async def update_page(self, session_id: str, page_index: int, **fields: Any) -> None:
        async with self._sessions.begin() as s:
            await s.execute(
                update(SessionPage)
                .where(SessionPage.session_id == session_id, SessionPage.page_index == page_index)
                .values(**fields)
            )

    async def page(self, session_id: str, page_index: int) -> SessionPage | None:
        async with self._sessions() as s:
            return await s.get(SessionPage, (session_id, page_index))

    async def pages_to_finish(self) -> Sequence[SessionPage]:
        """Tabs of ended sessions whose video or MP4 is not done: what a restarted server resumes."""
        query = (
            select(SessionPage)
            .join(Session, Session.id == SessionPage.session_id)
            .where(
                Session.status.in_(ENDED),
                (SessionPage.recording.in_(("RECORDING", "ENCODING")))
                | (SessionPage.mp4_status == "PENDING"),
            )
        )
        async with self._sessions() as s:
            return (await s.scalars(query)).all()

    async def pages(self, session_id: str) -> Sequence[SessionPage]:
        async with self._sessions() as s:
            query = select(SessionPage).where(SessionPage.session_id == session_id)
            return (await s.scalars(query.order_by(SessionPage.page_index))).all()

    # -- CPU and memory samples ------------------------------------------------------------------

    async def add_samples(
        self,
        samples: Sequence[SessionSample],
        totals: dict[str, tuple[int, int]],
        proxy_bytes: dict[str, int] | None = None,
    ) -> None:
        """One pass of samples, and each session's (avgCpuUsage, memoryUsage) and proxyBytes so far: one
        transaction."""
        async with self._sessions.begin() as s:
            s.add_all(samples)
            for session_id, (cpu, memory) in totals.items():
                await s.execute(
                    update(Session)
                    .where(Session.id == session_id)
                    .values(avg_cpu_usage=cpu, memory_usage=memory)
                )
            for session_id, count in (proxy_bytes or {}).items():
                await s.execute(update(Session).where(Session.id == session_id).values(proxy_bytes=count))

    async def samples(self, session_id: str) -> Sequence[SessionSample]:
        async with self._sessions() as s:
            query = select(SessionSample).where(SessionSample.session_id == session_id)
            return (await s.scalars(query.order_by(SessionSample.at))).all()

    # -- a project's resources: contexts, extensions, certificates (soft-deleted) ----------------

    async def add_resource(self, row: BrowserContext | Extension | Certificate) -> None:
        async with self._sessions.begin() as s:
            s.add(row)

    async def resource(self, kind: type[R], resource_id: str, project_id: str | None = None) -> R | None:
        """The live (not deleted) resource, in `project_id` if given."""
        query = select(kind).where(kind.id == resource_id, kind.deleted_at.is_(None))
        if project_id is not None:
            query = query.where(kind.project_id == project_id)
        async with self._sessions() as s:
            return (await s.execute(query)).scalar_one_or_none()

    async def resources(self, kind: type[R], project_id: str) -> Sequence[R]:
        query = (
            select(kind)
            .where(kind.project_id == project_id, kind.deleted_at.is_(None))
            .order_by(kind.created_at.desc())
        )
        async with self._sessions() as s:
            return (await s.execute(query)).scalars().all()

    async def update_resource(
        self, kind: type[R], resource_id: str, when: ColumnElement[bool] | None = None, **fields: Any
    ) -> bool:
        """Set `fields` on the live resource where `when` also holds: whether a row changed (a
        compare-and-set when `when` is given). `updated_at` changes only if `fields` names it (a context's
        persist claim must not move its `updatedAt`)."""
        query = update(kind).where(kind.id == resource_id, kind.deleted_at.is_(None))
        if when is not None:
            query = query.where(when)
        async with self._sessions.begin() as s:
            result = await s.execute(query.values(**fields))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete_resource(self, kind: type[R], resource_id: str, project_id: str, when: datetime) -> bool:
        """Mark it deleted: false if there was no live one in the project."""
        query = (
            update(kind)
            .where(kind.id == resource_id, kind.project_id == project_id, kind.deleted_at.is_(None))
            .values(deleted_at=when, updated_at=when)
        )
        async with self._sessions.begin() as s:
            result = await s.execute(query)
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def context_named(self, project_id: str, name: str) -> BrowserContext | None:
        """The project's live context of that name, compared case-insensitively."""
        named = await self._contexts_named(project_id, name)
        return named[0] if named else None

    # -- contexts --------------------------------------------------------------------------------

    async def _contexts_named(self, project_id: str, name: str) -> list[BrowserContext]:
        # Compared in Python: SQLite's lower() folds ASCII only, PostgreSQL's all of Unicode. The
        # database narrows by length (characters on both) through the project index.
        query = select(BrowserContext).where(
            BrowserContext.project_id == project_id,
            BrowserContext.deleted_at.is_(None),
            func.length(BrowserContext.name) == len(name),
        )
        async with self._sessions() as s:
            rows = (await s.execute(query.order_by(BrowserContext.created_at))).scalars().all()
        return [row for row in rows if row.name is not None and row.name.lower() == name.lower()]

    async def add_context(self, row: BrowserContext) -> BrowserContext | None:
        """Add a context unless its project has a live one of the same name (case-insensitively): the
        one it clashes with, or None once it is added.

        Race-free without a unique index: each create adds its row, then looks, and one that sees
        another live row of its name removes its own. Of creates racing with one name at most one
        survives (in a close race possibly none: both answer the clash, never a duplicate)."""
        async with self._sessions.begin() as s:
            s.add(row)
        if row.name is None:
            return None
        clash = next(
            (c for c in await self._contexts_named(row.project_id, row.name) if c.id != row.id), None
        )
        if clash is not None:
            async with self._sessions.begin() as s:
                await s.execute(delete(BrowserContext).where(BrowserContext.id == row.id))
        return clash

    async def delete_context(
        self, context_id: str, project_id: str, when: datetime
    ) -> tuple[bool, str | None]:
        """Mark a live context deleted: (whether the project had it, the key of its archive, if any).

        One statement: a save switching the archive at the same moment either lands first (its key is
        the one returned) or finds the context deleted (and removes what it wrote)."""
        query = (
            update(BrowserContext)
            .where(
                BrowserContext.id == context_id,
                BrowserContext.project_id == project_id,
                BrowserContext.deleted_at.is_(None),
            )
            .values(deleted_at=when, updated_at=when)
            .returning(BrowserContext.archive_key)
        )
        async with self._sessions.begin() as s:
            found = (await s.execute(query)).first()
        return (found is not None, found[0] if found is not None else None)

    async def release_context_claims(self) -> int:
        """Free every context's persist claim; how many were held. At start-up, when no session runs."""
        query = (
            update(BrowserContext)
            .where(BrowserContext.persisting_session.is_not(None))
            .values(persisting_session=None)
        )
        async with self._sessions.begin() as s:
            result = await s.execute(query)
            return int(result.rowcount)  # type: ignore[attr-defined]
