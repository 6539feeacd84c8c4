"""The ``thread`` executor (``executors/thread.py``): calls on a bounded pool of threads in
this process, a time limit that answers ``timeout`` and tells the tool to stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from lensforge.blobs import BlobStore
from lensforge.execution.executors import CallControl
from lensforge.execution.executors.thread import ThreadExecutor
from lensforge.execution.tool_runner import ToolCall, ToolRunner
from lensforge.media import MediaLimits
from tests.unit.execution.front_support import MEETING, registry


@asynccontextmanager
async def pool(root: Path, workers: int) -> AsyncIterator[ThreadExecutor]:
    executor = ThreadExecutor(ToolRunner(registry(), BlobStore(root), MediaLimits()), workers)
    await executor.start()
    try:
        yield executor
    finally:
        await executor.stop()


def call(tool: str, timeout_s: float | None = 5.0, **inputs: object) -> ToolCall:
    return ToolCall(plugin="front", tool=tool, inputs=inputs, job_id="j1", timeout_s=timeout_s)


def test_a_call_runs_on_a_pool_thread_with_its_controls(tmp_path: Path) -> None:
    async def scenario() -> None:
        heard: list[float] = []
        async with pool(tmp_path, 1) as executor:
            assert executor.capacity == 1
            control = CallControl(lambda fraction, text: heard.append(fraction))
            outcome = await executor.run(call("steps", n=2), control)
            assert outcome.result == {"cancelled": False} and heard == [0.5, 1.0]
            outcome = await executor.run(call("linger", seconds=0), CallControl())
            assert outcome.result is not None
            assert outcome.result["thread"].startswith("lensforge-tool")

    asyncio.run(scenario())


def test_a_call_past_its_time_limit_times_out_and_its_tool_is_told_to_stop(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with pool(tmp_path, 1) as executor:
            control = CallControl()
            outcome = await executor.run(call("linger", timeout_s=0.1, seconds=30), control)
            assert outcome.error is not None and outcome.duration_s == 0.1
            error = outcome.error["error"]
            assert error["code"] == "timeout"
            assert error["message"] == "The tool ran past its time limit of 0.1 s."
            assert error["details"] == {"timeout_s": 0.1}
            assert (error["plugin"], error["tool"], error["job_id"]) == ("front", "linger", "j1")
            assert control.cancel_event.is_set()
            started = time.monotonic()  # the one thread is free again: the tool stopped
            following = await executor.run(call("linger", seconds=0), CallControl())
            assert following.error is None and time.monotonic() - started < 5

    asyncio.run(scenario())


def test_a_call_without_a_time_limit_runs_to_its_end(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pool(tmp_path, 1) as executor:
            outcome = await executor.run(
                call("linger", timeout_s=None, seconds=0.05), CallControl()
            )
            assert outcome.result is not None and outcome.result["cancelled"] is False

    asyncio.run(scenario())


def test_the_pool_runs_as_many_calls_at_once_as_it_has_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        MEETING.reset()
        async with pool(tmp_path, 2) as executor:
            assert executor.capacity == 2
            both = await asyncio.gather(
                executor.run(call("meet"), CallControl()),
                executor.run(call("meet"), CallControl()),
            )
        assert [outcome.result for outcome in both] == [{"met": True}, {"met": True}]

    asyncio.run(scenario())


def test_a_stopped_executor_takes_no_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pool(tmp_path, 1) as executor:
            pass
        await executor.stop()  # twice: nothing left to stop
        with pytest.raises(AssertionError, match=r"start\(\) the executor first"):
            await executor.run(call("steps"), CallControl())

    asyncio.run(scenario())
