"""Progress reports and checkpoints as the store and the operator see them
(``execution/progress.py``): throttled reports, the last one always written, and the
structured log lines of a checkpoint the store failed to write or refused."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lensforge.execution.progress import ProgressReporter
from lensforge.store import NewJob
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import FlakyCheckpoints

pytestmark = pytest.mark.anyio


async def running(store: InMemoryJobStore, worker: str = "w1") -> str:
    job, _ = await store.create(NewJob(plugin="p", tool="t", inputs={}), claim_for=worker)
    return job.id


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_reports_are_throttled_and_the_last_one_always_written() -> None:
    store = InMemoryJobStore()
    job_id = await running(store)
    report = ProgressReporter(store, "w1", interval_s=60).callback(job_id)
    report(0.1, "first")
    await settle()
    job = await store.get(job_id)
    assert job is not None and (job.progress, job.progress_message) == (0.1, "first")
    report(0.5, "too soon")
    await settle()
    job = await store.get(job_id)
    assert job is not None and job.progress_message == "first"
    report(1.0, "done")
    await settle()
    job = await store.get(job_id)
    assert job is not None and (job.progress, job.progress_message) == (1.0, "done")


async def test_a_checkpoint_the_store_failed_to_write_is_logged_for_the_operator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyCheckpoints()
    job_id = await running(store)
    reporter = ProgressReporter(store, "w1")
    with caplog.at_level(logging.WARNING, logger="lensforge.execution.progress"):
        reporter.checkpointer(job_id, lambda: None)({"next": 1}, [{"index": 0}])
        await reporter.drain(job_id)
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "checkpoint_failed"]
    assert record.getMessage() == (
        f"checkpoint of job {job_id} not stored; its items go with the next one"
    )
    assert record.job_id == job_id  # type: ignore[attr-defined]
    assert record.exc_info is not None  # the store's error, with its traceback


async def test_a_checkpoint_refused_by_the_store_is_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryJobStore()
    job_id = await running(store, worker="another-server")
    refusals: list[bool] = []
    reporter = ProgressReporter(store, "w1")
    with caplog.at_level(logging.WARNING, logger="lensforge.execution.progress"):
        reporter.checkpointer(job_id, lambda: refusals.append(True))({"next": 1}, [])
        await reporter.drain(job_id)
    assert refusals == [True]
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "checkpoint_fenced"]
    assert record.getMessage() == (f"checkpoint of job {job_id} refused: the job is no longer ours")
    assert record.job_id == job_id  # type: ignore[attr-defined]
    assert await store.checkpoint(job_id) is None
