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


def test_the_pool_never_runs_more_calls_than_it_has_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        MEETING.reset()
        async with pool(tmp_path, 1) as executor:
            both = await asyncio.gather(
                executor.run(call("meet", wait_s=0.3), CallControl()),
                executor.run(call("meet", wait_s=0.3), CallControl()),
            )
        assert [outcome.error_code for outcome in both] == ["plugin_error", "plugin_error"]
        MEETING.reset()

    asyncio.run(scenario())


def test_an_executor_not_started_or_stopped_takes_no_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = ToolRunner(registry(), BlobStore(tmp_path), MediaLimits())
        never = ThreadExecutor(runner, 1)
        await never.stop()  # nothing to stop
        with pytest.raises(AssertionError, match=r"^start\(\) the executor first$"):
            await never.run(call("steps"), CallControl())
        async with pool(tmp_path, 1) as executor:
            pass
        await executor.stop()  # twice: nothing left to stop
        with pytest.raises(AssertionError, match=r"^start\(\) the executor first$"):
            await executor.run(call("steps"), CallControl())

    asyncio.run(scenario())


def test_a_time_limit_of_zero_times_out_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pool(tmp_path, 1) as executor:
            outcome = await executor.run(call("linger", timeout_s=0, seconds=5), CallControl())
        assert outcome.error_code == "timeout" and outcome.duration_s == 0.0
        assert outcome.error is not None
        assert outcome.error["error"]["message"] == "The tool ran past its time limit of 0 s."

    asyncio.run(scenario())


def test_stop_returns_at_once_and_drops_the_calls_not_started(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pool(tmp_path, 1) as executor:
            running = asyncio.ensure_future(executor.run(call("linger", seconds=1), CallControl()))
            await asyncio.sleep(0.1)  # it holds the one thread
            queued = asyncio.ensure_future(executor.run(call("linger", seconds=0), CallControl()))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            await executor.stop()
            assert time.monotonic() - started < 0.5  # it does not wait for the running tool
            with pytest.raises(asyncio.CancelledError):
                await queued  # never started: dropped, not run after the stop
            outcome = await running  # the running one finishes on its own
            assert outcome.result is not None and outcome.result["cancelled"] is False

    asyncio.run(scenario())
