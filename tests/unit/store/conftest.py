"""A started job store on a real, migrated SQLite file (closed after the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lensforge.store import JobRecord, JobStore, NewJob

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    opened = JobStore(f"sqlite:///{tmp_path / 'store.db'}")
    opened.migrate()
    await opened.start()
    try:
        yield opened
    finally:
        await opened.stop()
        opened.close()


def new(**kwargs: Any) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs=kwargs.pop("inputs", {"n": 1}), **kwargs)


async def running(store: JobStore, worker: str = "w1", **kwargs: Any) -> JobRecord:
    """A new job, claimed by ``worker``."""
    job, created = await store.create(new(**kwargs))
    assert created
    (claimed,) = await store.claim(worker, 30.0, 1, [job.id])
    return claimed
