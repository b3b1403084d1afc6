"""The harness's own promises about PostgreSQL: the newest installed version is found, a cluster
listens on 127.0.0.1 alone and wants its password, stopping it leaves nothing, and under CI a missing
PostgreSQL fails the suite instead of skipping its tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest
from conftest import ROOT

from harness import postgres as pg
from harness.server import run_async

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]


def test_the_newest_installed_version_is_found(tmp_path: Path) -> None:
    assert pg.find_bindir(tmp_path) is None
    for version, programs in [
        ("9.6", ("initdb", "pg_ctl")),
        ("13", ("initdb", "pg_ctl")),
        ("16", ("initdb",)),
    ]:
        (tmp_path / version / "bin").mkdir(parents=True)
        for program in programs:
            (tmp_path / version / "bin" / program).touch()
    assert pg.find_bindir(tmp_path) == tmp_path / "13" / "bin"  # 16 lacks pg_ctl


def test_a_cluster_listens_on_loopback_alone_and_leaves_nothing(postgres: pg.Cluster) -> None:
    cluster = pg.Cluster(postgres.bindir).start()
    try:
        assert cluster.root is not None
        root, pid = cluster.root, int((cluster.data / "postmaster.pid").read_text().split()[0])
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {("127.0.0.1", cluster.port)}
        url = cluster.database().replace("postgresql+asyncpg", "postgresql")

        async def connect(dsn: str) -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return int(await conn.fetchval("select 1"))
            finally:
                await conn.close()

        assert run_async(lambda: connect(url)) == 1
        with pytest.raises(asyncpg.InvalidPasswordError):
            run_async(lambda: connect(url.replace(cluster.password, "wrong")))
    finally:
        cluster.stop()
    assert not root.exists()
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # ended; init has yet to reap it
    cluster.stop()  # again: nothing to do


def test_a_cluster_whose_owner_was_killed_is_removed_by_the_next(postgres: pg.Cluster) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from harness import postgres as pg\n"
        "cluster = pg.Cluster(Path(sys.argv[1])).start()\n"
        "print(cluster.root, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(postgres.bindir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        root = Path(owner.stdout.readline().strip())
        pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
    finally:
        owner.kill()  # no atexit, no finalizer: the cluster stays behind
        owner.wait()
    assert root.exists() and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    pg.Cluster(postgres.bindir).start().stop()
    assert not root.exists()
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert postgres.root is not None and postgres.root.exists()  # a cluster whose owner runs stays


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped")])
def test_without_postgresql_ci_fails_and_a_developer_skips(tmp_path: Path, ci: str, outcome: str) -> None:
    # An install root without PostgreSQL; the suite's plugins are not needed here (half the start-up).
    env = {**os.environ, "HARNESS_PG_ROOT": str(tmp_path), "CI": ci, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [*PYTEST, "tests/test_store.py::test_migrations_run_down_to_nothing_and_up_again[postgresql]"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in result.stdout, result.stdout[-3000:]
    assert "PostgreSQL is not installed" in result.stdout
    if ci:
        assert result.returncode != 0 and "under CI, PostgreSQL tests must run" in result.stdout
    else:
        assert result.returncode == 0
