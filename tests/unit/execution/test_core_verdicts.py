"""The verdicts that decide what a job's row says after a run: a cancellation (by request or
reported by the tool) with its full envelope, and a retry's jittered exponential back-off."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace

import pytest

from lensforge.errors import Cancelled, PluginError
from lensforge.execution import verdicts
from lensforge.execution.executors import CallControl
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, block_until_cancelled, fail, service

pytestmark = pytest.mark.anyio


async def a_job(**options: object) -> JobRecord:
    new = NewJob(plugin="p", tool="t", inputs={}, **options)  # type: ignore[arg-type]
    job, _ = await InMemoryJobStore().create(new, claim_for="w")
    return job


def assert_cancelled(verdict: verdicts.Verdict, job: JobRecord, before: float) -> None:
    assert (verdict.status, verdict.reason) == (Status.CANCELLED, "cancelled")
    error = verdict.values["error"]["error"]
    assert (error["code"], error["plugin"], error["tool"], error["job_id"]) == (
        "cancelled",
        "p",
        "t",
        job.id,
    )
    assert before <= verdict.values["finished_at"] <= time.time()


async def test_a_cancel_request_wins_over_the_outcome() -> None:
    job = await a_job()
    before = time.time()
    verdict = verdicts.of_outcome(job, Outcome(result={"done": True}), cancelled=True)
    assert_cancelled(verdict, job, before)
    assert "result" not in verdict.values


async def test_a_tool_that_reports_its_cancellation_is_cancelled() -> None:
    job = await a_job()
    before = time.time()
    outcome = Outcome(error=Cancelled().envelope())  # without the job's names
    assert_cancelled(verdicts.of_outcome(job, outcome, cancelled=False), job, before)


async def test_a_cancelled_running_job_stores_the_envelope_and_the_reason() -> None:
    async with service(ScriptedExecutor(block_until_cancelled)) as jobs:
        job, _ = await jobs.submit(NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0))
        for _ in range(500):
            if (await jobs.get(job.id)).status is Status.RUNNING:
                break
            await asyncio.sleep(0.01)
        cancelled = await jobs.cancel(job.id)
        events = await jobs.events(job.id)
    assert cancelled.status is Status.CANCELLED and cancelled.error is not None
    error = cancelled.error["error"]
    assert (error["plugin"], error["tool"], error["job_id"]) == ("p", "t", job.id)
    assert (events[-1].from_status, events[-1].reason) == ("RUNNING", "cancelled")


def retry_delay(verdict: verdicts.Verdict) -> float:
    assert verdict.reason is not None
    found = re.fullmatch(r"retry after plugin_error in (\d+\.\d\d)s", verdict.reason)
    assert found is not None, verdict.reason
    return float(found.group(1))


@pytest.mark.parametrize(("attempt", "full_s"), [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 60.0)])
async def test_a_retry_waits_half_to_all_of_its_doubling_back_off(
    attempt: int, full_s: float
) -> None:
    """``RETRY_BASE_S * 2 ** (attempt - 1)``, capped at ``RETRY_CAP_S``, times a jitter in
    [0.5, 1]: sampled, the delays stay in that band and use more than one half of it."""
    job = replace(await a_job(max_attempts=20, retry_on=("plugin_error",)), attempts=attempt)
    failed = Outcome(error=PluginError("it broke").envelope())
    delays = []
    for _ in range(40):
        before = time.time()
        verdict = verdicts.with_retry(job, verdicts.of_outcome(job, failed, cancelled=False), 3)
        after = time.time()
        assert verdict.status is Status.PENDING
        delay = retry_delay(verdict)
        assert full_s / 2 - 0.005 <= delay <= full_s + 0.005
        assert before + delay - 0.005 <= verdict.values["not_before"] <= after + delay + 0.005
        delays.append(delay)
    assert min(delays) < full_s * 0.7 and max(delays) > full_s * 0.8


async def test_the_owner_of_a_job_may_read_the_images_its_tool_produced() -> None:
    digest = "sha256:" + "ab" * 32

    async def drawing(call: ToolCall, control: CallControl) -> Outcome:
        return Outcome(result={"image": digest}, artifacts=[digest])

    async with service(ScriptedExecutor(drawing)) as jobs:
        new = NewJob(plugin="p", tool="t", inputs={}, owner="alice", timeout_s=5.0)
        job = await jobs.submit_and_wait(new, 5)
        assert job.status is Status.SUCCESS
        assert await jobs.owns_blob(digest, "alice")
        assert not await jobs.owns_blob(digest, "bob")


async def test_a_failure_is_recorded_with_its_code_as_the_reason() -> None:
    async with service(ScriptedExecutor(fail())) as jobs:
        job = await jobs.submit_and_wait(NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0), 5)
        events = await jobs.events(job.id)
    assert job.status is Status.FAILED
    assert (events[-1].to_status, events[-1].reason) == ("FAILED", "plugin_error")
