"""`browserfleet`: run the server and manage projects and API keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from browserfleet import bootstrap as boot
from browserfleet.api import auth
from browserfleet.config import Settings
from browserfleet.store.repo import Store

app = typer.Typer(
    help="browserfleet: self-hosted, Browserbase-compatible browser sessions.", no_args_is_help=True
)
projects_app = typer.Typer(help="Create, list and change projects.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")
console = Console()
T = TypeVar("T")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default ./data)")]
CreationsPerMinute = Annotated[
    int, typer.Option(min=0, help="Session creations allowed per rolling minute (0: no limit, the default)")
]


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    if data_dir is not None:
        settings.data_dir = data_dir
    return settings


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table that never truncates ids, even when piped (ids are meant to be copied)."""
    table = Table(*header, box=None)
    for column in table.columns:
        # Ids and prefixes are never cut; free text (names) folds onto more lines instead.
        column.no_wrap = column.header in ("id", "project", "prefix")
        column.overflow = "fold"
    for row in rows:
        table.add_row(*row)
    Console(width=max(200, console.width)).print(table)


def _with_store(data_dir: Path | None, work: Callable[[Store], Awaitable[T]]) -> T:
    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> T:
        store = await Store.open(settings.database)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 7800)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Start the server: the REST API and the CDP gateway on one port."""
    from browserfleet.server import serve as run_server

    settings = _settings(data_dir)
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    run_server(settings)


@projects_app.command("list")
def projects_list(data_dir: DataDir = None) -> None:
    """List projects."""
    rows = _with_store(data_dir, lambda store: store.projects())
    _table(
        ("id", "name", "concurrency", "default timeout (s)", "creations/min", "created"),
        [
            (
                r.id,
                r.name,
                str(r.concurrency),
                str(r.default_timeout),
                str(r.creations_per_minute or "-"),
                r.created_at.isoformat(),
            )
            for r in rows
        ],
    )


@projects_app.command("create")
def projects_create(
    name: str,
    concurrency: Annotated[int, typer.Option(min=1)] = boot.DEFAULT_CONCURRENCY,
    default_timeout: Annotated[int, typer.Option(min=60, max=21600)] = boot.DEFAULT_TIMEOUT,
    creations_per_minute: CreationsPerMinute = 0,
    data_dir: DataDir = None,
) -> None:
    """Create a project and an API key for it (the key is printed once)."""

    async def work(store: Store) -> tuple[str, str]:
        project = await boot.create_project(
            store, name, concurrency, default_timeout, creations_per_minute or None
        )
        key = auth.new_key()
        await auth.add_key(store, project.id, key, "created with the project")
        return project.id, key

    project_id, key = _with_store(data_dir, work)
    typer.echo(f"project {project_id}")
    typer.echo(f"key {key}")


@projects_app.command("update")
def projects_update(
    project_id: str,
    concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    default_timeout: Annotated[int | None, typer.Option(min=60, max=21600)] = None,
    name: Annotated[str | None, typer.Option()] = None,
    creations_per_minute: Annotated[
        int | None, typer.Option(min=0, help="Session creations allowed per rolling minute (0: no limit)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Change a project's concurrency, default timeout, creations per minute or name."""
    fields: dict[str, object] = {
        k: v
        for k, v in (("concurrency", concurrency), ("default_timeout", default_timeout), ("name", name))
        if v
    }
    if creations_per_minute is not None:
        fields["creations_per_minute"] = creations_per_minute or None  # 0 turns the limit off
    if not fields:
        raise typer.BadParameter(
            "nothing to change: give --concurrency, --default-timeout, --creations-per-minute or --name"
        )
    row = _with_store(
        data_dir, lambda store: store.update_project(project_id, updated_at=datetime.now(UTC), **fields)
    )
    if row is None:
        console.print(f"[red]no project {project_id}[/]")
        raise typer.Exit(1)
    rate = f"{row.creations_per_minute} creations/min" if row.creations_per_minute else "no creation limit"
    console.print(
        f"project {row.id}: concurrency {row.concurrency}, default timeout {row.default_timeout}s, {rate}"
    )


@keys_app.command("create")
def keys_create(
    project_id: str,
    name: Annotated[str, typer.Option()] = "",
    data_dir: DataDir = None,
) -> None:
    """Create an API key for a project (printed once; only its hash is stored)."""

    async def work(store: Store) -> str | None:
        if await store.project(project_id) is None:
            return None
        key = auth.new_key()
        await auth.add_key(store, project_id, key, name)
        return key

    key = _with_store(data_dir, work)
    if key is None:
        console.print(f"[red]no project {project_id}[/]")
        raise typer.Exit(1)
    typer.echo(key)


@keys_app.command("list")
def keys_list(project_id: Annotated[str | None, typer.Argument()] = None, data_dir: DataDir = None) -> None:
    """List keys (their prefixes; the keys themselves are not stored)."""
    rows = _with_store(data_dir, lambda store: store.keys(project_id))
    _table(
        ("prefix", "project", "name", "created", "revoked"),
        [
            (
                r.prefix,
                r.project_id,
                r.name,
                r.created_at.isoformat(),
                r.revoked_at.isoformat() if r.revoked_at else "",
            )
            for r in rows
        ],
    )


@keys_app.command("revoke")
def keys_revoke(prefix_or_key: str, data_dir: DataDir = None) -> None:
    """Revoke one key, given the whole key or the prefix `keys list` shows (if no other key shares it)."""

    async def work(store: Store) -> str | None:
        row = await store.key(auth.hash_key(prefix_or_key))
        if row is None:
            matches = await store.keys_with_prefix(prefix_or_key)
            if len(matches) > 1:
                return f"{len(matches)} keys share the prefix {prefix_or_key}: give the whole key"
            row = matches[0] if matches else None
        if row is None or not await store.revoke_key(row.key_hash, datetime.now(UTC)):
            return f"no active key {prefix_or_key}"
        return None

    problem = _with_store(data_dir, work)
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(1)
    typer.echo("revoked 1 key")
