"""The composition root: builds the store, runner, session manager, API and gateway into one aiohttp app."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

import uvloop
from aiohttp import web
from rich.console import Console

from browserfleet.api import certificates as certificate_routes
from browserfleet.api import contexts as context_routes
from browserfleet.api import errors
from browserfleet.api import extensions as extension_routes
from browserfleet.api import fetch as fetch_routes
from browserfleet.api import files as file_routes
from browserfleet.api import openapi as openapi_routes
from browserfleet.api import projects as project_routes
from browserfleet.api import replays as replay_routes
from browserfleet.api import sessions as session_routes
from browserfleet.api import unsupported as unsupported_routes
from browserfleet.artifacts.contexts import Contexts
from browserfleet.artifacts.layout import ArtifactRoot
from browserfleet.artifacts.provision import ServerProvisioner
from browserfleet.artifacts.recordings import Recordings
from browserfleet.artifacts.service import Artifacts
from browserfleet.artifacts.storage import LocalBlobs
from browserfleet.bootstrap import bootstrap
from browserfleet.browsers import adblock, cgroups, netns, process, sandbox
from browserfleet.browsers.launcher import Launcher, Walls
from browserfleet.browsers.sandbox import Mode
from browserfleet.cluster.local import LocalRunner
from browserfleet.config import Settings
from browserfleet.gateway import debug as debug_routes
from browserfleet.gateway import inside
from browserfleet.gateway import routes as gateway_routes
from browserfleet.gateway import webdriver as webdriver_routes
from browserfleet.gateway.drivers import Drivers
from browserfleet.gateway.frames import MIB, Budget, Limits
from browserfleet.inspector import live as live_routes
from browserfleet.services import SERVICES, Services
from browserfleet.sessions.manager import SessionManager
from browserfleet.sessions.tokens import SigningKeys, ViewTokens
from browserfleet.store.repo import Store

log = logging.getLogger(__name__)


def walls(settings: Settings) -> tuple[Walls, list[str]]:
    """What will stand around each browser on this host, and the start-up report lines saying so."""
    support = sandbox.probe(settings.sandbox_uid_base)
    mode = support.best
    report: list[str] = []
    refusal: str | None = None
    if mode is Mode.JAILED:
        report.append("sandbox: jailed (own uid, mount/PID/IPC namespaces, Chromium's sandbox)")
    elif mode is Mode.CHROMIUM_SANDBOX:
        report.append(f"sandbox: Chromium's own only ({support.missing()})")
    elif settings.allow_unsandboxed:
        report.append(f"sandbox: OFF, allowed by BROWSERFLEET_ALLOW_UNSANDBOXED ({support.missing()})")
    else:
        refusal = (
            f"browsers cannot be sandboxed on this host ({support.missing()}); set "
            "BROWSERFLEET_ALLOW_UNSANDBOXED=true to run them without a sandbox"
        )
        report.append(f"sandbox: unavailable, so no browser will start: {refusal}")
    hierarchy = cgroups.detect(settings.data_dir) if os.geteuid() == 0 else cgroups.Hierarchy()
    limits = cgroups.Limits(
        memory_bytes=settings.session_memory_mb * 1024 * 1024 or None,
        cpu_cores=settings.session_cpus or None,
        pids=settings.session_pids or None,
    )
    enforced = [
        f"memory {settings.session_memory_mb} MB"
        if "memory" in hierarchy.controllers and limits.memory_bytes
        else "",
        f"cpu {settings.session_cpus:g} cores" if "cpu" in hierarchy.controllers and limits.cpu_cores else "",
        f"pids {settings.session_pids}" if "pids" in hierarchy.controllers and limits.pids else "",
    ]
    limited = ", ".join(e for e in enforced if e) or "none"
    report.append(f"cgroups: {hierarchy.describe()}; per-session limits enforced: {limited}")
    return (
        Walls(
            mode,
            support,
            hierarchy,
            limits,
            settings.sandbox_uid_base,
            settings.sandbox_uid_count,
            refusal,
        ),
        report,
    )


def _private(settings: Settings) -> None:
    """Only the server may read the data dir (its database, secrets, every session's files)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)


async def build_app(settings: Settings, console: Console | None = None) -> web.Application:
    _private(settings)
    process.become_subreaper()
    store = await Store.open(settings.database)
    project, new_key = await bootstrap(store, settings)
    isolate = netns.supported() if settings.isolate_network is None else settings.isolate_network
    if not isolate:
        log.warning("browsers share the host's network: their debugging ports are reachable from this host")
    browser_walls, report = walls(settings)
    for line in report:
        (log.warning if browser_walls.refusal or "OFF" in line else log.info)(line)
    blobs = LocalBlobs(settings.data_dir.resolve() / "blobs")
    blobs.remove_leftovers()
    contexts = await Contexts.open(store, blobs, settings.secret, settings.context_max_mb * 1024 * 1024)
    adblock.configure(settings.filter_list_paths)
    launcher = Launcher(
        settings.chromium_path,
        settings.extra_chromium_args,
        settings.profiles_dir,
        settings.launch_timeout,
        isolate=isolate,
        egress_rules=settings.egress_rules(),
        walls=browser_walls,
        provisioner=ServerProvisioner(store, blobs, contexts),
    )
    pool_size = 0 if browser_walls.refusal else settings.pool_size
    runner = LocalRunner(launcher, pool_size, settings.max_parallel_launches, settings.pool_min_free_mb)
    manager = SessionManager(store, runner, connect_window=settings.connect_window)
    artifact_root = ArtifactRoot(settings.artifacts_dir)
    recordings = Recordings(artifact_root, store)
    artifacts = Artifacts(
        artifact_root, store, recordings, settings.sample_interval, settings.session_disk_quota()
    )
    manager.observers.append(artifacts)
    manager.gates.append(contexts)
    drivers = Drivers(browser_walls.support if browser_walls.mode is Mode.JAILED else None, isolate)
    manager.observers.append(drivers)  # before contexts: a driver goes before its browser shuts down
    contexts.running = lambda session_id: manager.find(session_id) is not None
    reaped = await manager.reconcile()  # before the pool starts: it kills every browser of this data dir
    await contexts.reconcile()  # no session runs now: no context is being persisted
    await recordings.resume()  # tabs whose video a stopped server had not finished
    # Last of the observers: it shuts each persisting session's browser down to save its profile, and
    # every other observer needs the browser running.
    manager.observers.append(contexts)
    runner.start()
    secret = await store.secret("signing-keys", lambda: secrets.token_urlsafe(48))
    services = Services(
        settings,
        store,
        manager,
        SigningKeys(secret),
        ViewTokens(secret),
        artifacts,
        ViewTokens(secret, purpose="media"),
        Limits(
            settings.max_message_mb * MIB,
            settings.max_message_mb * MIB,
            Budget(settings.reassembly_budget_mb * MIB),
        ),
        blobs,
        drivers,
    )

    # Bodies beyond 1 MiB are only for uploads, which read their own stream with their own limit.
    app = web.Application(middlewares=[errors.error_middleware, inside.middleware], client_max_size=1024**2)
    app[SERVICES] = services
    app.add_routes(session_routes.routes)
    app.add_routes(project_routes.routes)
    app.add_routes(context_routes.routes)
    app.add_routes(extension_routes.routes)
    app.add_routes(certificate_routes.routes)
    app.add_routes(fetch_routes.routes)
    app.add_routes(unsupported_routes.routes)
    app.add_routes(file_routes.routes)
    app.add_routes(replay_routes.routes)
    app.add_routes(openapi_routes.routes)
    app.add_routes(gateway_routes.routes)
    app.add_routes(webdriver_routes.routes)
    app.add_routes(debug_routes.routes)
    app.add_routes(live_routes.routes)

    async def end_sessions(_app: web.Application) -> None:
        await manager.shutdown()
        await drivers.close()
        await runner.close()
        await artifacts.close()

    async def close_store(_app: web.Application) -> None:
        await store.close()
        # Every component has stopped its own tasks by now; aiohttp would cancel a leftover unseen.
        if left := unfinished_tasks():
            log.warning("tasks still running at shutdown: %s", ", ".join(left))

    app.on_shutdown.append(end_sessions)
    app.on_cleanup.append(close_store)

    if console is not None:
        for line in report:
            console.print(line, style="bold red" if browser_walls.refusal else None, markup=False)
        if reaped:
            console.print(f"[yellow]Killed {reaped} browser processes left by a previous run[/]")
        console.print(f"Project [bold]{project.name}[/] ({project.id}), concurrency {project.concurrency}")
        if new_key:
            console.print(f"API key (shown once, stored hashed): [bold green]{new_key}[/]", soft_wrap=True)
    return app


def unfinished_tasks() -> list[str]:
    """The names of the loop's tasks that have not finished, but for the caller's own."""
    current = asyncio.current_task()
    return sorted(task.get_name() for task in asyncio.all_tasks() if task is not current and not task.done())


def serve(settings: Settings) -> None:
    console = Console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(errors.MalformedRequests())
    # uvloop: the relay is a socket-to-socket copy, and libuv's loop halves its per-message cost
    # (bench/RESULTS.md, gateway overhead).
    loop = uvloop.new_event_loop()
    app = loop.run_until_complete(build_app(settings, console))
    console.print(f"browserfleet listening on http://{settings.host}:{settings.port}")
    web.run_app(app, host=settings.host, port=settings.port, loop=loop, print=None, access_log=None)
