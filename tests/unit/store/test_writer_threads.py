"""Where group-committed batches run: on SQLite on the event loop itself (a batch costs
about what a thread hop does), otherwise on the writer's threads."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from lensforge.store.database import Database
from lensforge.store.dbapi import Tx
from lensforge.store.writer import StoreWriter

pytestmark = pytest.mark.anyio


def thread_name(_tx: Tx) -> str:
    return threading.current_thread().name


@pytest.mark.parametrize("inline", [None, False])
async def test_batches_run_on_the_loop_for_sqlite_else_on_writer_threads(
    tmp_path: Path, inline: bool | None
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    db.migrate()
    writer = StoreWriter(db, inline=inline)
    await writer.start()
    try:
        for _ in range(3):  # one batch after another, each alone
            (name,) = await asyncio.gather(writer.submit(thread_name))
            if inline is None:
                assert name == threading.current_thread().name
            else:
                assert name.startswith("lensforge-db-write")
        names = await asyncio.gather(*(writer.submit(thread_name) for _ in range(5)))
        assert len(set(names)) == 1  # one batch: one transaction, one thread
    finally:
        await writer.stop()
        db.close()
    assert (writer.transactions, writer.writes) == (4, 8)
