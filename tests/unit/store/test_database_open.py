"""Opening the store's database: where a SQLite file goes, in-memory databases, the wait for
another process's write lock, and the errors a caller sees (no password, no driver text)."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from lensforge.errors import StoreError
from lensforge.store import JobStore, Status
from lensforge.store.engine import StoreBusy
from tests.unit.store.conftest import new

pytestmark = pytest.mark.anyio


async def test_a_file_in_new_directories_is_created_and_opened_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'jobs.db'}"
    for _ in range(2):  # the second time the directories exist already
        store = JobStore(url)
        store.migrate()
        job, _ = await store.create(new())
        assert await store.get(job.id) == job
        store.close()
    assert (tmp_path / "a" / "b" / "jobs.db").is_file()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
async def test_an_in_memory_database_is_one_database_for_every_connection(url: str) -> None:
    store = JobStore(url)
    store.migrate()  # on one connection; the reads below run on others (a thread pool)
    try:
        job, _ = await store.create(new())
        assert [j.id for j in await store.list()] == [job.id]
        assert await store.counts() == {s.value: int(s is Status.PENDING) for s in Status}
    finally:
        store.close()


async def test_a_held_write_lock_is_waited_for_busy_timeout_s_then_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    store = JobStore(f"sqlite:///{path}", busy_timeout_s=0.3)
    store.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusy) as info:
            await store.create(new())
        waited = time.monotonic() - started
        assert 0.25 <= waited < 3.0, waited
        assert info.value.message == "Another process holds the store's write lock."
        assert info.value.status == 503
    finally:
        other.execute("ROLLBACK")
        other.close()
    job, created = await store.create(new())  # the lock is free again
    assert created and await store.get(job.id) == job
    store.close()


def test_a_url_that_cannot_be_opened_is_named_without_its_password() -> None:
    url = "postgresql+nosuchdriver://alice:s3cr:t@pw@db.example:5432/jobs?x=a://b"
    with pytest.raises(StoreError) as info:
        JobStore(url)
    message = info.value.message
    assert message.startswith(
        "Cannot open the job store at "
        "postgresql+nosuchdriver://alice:***@db.example:5432/jobs?x=a://b: "
    )
    assert "s3cr" not in message and "pw@" not in message
    with pytest.raises(StoreError) as info:
        JobStore("postgresql+nosuchdriver://db.example/jobs")  # no credentials to hide
    assert "at postgresql+nosuchdriver://db.example/jobs: " in info.value.message


async def test_a_database_error_is_a_503_whose_details_go_only_to_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'no-schema.db'}")  # never migrated
    caplog.set_level(logging.ERROR, logger="lensforge.store.store")
    try:
        for attempt in (store.create(new()), store.get("some-id"), store.list()):
            with pytest.raises(StoreError) as info:
                await attempt
            assert type(info.value) is StoreError
            assert info.value.message == (
                "The job store failed; the server log has the details. Try again shortly."
            )
    finally:
        store.close()
    failures = [r for r in caplog.records if getattr(r, "event", None) == "store_failed"]
    assert len(failures) == 3
    assert all(r.getMessage().startswith("job store failure: ") for r in failures)
    assert all("no such table: jobs" in r.getMessage() for r in failures)
