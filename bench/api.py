"""API latency with 100,000 session rows in the store.

The server is started once on a fresh data dir (so its migrations run) and stopped; 100,000 ended
sessions of the bootstrap project are bulk-inserted with sqlite3 in one transaction, in the format
the server itself writes (checked against a row it wrote); then the server is restarted and each
request is timed n=50 times.

The rows go in with sqlite3, not through the `Store`'s engine: this benchmark measures the default
SQLite store (it reports the file's size and indexes), and one executemany of 100,000 rows took about
15 times as long through SQLAlchemy's async engine on this machine (roughly 50 s against 3.5 s, while
busy), a third of the benchmark's time budget.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    MB,
    Deadline,
    Report,
    Server,
    Stats,
    Target,
    create_session,
    default_pool_size,
    ms_since,
    num,
    pool_env,
    release_session,
    run_alone,
    run_timed,
    scaled,
    stats_table,
    table,
)

ROWS = 100_000
STATUSES = [f"status-{k:02d}" for k in range(50)]  # ~2,000 rows each
BATCHES = 1000  # ~100 rows each
N = scaled(50)
PACE_S = 1.0
BUDGET_S = 170.0
# How SQLAlchemy's DateTime stores a datetime in SQLite (checked against a real row below).
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"

COLUMNS = (
    "id",
    "project_id",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "expires_at",
    "ended_at",
    "end_reason",
    "keep_alive",
    "region",
    "context_id",
    "user_metadata",
    "create_params",
    "proxy_bytes",
    "avg_cpu_usage",
    "memory_usage",
    "browser_pid",
    "browser_profile",
)


def _check_format(db: sqlite3.Connection, session_id: str) -> dict[str, Any]:
    """The row the server wrote for a real session: its timestamps must parse with SQLITE_TIME."""
    db.row_factory = sqlite3.Row
    row = dict(db.execute("select * from sessions where id = ?", (session_id,)).fetchone())
    db.row_factory = None
    for column in ("created_at", "updated_at", "started_at", "expires_at", "ended_at"):
        datetime.strptime(row[column], SQLITE_TIME)  # ValueError: the server's format changed
    json.loads(row["user_metadata"])
    return row


def _rows(project_id: str, profiles: Path) -> list[tuple[Any, ...]]:
    rng = random.Random(7)
    newest = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    rows = []
    for i in range(ROWS):
        created = newest - timedelta(seconds=30 * (ROWS - i))
        started = created + timedelta(milliseconds=40)
        ended = started + timedelta(seconds=rng.randint(5, 300))
        metadata = {"order": {"status": STATUSES[i % len(STATUSES)]}, "batch": str(i % BATCHES)}
        rows.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                project_id,
                "COMPLETED",
                created.strftime(SQLITE_TIME),
                ended.strftime(SQLITE_TIME),
                started.strftime(SQLITE_TIME),
                (started + timedelta(seconds=300)).strftime(SQLITE_TIME),
                ended.strftime(SQLITE_TIME),
                "released by request",
                0,
                "us-west-2",
                None,
                json.dumps(metadata),
                json.dumps({"userMetadata": metadata}),
                0,
                None,
                None,
                rng.randint(1000, 4_000_000),
                str(profiles / f"browser-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"),
            )
        )
    return rows


def _leaves(
    db: sqlite3.Connection, real_id: str, rows: list[tuple[Any, ...]]
) -> list[tuple[str, ...]] | None:
    """Rows for the `session_metadata` index table when the schema has one (migration 0002): made
    with the server's own `metadata_leaves`, checked against the leaves it wrote for a real session."""
    tables = {name for (name,) in db.execute("select name from sqlite_master where type = 'table'")}
    if "session_metadata" not in tables:
        return None
    from browserfleet.store.models import metadata_leaves

    columns = {row[1] for row in db.execute("pragma table_info(session_metadata)")}
    if columns != {"session_id", "path", "project_id", "value"}:
        raise RuntimeError(f"session_metadata has columns {sorted(columns)}: update bench/api.py")
    (real_metadata,) = db.execute("select user_metadata from sessions where id = ?", (real_id,)).fetchone()
    written = set(db.execute("select path, value from session_metadata where session_id = ?", (real_id,)))
    if written != set(metadata_leaves(json.loads(real_metadata))):
        raise RuntimeError(f"the server's session_metadata rows {written} differ from metadata_leaves()")
    project_index, metadata_index = COLUMNS.index("project_id"), COLUMNS.index("user_metadata")
    return [
        (row[0], path, row[project_index], value)
        for row in rows
        for path, value in metadata_leaves(json.loads(row[metadata_index]))
    ]


def _populate(data_dir: Path, report: Report) -> list[str]:
    """Migrate (first start), write one real session, insert ROWS more; returns some inserted ids."""
    first = Server(data_dir, pool_env(0))
    try:
        first.start()
        with first.client() as http:
            real = create_session(http, userMetadata={"order": {"status": "real"}})
            release_session(http, real["id"])
    finally:
        first.stop()
        report.notes.extend(first.notes)
    with contextlib.closing(sqlite3.connect(first.db_path)) as db:
        sample = _check_format(db, real["id"])
        (project_id,) = db.execute("select id from projects").fetchone()
        rows = _rows(project_id, data_dir.resolve() / "profiles")
        leaves = _leaves(db, real["id"], rows)
        start = time.perf_counter()
        with db:  # one transaction
            db.executemany(
                f"insert into sessions ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))})", rows
            )
            if leaves is not None:
                db.executemany(
                    "insert into session_metadata (session_id, path, project_id, value) values (?, ?, ?, ?)",
                    leaves,
                )
        insert_s = time.perf_counter() - start
        (count,) = db.execute("select count(*) from sessions").fetchone()
        indexes = [name for (name,) in db.execute("select name from sqlite_master where type = 'index'")]
        (migration,) = db.execute("select version_num from alembic_version").fetchone()
    size = sum(f.stat().st_size for f in data_dir.glob("browserfleet.db*"))
    report.add(
        f"Store: {count:,} session rows ({ROWS:,} inserted in one transaction in {insert_s:.1f} s, plus "
        f"the one real session), schema at migration {migration}"
        + (
            f", with {len(leaves):,} rows in its `session_metadata` index table (made with the server's "
            "`metadata_leaves()`, checked against those it wrote for a real session)"
            if leaves is not None
            else ""
        )
        + f"; SQLite file(s) {num(size / MB, 'MB')}; indexes: "
        + ", ".join(f"`{i}`" for i in sorted(indexes))
        + ". Inserted rows copy the format of a row the server wrote: "
        f"`created_at` = `{sample['created_at']}`, `user_metadata` = `{sample['user_metadata']}`."
    )
    return [r[0] for r in rows[:: ROWS // 500]]


def _time(http: httpx.Client, path: str, params: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(ms, rows returned, response bytes) of one GET."""
    start = time.perf_counter()
    response = http.get(path, params=params)
    elapsed = ms_since(start)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    body = response.json()
    return elapsed, len(body) if isinstance(body, list) else 1, len(response.content)


def measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    data_dir = Path(tempfile.mkdtemp(prefix="browserfleet-bench-"))
    try:
        ids = _populate(data_dir, report)
        pool = default_pool_size()
        server = Server(data_dir)
        try:
            server.start()
            server.wait_for_browsers(pool)
            _requests(report, server, ids, deadline, pool)
        finally:
            server.stop()
            report.notes.extend(server.notes)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _requests(report: Report, server: Server, ids: list[str], deadline: Deadline, pool: int) -> None:
    status_q = f"user_metadata['order']['status']:'{STATUSES[7]}'"
    batch_q = "user_metadata['batch']:'7'"
    requests: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET /v1/sessions?status=RUNNING", "/v1/sessions", {"status": "RUNNING"}),
        ("GET /v1/sessions/{id}", "", None),
        (f'GET /v1/sessions?q="{status_q}"', "/v1/sessions", {"q": status_q}),
        (f'GET /v1/sessions?q="{batch_q}"', "/v1/sessions", {"q": batch_q}),
    ]
    # What the inserted data holds: no running session, one row by id, and the metadata matches.
    expected = [
        0,
        1,
        sum(1 for i in range(ROWS) if i % len(STATUSES) == 7),
        sum(1 for i in range(ROWS) if i % BATCHES == 7),
    ]
    timings: dict[str, list[float]] = {label: [] for label, _, _ in requests}
    counts: dict[str, set[int]] = {label: set() for label, _, _ in requests}
    sizes: dict[str, int] = {}
    rng = random.Random(11)
    creates: list[float] = []
    releases: list[float] = []
    with server.client() as http:
        for _label, path, params in requests:  # warm-up, not counted
            _time(http, path or f"/v1/sessions/{ids[0]}", params)
        # Round-robin, so the four requests see the same conditions.
        for _ in range(N):
            if deadline.expired:
                break
            for label, path, params in requests:
                ms, returned, size = _time(http, path or f"/v1/sessions/{rng.choice(ids)}", params)
                timings[label].append(ms)
                counts[label].add(returned)
                sizes[label] = size
        release_session(http, create_session(http)["id"])  # warm-up
        time.sleep(PACE_S)
        for _ in range(N):
            if deadline.expired:
                break
            start = time.perf_counter()
            session = create_session(http)
            creates.append(ms_since(start))
            start = time.perf_counter()
            release_session(http, session["id"])
            releases.append(ms_since(start))
            time.sleep(PACE_S)

    rows = [(label, Stats.of(timings[label])) for label, _, _ in requests]
    rows += [
        (f"POST /v1/sessions (warm pool of {pool}, {PACE_S:.0f} s apart)", Stats.of(creates)),
        ("POST /v1/sessions/{id} REQUEST_RELEASE", Stats.of(releases)),
    ]
    report.add("Latency (ms), requests in round-robin order:\n\n" + stats_table(rows))
    report.add(
        "What the GETs returned:\n\n"
        + table(
            ("request", "rows returned", "rows the data holds", "response size"),
            [
                [
                    label,
                    ", ".join(f"{c:,}" for c in sorted(counts[label])),
                    f"{want:,}",
                    num(sizes.get(label, 0) / 1024, "KiB"),
                ]
                for (label, _, _), want in zip(requests, expected, strict=True)
            ],
        )
    )
    for (label, _, _), want in zip(requests, expected, strict=True):
        if counts[label] != {want}:
            report.notes.append(f"`{label}` returned {sorted(counts[label])} rows; the data holds {want}")
    for label, _, _ in requests[2:]:
        stats = Stats.of(timings[label])
        report.targets.append(
            Target(f"{label} on {ROWS:,} sessions, p50", stats.median, 20.0, "ms", f"median of {stats.n}")
        )


def run() -> Report:
    return run_timed("api", "5. API latency with 100,000 sessions", measure)


if __name__ == "__main__":
    run_alone(run)
