"""The job service's reads for a caller: ``watch`` (one record per change, until terminal,
owner-checked, polled briskly) and ``frames`` (a page of stored per-frame items)."""

from __future__ import annotations

import asyncio
import time

import pytest

from lensforge.errors import JobNotFound
from lensforge.execution.jobs import JobExecutionService
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, service

pytestmark = pytest.mark.anyio


def new(owner: str = "anonymous") -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={}, owner=owner, timeout_s=5.0)


async def watched(
    jobs: JobExecutionService, job_id: str, *, owner: str | None = None, interval_s: float = 0.1
) -> list[JobRecord]:
    return [job async for job in jobs.watch(job_id, owner=owner, interval_s=interval_s)]


async def test_watch_yields_each_change_once_and_ends_at_a_terminal_status() -> None:
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
        await store.create(new())
        (job,) = await store.claim("w", 30.0, 1)
        watching = asyncio.create_task(watched(jobs, job.id, interval_s=0.01))
        await asyncio.sleep(0.1)  # about ten polls of an unchanged job
        await store.set_progress(job.id, 0.5, "half way")
        await asyncio.sleep(0.1)
        await store.transition(job.id, Status.RUNNING, Status.SUCCESS, result={})
        seen = await asyncio.wait_for(watching, 5)
    assert [(j.status, j.progress, j.progress_message) for j in seen] == [
        (Status.RUNNING, 0.0, None),
        (Status.RUNNING, 0.5, "half way"),
        (Status.SUCCESS, 0.5, "half way"),
    ]


async def test_watch_polls_every_tenth_of_a_second_by_default() -> None:
    async with service(ScriptedExecutor(), dispatch=False) as jobs:
        job, _ = await jobs.submit(new())
        watching = asyncio.create_task(watched(jobs, job.id))
        await asyncio.sleep(0.05)  # the first poll is done: the watch sleeps
        await jobs.cancel(job.id)
        cancelled = time.monotonic()
        seen = await asyncio.wait_for(watching, 5)
        waited = time.monotonic() - cancelled
    assert [j.status for j in seen] == [Status.PENDING, Status.CANCELLED]
    assert waited < 0.8  # one default interval (0.1 s) and the machine's load


async def test_watch_shows_a_job_only_to_its_owner() -> None:
    async with service(ScriptedExecutor(), dispatch=False) as jobs:
        job, _ = await jobs.submit(new(owner="alice"))
        with pytest.raises(JobNotFound):  # at once, not after watching someone else's job
            await asyncio.wait_for(watched(jobs, job.id, owner="bob"), 2)
        first = await anext(jobs.watch(job.id, owner="alice"))
    assert (first.id, first.owner) == (job.id, "alice")


async def stored_frames(store: InMemoryJobStore, count: int) -> str:
    await store.create(new(owner="alice"))
    (job,) = await store.claim("w", 30.0, 1)
    items = [{"index": n, "timestamp_s": n / 10} for n in range(count)]
    assert await store.save_checkpoint(job.id, {"next": count}, items)
    return job.id


async def test_frames_pages_a_jobs_items_after_a_seq() -> None:
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
        job_id = await stored_frames(store, 5)
        page = await jobs.frames(job_id, owner="alice", after=1, limit=2)
        rest = await jobs.frames(job_id, after=3)
    assert [(f.seq, f.frame, f.item) for f in page] == [
        (2, 2, {"index": 2, "timestamp_s": 0.2}),
        (3, 3, {"index": 3, "timestamp_s": 0.3}),
    ]
    assert [f.seq for f in rest] == [4]


async def test_frames_gives_a_hundred_items_by_default() -> None:
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
        job_id = await stored_frames(store, 101)
        page = await jobs.frames(job_id)
    assert [f.seq for f in page] == list(range(100))


async def test_frames_of_another_owners_job_are_not_found() -> None:
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
        job_id = await stored_frames(store, 1)
        with pytest.raises(JobNotFound):
            await jobs.frames(job_id, owner="bob")
