"""A job's task ends cleanly: whatever the verdict, the task that ran it finishes without an
exception nobody retrieves (one would surface as "Task exception was never retrieved" and
skip freeing the job's slot until the next poll)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from lensforge.store import NewJob, Status
from tests.unit.execution.support import ScriptedExecutor, fail, service, succeed

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("script", [succeed, fail()], ids=["success", "failure"])
async def test_a_finished_jobs_task_leaves_no_unretrieved_exception(script: Any) -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        async with service(ScriptedExecutor(script)) as jobs:
            for _ in range(3):
                job = await jobs.submit_and_wait(
                    NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0), 5
                )
                assert job.status in (Status.SUCCESS, Status.FAILED)
            for _ in range(5):  # let the tasks finish, then collect them
                await asyncio.sleep(0.01)
            gc.collect()
            assert not jobs._running
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in unhandled] == []
