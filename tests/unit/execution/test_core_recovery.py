"""What recovery and a graceful stop write: the worker_lost failure's envelope and event, the
start-up-only judgement of dead local owners, the attempt given back at a stop, the fence
that keeps a stop off a job another server took over, and the worker named in each event."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from lensforge.execution import verdicts
from lensforge.execution.leases import host_prefix
from lensforge.store import NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, block_until_cancelled, service

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def new(**options: object) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={"n": 1}, timeout_s=5.0, **options)  # type: ignore[arg-type]


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def wait_for_status(jobs: object, job_id: str, status: Status) -> None:
    for _ in range(500):
        if (await jobs.get(job_id)).status is status:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached {status}")


async def test_a_job_lost_with_its_attempts_spent_fails_with_the_full_envelope() -> None:
    store = InMemoryJobStore()
    await store.create(new(max_attempts=1))
    (lost,) = await store.claim("gone:1:x", -1.0, 1)  # its lease already expired
    async with service(ScriptedExecutor(), store, dispatch=False, worker_lost_attempts=1) as jobs:
        job = await jobs.get(lost.id)  # start-up recovered it
        events = await jobs.events(lost.id)
        worker = jobs.worker_id
    assert job.status is Status.FAILED
    assert job.error is not None
    error = job.error["error"]
    assert (error["code"], error["plugin"], error["tool"], error["job_id"]) == (
        "worker_lost",
        "p",
        "t",
        lost.id,
    )
    assert error["message"] == "The worker running the job was lost after 1 attempt(s)."
    assert error["retryable"] is True
    assert (events[-1].from_status, events[-1].to_status) == ("RUNNING", "FAILED")
    assert (events[-1].reason, events[-1].worker) == ("worker_lost", worker)


async def test_the_lost_verdict_names_its_error_code() -> None:
    store = InMemoryJobStore()
    await store.create(new())
    (running,) = await store.claim("gone:1:x", 30.0, 1)
    spent = verdicts.lost(running, 1)
    again = verdicts.lost(running, 2)
    assert (spent.status, spent.code, spent.reason) == (Status.FAILED, "worker_lost", "worker_lost")
    assert (again.status, again.code, again.reason) == (Status.PENDING, None, "lease expired")


async def test_a_dead_local_owner_is_judged_only_when_asked_for() -> None:
    """Outside start-up, a job of a dead server process on this host waits for its lease;
    ``recover(dead_local_owners=True)`` takes it back at once."""
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
        await store.create(new(max_attempts=2))
        (orphan,) = await store.claim(f"{host_prefix()}{a_dead_pid()}:abcd", 30.0, 1)
        assert await jobs.recover() == 0
        assert (await jobs.get(orphan.id)).status is Status.RUNNING
        assert await jobs.recover(dead_local_owners=True) == 1
        job = await jobs.get(orphan.id)
        events = await jobs.events(orphan.id)
        worker = jobs.worker_id
    assert (job.status, job.attempts, job.lease_owner) == (Status.PENDING, 1, None)
    assert (events[-1].reason, events[-1].worker) == ("lease expired", worker)


async def test_a_stop_gives_back_the_attempt_of_a_job_on_its_second_attempt() -> None:
    store = InMemoryJobStore()
    await store.create(new(max_attempts=3))
    (lost,) = await store.claim("gone:1:x", -1.0, 1)  # attempt 1, lost
    async with service(
        ScriptedExecutor(block_until_cancelled), store, shutdown_grace_s=0.05
    ) as jobs:  # start-up requeues it; the dispatcher runs it as attempt 2
        await wait_for_status(jobs, lost.id, Status.RUNNING)
        assert (await jobs.get(lost.id)).attempts == 2
        worker = jobs.worker_id
    after = await store.get(lost.id)
    events = await store.events(lost.id)
    assert after is not None
    assert (after.status, after.attempts, after.lease_owner) == (Status.PENDING, 1, None)
    assert (events[-1].reason, events[-1].worker) == ("server shutdown", worker)


async def test_a_stop_leaves_alone_a_job_another_server_took_over() -> None:
    """The hand-back at a stop is fenced on this server's lease, like a finish."""
    store = InMemoryJobStore()
    async with service(
        ScriptedExecutor(block_until_cancelled), store, shutdown_grace_s=0.05
    ) as jobs:
        job, _ = await jobs.submit(new(max_attempts=2))
        await wait_for_status(jobs, job.id, Status.RUNNING)
        await store.transition(job.id, Status.RUNNING, Status.PENDING, lease_owner=None)
        (taken,) = await store.claim("other-server", 30.0, 1)
    after = await store.get(job.id)
    assert after is not None
    assert (after.status, after.lease_owner, after.attempts) == (Status.RUNNING, "other-server", 2)
    assert taken.id == job.id


async def test_cancelling_a_pending_job_records_this_server_as_its_worker() -> None:
    async with service(ScriptedExecutor(), dispatch=False) as jobs:
        job, _ = await jobs.submit(new())
        cancelled = await jobs.cancel(job.id)
        events = await jobs.events(job.id)
        worker = jobs.worker_id
    assert cancelled.status is Status.CANCELLED
    assert (events[-1].to_status, events[-1].reason, events[-1].worker) == (
        "CANCELLED",
        "cancelled",
        worker,
    )
