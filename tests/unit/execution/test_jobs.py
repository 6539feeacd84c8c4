"""The job lifecycle on the in-memory store: submit, run, retry, cancel, fencing, recovery,
back-pressure and graceful stop, with a scripted executor (no worker process, no SQLite)."""

from __future__ import annotations

import asyncio
import time

import pytest

from lensforge.errors import RateLimited, Timeout
from lensforge.execution import verdicts
from lensforge.execution.executors import CallControl
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.store import NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import (
    ScriptedExecutor,
    block_until_cancelled,
    fail,
    service,
    succeed,
    wait_for_status,
)

pytestmark = pytest.mark.anyio


def new(**options: object) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={"n": 1}, timeout_s=5.0, **options)  # type: ignore[arg-type]


async def test_submit_runs_the_job_and_records_every_transition() -> None:
    executor = ScriptedExecutor()
    async with service(executor) as jobs:
        job = await jobs.submit_and_wait(new(), 5)
        events = await jobs.events(job.id)
    assert job.status is Status.SUCCESS
    assert job.result == {"echo": {"n": 1}, "attempt": 1}
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUCCESS"),
    ]
    assert events[1].worker == events[2].worker == jobs.worker_id
    (call,) = executor.calls
    assert (call.job_id, call.timeout_s) == (job.id, 5.0)  # the limit read from the job


async def test_jobs_queued_beyond_capacity_all_run_never_more_than_capacity_at_once() -> None:
    async def slow(call: ToolCall, control: CallControl) -> Outcome:
        await asyncio.sleep(0.01)
        return await succeed(call, control)

    executor = ScriptedExecutor(slow, capacity=2)
    async with service(executor) as jobs:
        created = [(await jobs.submit(new()))[0] for _ in range(8)]
        done = [await jobs.wait(job.id, 5) for job in created]
    assert {job.status for job in done} == {Status.SUCCESS}
    assert executor.most_at_once == 2
    assert len(executor.calls) == 8


async def test_a_declared_retry_runs_again_until_it_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verdicts, "RETRY_BASE_S", 0.01)
    executor = ScriptedExecutor(scripts=[fail(), fail(), succeed])
    async with service(executor) as jobs:
        job = await jobs.submit_and_wait(new(max_attempts=3, retry_on=("plugin_error",)), 5)
        events = await jobs.events(job.id)
    assert (job.status, job.attempts) == (Status.SUCCESS, 3)
    retries = [e.reason for e in events if e.to_status == "PENDING" and e.from_status]
    assert len(retries) == 2
    assert all(reason and reason.startswith("retry after plugin_error") for reason in retries)


async def test_retries_stop_at_max_attempts_with_a_retryable_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verdicts, "RETRY_BASE_S", 0.01)
    async with service(ScriptedExecutor(fail())) as jobs:
        job = await jobs.submit_and_wait(new(max_attempts=2, retry_on=("plugin_error",)), 5)
    assert (job.status, job.attempts) == (Status.FAILED, 2)
    assert job.error is not None and job.error["error"]["retryable"] is True
    assert job.traceback == "tb"


async def test_a_code_the_job_does_not_retry_fails_at_once() -> None:
    executor = ScriptedExecutor(fail(Timeout))  # type: ignore[arg-type]
    async with service(executor) as jobs:
        job = await jobs.submit_and_wait(new(max_attempts=3, retry_on=("plugin_error",)), 5)
    assert (job.status, job.attempts) == (Status.FAILED, 1)
    assert job.error is not None
    assert (job.error["error"]["code"], job.error["error"]["retryable"]) == ("timeout", False)


async def test_cancel_a_pending_job_is_immediate() -> None:
    async with service(ScriptedExecutor()) as jobs:
        job, _ = await jobs.submit(new(not_before=time.time() + 3600))
        cancelled = await jobs.cancel(job.id)
        events = await jobs.events(job.id)
    assert cancelled.status is Status.CANCELLED
    assert events[-1].reason == "cancelled"


async def test_cancel_a_running_job_stops_its_call() -> None:
    async with service(ScriptedExecutor(block_until_cancelled)) as jobs:
        job, _ = await jobs.submit(new())
        await wait_for_status(jobs, job.id, Status.RUNNING)
        cancelled = await jobs.cancel(job.id)
    assert cancelled.status is Status.CANCELLED
    assert cancelled.cancel_requested is True
    assert cancelled.error is not None and cancelled.error["error"]["code"] == "cancelled"


async def test_a_finish_after_the_lease_was_taken_over_is_refused() -> None:
    """Fencing at the service level: the job was recovered and claimed by another server
    while this one ran it; this server's result must not overwrite the new owner's job."""
    store = InMemoryJobStore()
    release = asyncio.Event()

    async def late(call: ToolCall, control: CallControl) -> Outcome:
        await release.wait()
        return Outcome(result="stale")

    async with service(ScriptedExecutor(late), store) as jobs:
        job, _ = await jobs.submit(new(max_attempts=2))
        await wait_for_status(jobs, job.id, Status.RUNNING)
        running = await store.get(job.id)
        assert running is not None and running.lease_owner == jobs.worker_id
        await store.transition(job.id, Status.RUNNING, Status.PENDING, lease_owner=None)
        (taken,) = await store.claim("other-server", 30.0, 1)
        release.set()
        for _ in range(100):  # the run is over once its slot is free
            if not executor_busy(jobs):
                break
            await asyncio.sleep(0.01)
        after = await store.get(job.id)
    assert after is not None
    assert (after.status, after.lease_owner, after.result) == (Status.RUNNING, "other-server", None)
    assert taken.attempts == 2


def executor_busy(jobs: object) -> bool:
    return bool(jobs._running)  # type: ignore[attr-defined]


async def test_recovery_requeues_an_expired_lease_with_an_attempt_counted() -> None:
    store = InMemoryJobStore()
    await store.create(new(max_attempts=1))
    (lost,) = await store.claim("gone:1:x", -1.0, 1)  # its lease already expired
    async with service(ScriptedExecutor(), store, dispatch=False) as jobs:  # start recovers
        assert await jobs.recover() == 0  # nothing left to recover
        job = await jobs.get(lost.id)
        events = await jobs.events(lost.id)
    assert (job.status, job.attempts, job.lease_owner) == (Status.PENDING, 1, None)
    assert events[-1].reason == "lease expired"


async def test_recovery_fails_a_job_whose_attempts_are_spent_as_worker_lost() -> None:
    store = InMemoryJobStore()
    await store.create(new(max_attempts=1))
    (lost,) = await store.claim("gone:1:x", -1.0, 1)
    async with service(ScriptedExecutor(), store, dispatch=False, worker_lost_attempts=1) as jobs:
        await jobs.recover()
        job = await jobs.get(lost.id)
    assert job.status is Status.FAILED
    assert job.error is not None and job.error["error"]["code"] == "worker_lost"


async def test_a_full_queue_answers_rate_limited() -> None:
    async with service(ScriptedExecutor(), dispatch=False, max_queue=2) as jobs:
        await jobs.submit(new())
        await jobs.submit(new())
        with pytest.raises(RateLimited) as info:
            await jobs.submit(new())
    assert info.value.headers == {"Retry-After": "1"}
    assert info.value.details == {"max_queue": 2}


async def test_a_graceful_stop_hands_running_jobs_back_without_charging_an_attempt() -> None:
    store = InMemoryJobStore()
    async with service(
        ScriptedExecutor(block_until_cancelled), store, shutdown_grace_s=0.05
    ) as jobs:
        job, _ = await jobs.submit(new())
        await wait_for_status(jobs, job.id, Status.RUNNING)
    after = await store.get(job.id)
    events = await store.events(job.id)
    assert after is not None
    assert (after.status, after.attempts, after.lease_owner) == (Status.PENDING, 0, None)
    assert events[-1].reason == "server shutdown"


async def test_progress_reports_reach_the_store() -> None:
    store = InMemoryJobStore()
    release = asyncio.Event()

    async def reporting(call: ToolCall, control: CallControl) -> Outcome:
        assert control.on_progress is not None
        control.on_progress(0.5, "half way")
        await release.wait()
        return Outcome(result=1)

    async with service(ScriptedExecutor(reporting), store) as jobs:
        job, _ = await jobs.submit(new())
        for _ in range(200):
            current = await store.get(job.id)
            if current is not None and current.progress == 0.5:
                break
            await asyncio.sleep(0.01)
        assert current is not None and current.progress_message == "half way"
        release.set()
        done = await jobs.wait(job.id, 5)
    assert (done.status, done.progress) == (Status.SUCCESS, 1.0)
