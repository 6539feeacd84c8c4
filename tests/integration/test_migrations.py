"""Migration 0003 on a database that already holds jobs: older jobs read with an empty
retry policy, new ones keep theirs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from lensforge.store import JobStore, NewJob, Status
from lensforge.store.database import MIGRATIONS


def test_jobs_from_before_0003_read_with_no_retry_policy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        conn.execute(
            text(
                "INSERT INTO jobs (id, plugin, tool, status, inputs, attempts, max_attempts,"
                " progress, owner, cancel_requested, created_at, updated_at)"
                " VALUES ('old', 'p', 't', 'PENDING', '{\"n\": 1}', 0, 2, 0, 'a', 0, 1, 1)"
            )
        )
    engine.dispose()
    store = JobStore(url)
    try:
        store.migrate()
        old = asyncio.run(store.get("old"))
        assert old is not None
        assert (old.status, old.inputs, old.max_attempts, old.retry_on) == (
            Status.PENDING,
            {"n": 1},
            2,
            [],
        )
        new = NewJob(plugin="p", tool="t", inputs={}, retry_on=("timeout",), timeout_s=3.0)
        created, _ = asyncio.run(store.create(new))  # type: ignore[arg-type]
        again = asyncio.run(store.get(created.id))
        assert again is not None and (again.retry_on, again.timeout_s) == (["timeout"], 3.0)
        assert again == created
    finally:
        store.close()
