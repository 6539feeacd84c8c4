"""The dispatcher is woken when work is due, so a slow safety-net poll never delays it: a
retry runs when its back-off ends, and a timed wake-up claims a job the loop did not see."""

from __future__ import annotations

import asyncio
import time

import pytest

from lensforge.execution import verdicts
from lensforge.execution.dispatch import Dispatcher
from lensforge.execution.executors import CallControl
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, fail, service, succeed

pytestmark = pytest.mark.anyio
SLOW_POLL_S = 30.0  # far beyond each test's bound: only a wake-up can start the work


def new(**options: object) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0, **options)  # type: ignore[arg-type]


async def test_a_retry_runs_when_its_back_off_ends_not_at_the_next_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verdicts, "RETRY_BASE_S", 0.05)
    executor = ScriptedExecutor(scripts=[fail(), succeed])
    async with service(executor, poll_interval_s=SLOW_POLL_S) as jobs:
        started = time.monotonic()
        job = await jobs.submit_and_wait(new(max_attempts=2, retry_on=("plugin_error",)), 5)
        took = time.monotonic() - started
    assert (job.status, job.attempts) == (Status.SUCCESS, 2)
    assert took < 4


async def test_a_timed_wake_up_claims_what_is_pending() -> None:
    store = InMemoryJobStore()
    job, _ = await store.create(new())
    started: list[JobRecord] = []
    dispatcher = Dispatcher(
        store,
        worker_id="me",
        capacity=lambda: 1,
        busy=lambda: len(started),
        start=started.append,
        lease_s=30.0,
        poll_interval_s=SLOW_POLL_S,
        max_queue=10,
    )
    await dispatcher.start()
    try:
        await asyncio.sleep(0.05)
        assert started == []  # nothing woke the loop yet
        dispatcher.wake(0.05)
        for _ in range(200):
            if started:
                break
            await asyncio.sleep(0.01)
    finally:
        await dispatcher.stop()
    assert [j.id for j in started] == [job.id]


async def test_a_job_that_ends_at_once_wakes_its_submitter_at_once() -> None:
    """submit_and_wait registers its waiter before the job can start: a job finished within
    the loop step that started it still wakes it, not the recheck (here 60 s away)."""
    async with service(ScriptedExecutor(succeed), poll_interval_s=SLOW_POLL_S) as jobs:
        started = time.monotonic()
        job = await jobs.submit_and_wait(new(), 5)
        took = time.monotonic() - started
    assert job.status is Status.SUCCESS
    assert took < 4


async def test_a_submitter_outlasting_several_rechecks_gets_its_job() -> None:
    async def slow(call: ToolCall, control: CallControl) -> Outcome:
        await asyncio.sleep(0.3)
        return await succeed(call, control)

    async with service(ScriptedExecutor(slow), poll_interval_s=0.02) as jobs:
        job = await jobs.submit_and_wait(new(), 5)  # read again every 0.04 s meanwhile
    assert (job.status, job.result) == (Status.SUCCESS, {"echo": {}, "attempt": 1})
