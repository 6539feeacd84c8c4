"""The lease heartbeat renews a running job's lease, so recovery never takes it from a live
server, and passes on a cancel requested through another server; a failing
round of lease maintenance is logged and retried, not fatal; a finishing job's claims of the
backlog take this server's lease length and never overbook its capacity."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from lensforge.errors import StoreError
from lensforge.execution.executors import CallControl
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import (
    ScriptedExecutor,
    block_until_cancelled,
    service,
    succeed,
    wait_for_status,
)

pytestmark = pytest.mark.anyio


def new() -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0)


async def test_a_cancel_requested_elsewhere_reaches_the_running_call() -> None:
    store = InMemoryJobStore()
    executor = ScriptedExecutor(block_until_cancelled)
    async with service(executor, store, lease_s=0.6, shutdown_grace_s=0.0) as jobs:
        job, _ = await jobs.submit(new())
        await wait_for_status(jobs, job.id, Status.RUNNING)
        await store.request_cancel(job.id)  # as another server's cancel does
        done = await jobs.wait(job.id, 5)
    assert done.status is Status.CANCELLED
    assert done.error is not None and done.error["error"]["code"] == "cancelled"
    assert len(executor.calls) == 1


async def test_a_running_jobs_lease_is_renewed_past_its_first_expiry() -> None:
    lease_s = 1.5  # the heartbeat runs every lease_s / 3 = 0.5 s: a second of slack under load
    store = InMemoryJobStore()
    async with service(ScriptedExecutor(block_until_cancelled), store, lease_s=lease_s) as jobs:
        job, _ = await jobs.submit(new())
        first_expiry = (await wait_for_status(jobs, job.id, Status.RUNNING)).lease_expires_at
        assert first_expiry is not None
        await asyncio.sleep(lease_s * 2)  # well past the first lease
        now = time.time()
        running = await store.get(job.id)
        assert running.status is Status.RUNNING
        assert running.attempts == 1  # never recovered as expired and run again
        assert running.lease_owner == jobs.worker_id
        assert running.lease_expires_at is not None
        assert running.lease_expires_at > first_expiry
        assert now < running.lease_expires_at <= now + lease_s + 0.05
        assert await store.expired_leases(now) == []
        await jobs.cancel(job.id)


class FlakyStore(InMemoryJobStore):
    """Its first lease renewal fails, as a database that went away for a moment."""

    failures = 1

    async def renew_leases(self, lease_owner: str, job_ids: Any, lease_s: float) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreError("the database is away")
        return await super().renew_leases(lease_owner, job_ids, lease_s)


async def test_a_failed_lease_round_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    with caplog.at_level(logging.ERROR, logger="lensforge.execution.leases"):
        async with service(
            ScriptedExecutor(block_until_cancelled), store, lease_s=0.6, shutdown_grace_s=0.0
        ) as jobs:
            job, _ = await jobs.submit(new())
            await wait_for_status(jobs, job.id, Status.RUNNING)
            first = await store.get(job.id)
            await asyncio.sleep(0.7)  # a failed round, then at least one good one
            later = await store.get(job.id)
    assert first is not None and later is not None
    assert first.lease_expires_at is not None and later.lease_expires_at is not None
    assert later.lease_expires_at > first.lease_expires_at
    (record,) = caplog.records
    assert record.getMessage() == "lease maintenance failed"
    assert record.event == "lease_maintenance_failed"  # type: ignore[attr-defined]
    assert record.exc_info is not None and record.exc_info[0] is StoreError


class SlowFinishStore(InMemoryJobStore):
    """A finish takes a moment (a real database's round trip), so finishes overlap."""

    async def finish(self, job: JobRecord, *args: Any, **options: Any) -> Any:
        await asyncio.sleep(0.01)
        return await super().finish(job, *args, **options)


async def test_overlapping_finishes_claim_the_backlog_within_capacity() -> None:
    store = SlowFinishStore()
    leases: list[float] = []

    async def quick(call: ToolCall, control: CallControl) -> Outcome:
        job = await store.get(call.job_id or "")
        assert job is not None and job.lease_expires_at is not None and job.started_at
        leases.append(job.lease_expires_at - job.started_at)
        await asyncio.sleep(0.005)
        return await succeed(call, control)

    executor = ScriptedExecutor(quick, capacity=2)
    async with service(executor, store, lease_s=7.0) as jobs:
        created = [(await jobs.submit(new()))[0] for _ in range(12)]
        done = [await jobs.wait(job.id, 10) for job in created]
    assert {job.status for job in done} == {Status.SUCCESS}
    assert executor.most_at_once == 2
    assert len(leases) == 12
    assert all(6.5 < lease < 7.5 for lease in leases)  # this server's lease_s, however claimed


async def test_each_transition_is_one_structured_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="lensforge.execution.jobs"):
        async with service(ScriptedExecutor()) as jobs:
            job = await jobs.submit_and_wait(new(), 5)
    lines = [r for r in caplog.records if getattr(r, "event", None) == "job_transition"]
    (line,) = lines  # RUNNING -> SUCCESS (the claim at creation is logged as job_claimed)
    assert line.getMessage() == f"job {job.id} RUNNING -> SUCCESS"
    fields = ("job_id", "plugin", "tool", "from_status", "to_status", "attempt")
    assert tuple(getattr(line, name) for name in fields) == (
        job.id,
        "p",
        "t",
        "RUNNING",
        "SUCCESS",
        1,
    )


async def test_a_fenced_result_is_logged_with_its_event(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryJobStore()
    release = asyncio.Event()

    async def late(call: ToolCall, control: CallControl) -> Outcome:
        await release.wait()
        return Outcome(result="stale")

    with caplog.at_level(logging.WARNING, logger="lensforge.execution.jobs"):
        async with service(ScriptedExecutor(late), store) as jobs:
            job, _ = await jobs.submit(NewJob(plugin="p", tool="t", inputs={}, max_attempts=2))
            await wait_for_status(jobs, job.id, Status.RUNNING)
            await store.transition(job.id, Status.RUNNING, Status.PENDING, lease_owner=None)
            await store.claim("other-server", 30.0, 1)
            release.set()
            for _ in range(200):
                if any(getattr(r, "event", None) == "job_result_fenced" for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
    (line,) = [r for r in caplog.records if getattr(r, "event", None) == "job_result_fenced"]
    assert line.job_id == job.id  # type: ignore[attr-defined]
    assert line.getMessage() == f"job {job.id} result refused: its lease was taken over"
