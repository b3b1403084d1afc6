"""Contexts (`/v1/contexts`): saved Chromium profiles that a session starts from and, with `persist: true`,
saves back into when it ends.

`Contexts` plays the three parts a session's life needs of them:

* **gate** (a `SessionGate`, before a browser is taken): the context must be the project's and live, or
  the create is a 404; a create with `persist: true` claims it (`contexts.persisting_session`, a
  compare-and-set), and another while that session runs is a 409. Reading a context is never
  refused. A create just after a persisting session ended waits (at most `SETTLE_TIMEOUT`) for that
  session's save, so it starts from what the session left.
* **provisioner step** (`provision`, in the cold launch a context forces): the sealed archive is read,
  checked against its checksum, opened (`sealing`) and unpacked (`profile_archive`) into the fresh
  profile's user-data, which is handed to the browser's uid; its cookies are left for
  `browsers.cookies.restore`, which sets them before any client sees the browser.
* **observer** (`SessionObserver.ended`; it must be the manager's last observer, since it shuts the
  browser down and the others need it running): cookies read over CDP, `Browser.close`, the exit
  awaited, the profile packed, sealed and stored under a new key, read back and opened, and only then
  the row switched to it (compare-and-set on the claim) and the old archive deleted.

Guarantees: a save that fails anywhere, or a crash at any point, leaves the row on the last good copy
(`Blobs.put` is atomic and the row changes only once the new copy is proven to open). A browser that
did not shut down cleanly (it crashed, or did not exit in time) is not saved. The claim is freed when
the session ends whatever happened, and every claim at server start (`reconcile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from browserfleet.artifacts.profile_archive import ArchiveError, TooBig, pack, unpack
from browserfleet.artifacts.sealing import Sealer, SealError, derive_key
from browserfleet.artifacts.storage import Blobs
from browserfleet.browsers import cookies as saved_cookies
from browserfleet.browsers.cdp import CdpConnection
from browserfleet.browsers.launcher import Browser
from browserfleet.browsers.provision import FreshProfile
from browserfleet.browsers.spec import LaunchSpec
from browserfleet.errors import Conflict, LaunchFailed, NotFound
from browserfleet.sessions.manager import LiveSession, SessionSpec
from browserfleet.store.models import BrowserContext, Project, Session
from browserfleet.store.repo import Store

log = logging.getLogger(__name__)

SECRET_NAME = "context-archives"  # the store's secret the archive key is derived from
SETTLE_TIMEOUT = 30.0  # seconds a create waits for the save of a session that just ended
CLOSE_TIMEOUT = 15.0  # seconds a browser may take to close cleanly when its session ends


@dataclass(eq=False)
class _Claim:
    """A persist claim this server holds for a session: launching, running, or ended and saving."""

    session_id: str
    live: bool = False  # the session started (so once it is not running, its save is under way)
    settled: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Contexts:
    def __init__(self, store: Store, blobs: Blobs, sealer: Sealer, max_bytes: int) -> None:
        self.store = store
        self.blobs = blobs
        self.sealer = sealer
        self.max_bytes = max_bytes  # a profile larger than this is not saved
        # Whether a session runs on this server (the manager's `find`; set once the manager exists).
        self.running: Callable[[str], bool] = lambda _session_id: False
        self._claims: dict[str, _Claim] = {}  # by context id

    @classmethod
    async def open(cls, store: Store, blobs: Blobs, secret: str, max_bytes: int) -> Contexts:
        """With the operator's secret (if any) sealing, and the store's generated one still opening."""
        stored = await store.secret(SECRET_NAME, lambda: secrets.token_urlsafe(32))
        keys = [derive_key(secret)] if secret else []
        return cls(store, blobs, Sealer([*keys, derive_key(stored)]), max_bytes)

    async def reconcile(self) -> int:
        """At start-up, when no session runs: free every claim the last server held."""
        return await self.store.release_context_claims()

    # -- SessionGate -----------------------------------------------------------------------------

    async def admit(self, session_id: str, project: Project, spec: SessionSpec) -> None:
        context_id = spec.context_id
        if context_id is None:
            return
        if await self.store.resource(BrowserContext, context_id, project.id) is None:
            raise NotFound(f"Context {context_id[:100]} not found")
        await self._settle(context_id)
        if not spec.persist_context:
            return
        claimed = await self.store.update_resource(
            BrowserContext,
            context_id,
            when=(BrowserContext.project_id == project.id) & BrowserContext.persisting_session.is_(None),
            persisting_session=session_id,
        )
        if claimed:
            self._claims[context_id] = _Claim(session_id)
            return
        row = await self.store.resource(BrowserContext, context_id, project.id)
        if row is None:
            raise NotFound(f"Context {context_id} not found")
        holder = row.persisting_session
        state = "still running" if holder and self.running(holder) else "starting, or still saving it"
        raise Conflict(
            f"Context {context_id} is being persisted by session {holder}, which is {state}: only one "
            "session at a time may persist a context (one with persist: false may read it meanwhile)"
        )

    async def _settle(self, context_id: str) -> None:
        """Wait for the save of the context by a session that has just ended, if there is one."""
        claim = self._claims.get(context_id)
        if claim is None or not claim.live or self.running(claim.session_id):
            return
        try:
            await asyncio.wait_for(asyncio.shield(claim.settled), SETTLE_TIMEOUT)
        except TimeoutError:
            log.warning("context %s: the save by session %s is taking long", context_id, claim.session_id)

    async def abandoned(self, session_id: str, spec: SessionSpec) -> None:
        if spec.persist_context and spec.context_id is not None:
            await self._release(spec.context_id, session_id)

    async def _release(self, context_id: str, session_id: str) -> None:
        try:
            await self.store.update_resource(
                BrowserContext,
                context_id,
                when=BrowserContext.persisting_session == session_id,
                persisting_session=None,
            )
        finally:
            claim = self._claims.get(context_id)
            if claim is not None and claim.session_id == session_id:
                del self._claims[context_id]
                claim.settled.set_result(None)

    # -- the provisioner's step ------------------------------------------------------------------

    async def provision(self, spec: LaunchSpec, profile: FreshProfile) -> list[str]:
        """Fill a fresh profile with the context's saved one (nothing, if it was never saved)."""
        context_id = spec.context_id
        assert context_id is not None
        row = await self.store.resource(BrowserContext, context_id)
        if row is None:
            raise NotFound(f"Context {context_id} not found")
        if row.archive_key is None:
            return []
        started = time.perf_counter()
        try:
            sealed = await self.blobs.get(row.archive_key)
        except KeyError:
            if await self.store.resource(BrowserContext, context_id) is None:
                raise NotFound(f"Context {context_id} not found") from None  # deleted meanwhile
            raise LaunchFailed(
                "the context's saved profile is missing from storage", f"context {context_id}: no blob"
            ) from None
        cookies = await asyncio.to_thread(self._restore, context_id, sealed, row.archive_sha256, profile)
        if cookies:
            saved_cookies.offer(profile, cookies)
        log.info(
            "context %s: restored %d bytes in %.0f ms",
            context_id,
            len(sealed),
            (time.perf_counter() - started) * 1000,
        )
        return []

    def _restore(
        self, context_id: str, sealed: bytes, digest: str | None, profile: FreshProfile
    ) -> list[dict[str, Any]] | None:
        if digest is not None and hashlib.sha256(sealed).hexdigest() != digest:
            raise LaunchFailed("the context's saved profile is damaged", f"context {context_id}: checksum")
        try:
            plain = self.sealer.open(sealed, context_id)
            cookies = unpack(plain, profile.user_data)
        except (SealError, ArchiveError) as exc:
            raise LaunchFailed("the context's saved profile cannot be read", f"{context_id}: {exc}") from exc
        profile.give(profile.user_data)
        return cookies

    # -- SessionObserver -------------------------------------------------------------------------

    def started(self, live: LiveSession, row: Session) -> None:
        claim = self._claims.get(live.spec.context_id or "")
        if live.spec.persist_context and claim is not None and claim.session_id == live.id:
            claim.live = True

    async def ended(self, live: LiveSession, row: Session) -> None:
        context_id = live.spec.context_id
        if not live.spec.persist_context or context_id is None:
            return
        try:
            await self._save(live, context_id)
        except Exception:
            log.exception(
                "session %s: context %s not saved; its last saved copy is kept", live.id, context_id
            )
        finally:
            await self._release(context_id, live.id)

    async def _save(self, live: LiveSession, context_id: str) -> None:
        row = await self.store.resource(BrowserContext, context_id)
        if row is None:
            log.info("session %s: context %s was deleted: nothing saved", live.id, context_id)
            return
        timings: dict[str, float] = {}
        mark = time.perf_counter()
        unclean, cookies = await self._shut_down(live.browser)
        if unclean is not None:
            log.warning(
                "session %s: context %s not saved: %s; its last saved copy is kept",
                live.id,
                context_id,
                unclean,
            )
            return
        timings["close"] = time.perf_counter() - mark
        mark = time.perf_counter()
        try:
            plain, skipped = await asyncio.to_thread(
                pack, live.browser.profile_dir / "user-data", cookies, self.max_bytes
            )
        except TooBig:
            log.warning(
                "session %s: context %s not saved: its profile is over %d MB; its last saved copy is kept",
                live.id,
                context_id,
                self.max_bytes // (1024 * 1024),
            )
            return
        if skipped:
            log.warning(
                "session %s: context %s: %d entries of the profile are not plain files or directories and "
                "were left out: %s",
                live.id,
                context_id,
                len(skipped),
                ", ".join(skipped[:5]),
            )
        sealed = await asyncio.to_thread(self.sealer.seal, plain, context_id)
        digest = hashlib.sha256(sealed).hexdigest()
        timings["pack"] = time.perf_counter() - mark
        mark = time.perf_counter()
        key = await self.blobs.put("contexts", sealed)
        try:
            verified = await asyncio.to_thread(
                self._verify, await self.blobs.get(key), digest, plain, context_id
            )
            if not verified:
                raise RuntimeError("the stored copy does not read back as written")
            switched = await self.store.update_resource(
                BrowserContext,
                context_id,
                when=BrowserContext.persisting_session == live.id,
                archive_key=key,
                archive_size=len(sealed),
                archive_sha256=digest,
                persisting_session=None,
                updated_at=datetime.now(UTC),
            )
        except BaseException:
            await asyncio.shield(self.blobs.delete(key))
            raise
        if not switched:
            await self.blobs.delete(key)
            log.info("session %s: context %s was deleted meanwhile: nothing saved", live.id, context_id)
            return
        if row.archive_key is not None:
            await self.blobs.delete(row.archive_key)
        timings["store"] = time.perf_counter() - mark
        log.info(
            "session %s: context %s saved: %d bytes sealed (%s)",
            live.id,
            context_id,
            len(sealed),
            ", ".join(f"{step} {seconds * 1000:.0f} ms" for step, seconds in timings.items()),
        )

    def _verify(self, stored: bytes, digest: str, plain: bytes, context_id: str) -> bool:
        if hashlib.sha256(stored).hexdigest() != digest:
            return False
        try:
            return self.sealer.open(stored, context_id) == plain
        except SealError:
            return False

    async def _shut_down(self, browser: Browser) -> tuple[str | None, list[dict[str, Any]] | None]:
        """Close the browser cleanly, its cookies read first: (None, cookies), or (why not, None).

        A browser that already exited cleanly (a client's `Browser.close`) left its files complete, but
        its in-memory cookies are gone: (None, None)."""
        if not browser.alive:
            code = browser.exited.result()
            return (None, None) if code == 0 else (f"the browser had exited ({code})", None)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                cdp = await CdpConnection.open(browser)
                try:
                    cookies = await saved_cookies.collect(cdp)
                    with contextlib.suppress(Exception):  # the answer races the socket closing
                        await cdp.send("Browser.close")
                finally:
                    await cdp.close()
                code = await asyncio.shield(browser.exited)
        except Exception as exc:
            return f"the browser did not close cleanly ({exc or type(exc).__name__})", None
        return (None, cookies) if code == 0 else (f"the browser exited with {code} as it closed", None)
