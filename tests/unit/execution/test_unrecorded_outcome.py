"""A run whose outcome the store refuses to record fails at once with an internal error,
rather than sitting RUNNING until its lease expires (JobExecutionService._fail_internal)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from lensforge.errors import StoreError
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, service

pytestmark = pytest.mark.anyio


class RefusesSuccess(InMemoryJobStore):
    """The in-memory store, except that recording a SUCCESS fails (a result it cannot write);
    with ``refuse_all`` every finish fails, the internal failure too."""

    def __init__(self, *, refuse_all: bool = False) -> None:
        super().__init__()
        self.refuse_all = refuse_all
        self.refused = 0

    async def finish(self, job: JobRecord, to_status: Status, *args: Any, **kwargs: Any) -> Any:
        if to_status is Status.SUCCESS or self.refuse_all:
            self.refused += 1
            raise StoreError("disk full")
        return await super().finish(job, to_status, *args, **kwargs)


async def test_a_result_the_store_refuses_fails_the_job_with_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RefusesSuccess()
    before = time.time()
    with caplog.at_level(logging.ERROR, logger="lensforge"):
        async with service(ScriptedExecutor(), store, lease_s=60.0) as jobs:
            submitted, _ = await jobs.submit(NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0))
            job = await jobs.wait(submitted.id, 5)
            events = await jobs.events(job.id)
    assert job.status is Status.FAILED  # now, not after the 60 s lease
    assert job.error is not None
    error = job.error["error"]
    assert error["code"] == "internal_error"
    assert error["message"] == (
        "The job's outcome could not be recorded; the server log has the details."
    )
    assert (error["plugin"], error["tool"], error["job_id"]) == ("p", "t", job.id)
    assert job.finished_at is not None and before <= job.finished_at <= time.time()
    assert (events[-1].to_status, events[-1].reason) == ("FAILED", "internal")
    assert events[-1].worker == jobs.worker_id
    assert store.refused == 1
    assert any(r.getMessage() == f"job {job.id} could not be finished" for r in caplog.records)


async def test_when_even_the_failure_cannot_be_recorded_the_job_is_left_to_lease_expiry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RefusesSuccess(refuse_all=True)
    with caplog.at_level(logging.ERROR, logger="lensforge"):
        async with service(ScriptedExecutor(), store, lease_s=60.0) as jobs:
            submitted, _ = await jobs.submit(NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0))
            for _ in range(500):
                if store.refused == 2:
                    break
                await asyncio.sleep(0.01)
            job = await jobs.get(submitted.id)
            assert not jobs._running  # the slot is freed for the next job
    assert store.refused == 2  # the result, then the internal failure
    assert job.status is Status.RUNNING  # recovery fails or requeues it when the lease expires
    messages = [r.getMessage() for r in caplog.records]
    assert f"job {job.id} could not be failed either" in messages
