"""Waiters: a wait ends when its job ends here (at once), when a poke or the recheck timer
finds it ended elsewhere, or at its timeout with the job as it stands; waits on one job do
not disturb each other, and none is left registered once it is over."""

from __future__ import annotations

import asyncio
import time

import pytest

from lensforge.execution.waiting import Waiters
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore

pytestmark = pytest.mark.anyio
LONG_S = 30.0  # a recheck interval beyond every test's bound: only a wake-up ends a wait


async def pending(store: InMemoryJobStore) -> JobRecord:
    job, _ = await store.create(NewJob(plugin="p", tool="t", inputs={}))
    return job


async def read_job(store: InMemoryJobStore, job_id: str) -> JobRecord:
    job = await store.get(job_id)
    assert job is not None
    return job


def waiters_on(store: InMemoryJobStore, recheck_every_s: float) -> Waiters:
    return Waiters(lambda job_id: read_job(store, job_id), recheck_every_s / 2)


async def cancel(store: InMemoryJobStore, job: JobRecord) -> JobRecord:
    """End the job in the store only, as another server would."""
    return await store.transition(job.id, Status.PENDING, Status.CANCELLED)


async def test_a_job_ended_here_wakes_its_waiter_at_once() -> None:
    store = InMemoryJobStore()
    waiters = waiters_on(store, LONG_S)
    job = await pending(store)
    waiting = asyncio.create_task(waiters.wait(job.id, LONG_S))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiters.finished(await cancel(store, job))
    ended = await asyncio.wait_for(waiting, 2)
    assert (ended.id, ended.status) == (job.id, Status.CANCELLED)
    assert waiters._waiting == {}  # nothing left behind


async def test_a_wait_runs_to_its_timeout_and_returns_the_job_as_it_stands() -> None:
    store = InMemoryJobStore()
    waiters = waiters_on(store, LONG_S)
    job = await pending(store)
    started = time.monotonic()
    seen = await asyncio.wait_for(waiters.wait(job.id, 0.3), 5)
    took = time.monotonic() - started
    assert (seen.id, seen.status) == (job.id, Status.PENDING)
    assert 0.28 <= took < 2.0
    assert waiters._waiting == {}


async def test_a_job_ended_elsewhere_is_found_by_the_recheck_timer() -> None:
    store = InMemoryJobStore()
    waiters = waiters_on(store, 0.05)
    job = await pending(store)
    waiting = asyncio.create_task(waiters.wait(job.id, LONG_S))
    await asyncio.sleep(0.05)
    await cancel(store, job)  # no notice, no finished(): only a read finds it
    ended = await asyncio.wait_for(waiting, 2)
    assert ended.status is Status.CANCELLED
    assert waiters._waiting == {}


async def test_a_poked_wait_reads_again_and_is_still_woken_by_the_end() -> None:
    store = InMemoryJobStore()
    waiters = waiters_on(store, LONG_S)
    job = await pending(store)
    waiting = asyncio.create_task(waiters.wait(job.id, LONG_S))
    await asyncio.sleep(0.05)
    waiters.poke(job.id)  # a notice that changed nothing: the job is read, still PENDING
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiters.finished(await cancel(store, job))
    ended = await asyncio.wait_for(waiting, 2)
    assert ended.status is Status.CANCELLED
    assert waiters._waiting == {}


async def test_a_registered_waiter_is_woken_and_a_finished_job_is_read_once() -> None:
    """A waiter registered before the job could end (as submit_and_wait does), and the
    job as the caller last saw it (``current``), saving a read."""
    store = InMemoryJobStore()
    reads: list[str] = []

    async def read(job_id: str) -> JobRecord:
        reads.append(job_id)
        found = await store.get(job_id)
        assert found is not None
        return found

    waiters = Waiters(read, LONG_S)
    job = await pending(store)
    waiter = asyncio.get_running_loop().create_future()
    waiters.register(job.id, waiter)
    waiters.finished(await cancel(store, job))  # ends before the wait even starts
    ended = await asyncio.wait_for(waiters.wait(job.id, LONG_S, current=job, waiter=waiter), 2)
    assert ended.status is Status.CANCELLED
    assert reads == []
    assert waiters._waiting == {}


async def test_a_wait_that_times_out_leaves_the_other_waits_on_its_job_registered() -> None:
    store = InMemoryJobStore()
    waiters = waiters_on(store, LONG_S)
    job = await pending(store)
    patient = asyncio.create_task(waiters.wait(job.id, LONG_S))
    await asyncio.sleep(0.02)
    short = await asyncio.wait_for(waiters.wait(job.id, 0.1), 5)
    assert short.status is Status.PENDING
    waiters.finished(await cancel(store, job))
    ended = await asyncio.wait_for(patient, 2)
    assert ended.status is Status.CANCELLED
    assert waiters._waiting == {}


async def test_a_job_nobody_waits_for_ends_quietly() -> None:
    store = InMemoryJobStore()
    waiters = waiters_on(store, LONG_S)
    job = await pending(store)
    waiters.finished(await cancel(store, job))  # every job that ends here passes by
    assert waiters._waiting == {}


async def test_without_notices_a_wait_reads_its_job_every_two_poll_intervals() -> None:
    store = InMemoryJobStore()
    waiters = Waiters(lambda job_id: read_job(store, job_id), 0.5)
    job = await pending(store)
    started = time.monotonic()
    waiting = asyncio.create_task(waiters.wait(job.id, LONG_S))
    await asyncio.sleep(0.05)
    await cancel(store, job)
    ended = await asyncio.wait_for(waiting, 5)
    took = time.monotonic() - started
    assert ended.status is Status.CANCELLED
    assert 0.95 <= took < 1.4  # the first read after the start, 2 x 0.5 s later
