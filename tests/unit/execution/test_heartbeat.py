"""The lease heartbeat (LeaseKeeper.heartbeat): a running job's lease is renewed while it
runs, so recovery never takes it from a live server, and a cancel request written by
another server (only the store is shared) reaches the call running here."""

from __future__ import annotations

import asyncio
import time

import pytest

from lensforge.store import NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, block_until_cancelled, service

pytestmark = pytest.mark.anyio

LEASE_S = 1.5  # the heartbeat runs every lease_s / 3 = 0.5 s: a second of slack under load


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def started(jobs: object, store: InMemoryJobStore, job_id: str) -> float:
    for _ in range(500):
        job = await store.get(job_id)
        if job.status is Status.RUNNING and job.lease_expires_at is not None:
            return job.lease_expires_at
        await asyncio.sleep(0.01)
    raise AssertionError("the job never started")


async def test_a_running_jobs_lease_is_renewed_past_its_first_expiry() -> None:
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(block_until_cancelled), store, lease_s=LEASE_S) as jobs:
        job, _ = await jobs.submit(NewJob(plugin="p", tool="t", inputs={}, timeout_s=30.0))
        first_expiry = await started(jobs, store, job.id)
        await asyncio.sleep(LEASE_S * 2)  # well past the first lease
        now = time.time()
        running = await store.get(job.id)
        assert running.status is Status.RUNNING
        assert running.attempts == 1  # never recovered as expired and run again
        assert running.lease_owner == jobs.worker_id
        assert running.lease_expires_at is not None
        assert running.lease_expires_at > first_expiry
        assert now < running.lease_expires_at <= now + LEASE_S + 0.05
        assert await store.expired_leases(now) == []
        await jobs.cancel(job.id)


async def test_a_cancel_requested_through_the_store_stops_the_call_running_here() -> None:
    store = InMemoryJobStore()
    executor = ScriptedExecutor(block_until_cancelled)
    async with service(executor, store, lease_s=LEASE_S) as jobs:
        job, _ = await jobs.submit(NewJob(plugin="p", tool="t", inputs={}, timeout_s=30.0))
        await started(jobs, store, job.id)
        await store.request_cancel(job.id)  # as another server sharing the store would
        ended = await jobs.wait(job.id, 5)
    assert ended.status is Status.CANCELLED
    assert ended.error is not None and ended.error["error"]["code"] == "cancelled"
    assert len(executor.calls) == 1
