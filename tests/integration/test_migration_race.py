"""Servers starting together on one fresh database: migrations are serialised, none fails."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.integration.conftest import PostgresCluster

# Each process imports first, then waits for the shared start time: the upgrades overlap.
MIGRATE = (
    "import sys, time; from lensforge.store import JobStore; store = JobStore(sys.argv[1]);"
    " import alembic.command;"
    " time.sleep(max(0.0, float(sys.argv[2]) - time.time())); store.migrate()"
)


def _migrate_at_once(url: str, processes: int = 4) -> list[subprocess.CompletedProcess[str]]:
    start_at = str(time.time() + 4.0)
    running = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url, start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    done = []
    for process in running:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def _versions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_four_processes_migrate_one_fresh_postgres(postgres_cluster: PostgresCluster) -> None:
    name = postgres_cluster.create_database()
    url = postgres_cluster.url(name)
    try:
        results = _migrate_at_once(url)
        assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr[-2000:] for r in results]
        assert len(_versions(url)) == 1
    finally:
        postgres_cluster.drop_database(name)


@pytest.mark.slow
def test_four_processes_migrate_one_fresh_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    results = _migrate_at_once(url)
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr[-2000:] for r in results]
    assert len(_versions(url)) == 1
