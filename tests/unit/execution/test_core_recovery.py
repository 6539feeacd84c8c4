"""What recovery and a graceful stop write: the worker_lost failure's envelope and event, the
start-up-only judgement of dead local owners, the attempt given back at a stop, the fence
that keeps a stop off a job another server took over, and the worker named in each event."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest

from lensforge.execution import verdicts
from lensforge.execution.leases import host_prefix
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import (
    ScriptedExecutor,
    block_until_cancelled,
    service,
    wait_for_status,
)

pytestmark = pytest.mark.anyio


def new(**options: object) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={"n": 1}, timeout_s=5.0, **options)  # type: ignore[arg-type]


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


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


async def test_start_up_recovers_expired_leases_and_dead_local_owners_together(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both kinds are recovered, each once (a job of a dead local owner whose lease also
    expired is listed twice: the second try is refused and skipped, not the end)."""
    store = InMemoryJobStore()
    dead = f"{host_prefix()}{a_dead_pid()}:abcd"
    ids = []
    for owner, lease_s in [(dead, -1.0), ("elsewhere/1:2:x", -1.0), (dead, 30.0)]:
        await store.create(new(max_attempts=2))
        (job,) = await store.claim(owner, lease_s, 1)
        ids.append(job.id)
    with caplog.at_level(logging.WARNING, logger="lensforge.execution.leases"):
        async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
            assert await jobs.recover() == 0  # start-up took them all
            after = [await jobs.get(job_id) for job_id in ids]
    assert [(job.status, job.attempts) for job in after] == [(Status.PENDING, 1)] * 3
    # counted once each, and logged once: a recovery of nothing is not logged
    assert [r.getMessage() for r in caplog.records] == ["recovered 3 jobs with expired leases"]


async def test_a_recovery_is_logged_with_its_count_and_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
        for _ in range(2):
            await store.create(new(max_attempts=2))
            await store.claim("gone:1:x", -1.0, 1)
        with caplog.at_level(logging.WARNING, logger="lensforge.execution.leases"):
            assert await jobs.recover() == 2
    (record,) = caplog.records
    assert record.getMessage() == "recovered 2 jobs with expired leases"
    assert record.event == "jobs_recovered"  # type: ignore[attr-defined]


class RacedStore(InMemoryJobStore):
    """Between the read of expired leases and their recovery, another server recovers the
    jobs and claims them again (the race the recovery's fence is for)."""

    async def expired_leases(self, now: float | None = None, limit: int = 500) -> list[JobRecord]:
        expired = await super().expired_leases(now, limit)
        for job in expired:
            await self.transition(job.id, Status.RUNNING, Status.PENDING, lease_owner=None)
            await self.claim("other-server", 30.0, 1, [job.id])
        return expired


async def test_a_recovery_never_takes_a_job_another_server_leased_meanwhile() -> None:
    store = RacedStore()
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:
        await store.create(new(max_attempts=3))
        (job,) = await InMemoryJobStore.claim(store, "gone:1:x", -1.0, 1)
        assert await jobs.recover() == 0
        after = await jobs.get(job.id)
    assert (after.status, after.lease_owner, after.attempts) == (Status.RUNNING, "other-server", 2)


async def test_the_lease_loop_renews_leases_and_recovers_only_expired_ones() -> None:
    """Every third of ``lease_s`` (0.2 s at least): this server's running jobs get a fresh
    lease, expired leases are recovered; a dead local owner's valid lease is left to run
    out (only start-up judges those)."""
    store = InMemoryJobStore()
    async with service(
        ScriptedExecutor(block_until_cancelled), store, lease_s=0.9, shutdown_grace_s=0.0
    ) as jobs:
        mine, _ = await jobs.submit(new())
        await wait_for_status(jobs, mine.id, Status.RUNNING)
        first = await store.get(mine.id)
        await store.create(new(max_attempts=2))
        (orphan,) = await store.claim(f"{host_prefix()}{a_dead_pid()}:abcd", 30.0, 1)
        await store.create(new(max_attempts=2))
        (expired,) = await store.claim("elsewhere/1:2:x", -1.0, 1)
        await asyncio.sleep(0.8)  # two or more rounds of the loop
        renewed = await store.get(mine.id)
        left = await store.get(orphan.id)
        recovered = await store.get(expired.id)
    assert first is not None and renewed is not None and left is not None
    assert first.lease_expires_at is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at > first.lease_expires_at + 0.2
    assert (left.status, left.lease_owner) == (Status.RUNNING, orphan.lease_owner)
    assert recovered is not None  # PENDING again: the one slot is busy with ``mine``
    assert (recovered.status, recovered.attempts) == (Status.PENDING, 1)
