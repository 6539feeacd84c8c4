"""The SQLite writer's WAL restart failing (SQLite refuses the pragma): a structured warning
with the traceback, and the writes go on."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from lensforge.store import Status, reads, writes
from lensforge.store.database import Database
from lensforge.store.writer import StoreWriter
from tests.unit.store.conftest import new

pytestmark = pytest.mark.anyio


def deny_wal_restart(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    """Every connection of the engine refuses ``PRAGMA wal_checkpoint(RESTART)`` only."""

    def authorize(action: int, name: str | None, argument: str | None, *_: Any) -> int:
        restart = name == "wal_checkpoint" and (argument or "").upper() == "RESTART"
        if action == sqlite3.SQLITE_PRAGMA and restart:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    dbapi_conn.set_authorizer(authorize)


async def test_a_failed_wal_restart_is_logged_and_writes_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    event.listen(db.engine, "connect", deny_wal_restart)
    db.migrate()
    # restart_frames=0: every checkpoint asks for a restart before the next batch
    writer = StoreWriter(db, checkpoint_interval_s=0.01, restart_frames=0)
    await writer.start()
    caplog.set_level(logging.WARNING, logger="lensforge.store.writer")
    try:
        created = []
        for _ in range(500):
            job, _ = await writer.submit(
                partial(writes.create, new=new(), claim_for=None, lease_s=30.0)
            )
            created.append(job.id)
            if any(getattr(r, "event", None) == "wal_restart_failed" for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        logged = [r for r in caplog.records if r.getMessage() == "WAL restart failed"]
        assert logged, "the restart never failed"
        record = logged[0]
        assert getattr(record, "event", None) == "wal_restart_failed"
        assert record.levelno == logging.WARNING
        assert record.exc_info is not None and "not authorized" in str(record.exc_info[1])
        job, _ = await writer.submit(
            partial(writes.create, new=new(), claim_for=None, lease_s=30.0)
        )
        created.append(job.id)
    finally:
        await writer.stop()
    assert [job.status for job in reads.get_many(db, created)] == [Status.PENDING] * len(created)
    db.close()
