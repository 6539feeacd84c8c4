"""Checkpoints through the job layer: stored in the tool's order, fenced, stored before the
result, and handed back as ``ctx.resume`` when a retried job runs again; and the thread
executor's ToolContext carrying both ways."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lensforge import Plugin, ToolContext, tool
from lensforge.blobs import BlobStore
from lensforge.errors import WorkerLost
from lensforge.execution.executors import CallControl, ThreadExecutor
from lensforge.execution.progress import ProgressReporter
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.registry import load_registry
from lensforge.store import NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import FlakyCheckpoints, ScriptedExecutor, service

pytestmark = pytest.mark.anyio


def item(index: int) -> dict[str, Any]:
    return {"index": index, "timestamp_s": index / 10, "result": index * 2}


async def crash_after_two_chunks(call: ToolCall, control: CallControl) -> Outcome:
    assert control.resume is None and control.on_checkpoint is not None
    control.on_checkpoint({"next": 2}, [item(0), item(1)])
    control.on_checkpoint({"next": 4}, [item(2), item(3)])
    await asyncio.sleep(0.05)
    return Outcome(error=WorkerLost("killed").envelope())


async def finish_from_resume(call: ToolCall, control: CallControl) -> Outcome:
    assert control.on_checkpoint is not None
    start = (control.resume or {})["next"]
    for i in range(start, 6, 2):
        control.on_checkpoint({"next": i + 2}, [item(i), item(i + 1)])
    return Outcome(result={"resumed_at": start})  # returns before its writes are stored


async def test_a_retried_job_resumes_from_its_last_checkpoint() -> None:
    store = InMemoryJobStore()
    executor = ScriptedExecutor(scripts=[crash_after_two_chunks, finish_from_resume])
    async with service(executor, store) as jobs:
        job, _ = await jobs.submit(NewJob(plugin="p", tool="t", inputs={}))
        done = await jobs.wait(job.id, timeout_s=5)
    assert done.status is Status.SUCCESS and done.attempts == 2
    assert done.result == {"resumed_at": 4}
    frames = await store.frames(job.id)
    assert [(f.seq, f.frame, f.item["result"]) for f in frames] == [(i, i, i * 2) for i in range(6)]
    checkpoint = await store.checkpoint(job.id)
    assert checkpoint is not None and checkpoint.state == {"next": 6}


async def test_a_refused_checkpoint_cancels_the_call() -> None:
    store = InMemoryJobStore()
    job, _ = await store.create(NewJob(plugin="p", tool="t", inputs={}))  # PENDING: not ours
    reporter = ProgressReporter(store, "w1")
    refused = asyncio.Event()
    reporter.checkpointer(job.id, refused.set)({"next": 1}, [item(0)])
    await asyncio.sleep(0)
    await reporter.drain(job.id)
    assert refused.is_set()
    assert await store.frames(job.id) == [] and await store.checkpoint(job.id) is None


class Counter(Plugin):
    """Counts in checkpointed chunks."""

    name = "counter"
    version = "0.0.1"

    @tool
    def count(self, to: int, ctx: ToolContext | None = None) -> dict[str, Any]:
        """Count to ``to`` in chunks of two, from where a checkpoint left off."""
        assert ctx is not None
        state = dict(ctx.resume or {"next": 0, "total": 0})
        start = state["next"]
        while state["next"] < to:
            n = state["next"]
            state["total"] += n
            state["next"] = n + 1
            if n % 2 == 1:
                ctx.checkpoint(state, [{"index": n - 1}, {"index": n}])
                state["total"] += 0  # the stored state is a copy: changing ours is safe
        return {"total": state["total"], "started_at": start, "durable": ctx.durable}


async def test_the_thread_executor_carries_resume_state_and_checkpoints(tmp_path: Any) -> None:
    registry = load_registry(allow=["counter"], extra=[Counter])
    registry.initialize()
    executor = ThreadExecutor(ToolRunner(registry, BlobStore(tmp_path), MediaLimits()), 1)
    await executor.start()
    seen: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    try:
        control = CallControl(
            on_checkpoint=lambda state, items: seen.append((state, items)),
            resume={"next": 2, "total": 1},
        )
        outcome = await executor.run(ToolCall("counter", "count", {"to": 6}, job_id="j"), control)
        plain = await executor.run(ToolCall("counter", "count", {"to": 6}), CallControl())
    finally:
        await executor.stop()
    assert outcome.result == {"total": 15, "started_at": 2, "durable": True}
    assert seen == [
        ({"next": 4, "total": 6}, [{"index": 2}, {"index": 3}]),
        ({"next": 6, "total": 15}, [{"index": 4}, {"index": 5}]),
    ]
    assert plain.result == {"total": 15, "started_at": 0, "durable": False}


def test_a_ray_plugin_actor_returns_the_checkpoints_not_taken_with_the_result(
    tmp_path: Any,
) -> None:
    """The actor's body, without Ray: the executor polls ``take_checkpoints`` while a call
    runs; those still held when it ends come back with its outcome, and are gone from it."""
    from lensforge.execution.executors.ray import PluginHost
    from lensforge.execution.worker import WorkerConfig, plugin_path
    from lensforge.settings import Settings

    settings = Settings(data_dir=tmp_path, plugins_allow=["counter"])
    host = PluginHost(WorkerConfig(settings, MediaLimits(), [plugin_path(Counter)]), "counter")
    call = ToolCall("counter", "count", {"to": 4}, job_id="j", resume={"next": 0, "total": 0})
    wire, left = host.run(call.to_wire())
    assert Outcome(*wire).result == {"total": 6, "started_at": 0, "durable": True}
    assert [state["next"] for state, _ in left] == [2, 4]
    assert host.take_checkpoints("j") == []


async def test_items_of_a_failed_checkpoint_go_with_the_next_one() -> None:
    store = FlakyCheckpoints()
    job, _ = await store.create(NewJob(plugin="p", tool="t", inputs={}), claim_for="w1")
    reporter = ProgressReporter(store, "w1")
    checkpoint = reporter.checkpointer(job.id, lambda: None)
    checkpoint({"next": 2}, [item(0), item(1)])  # fails
    checkpoint({"next": 3}, [item(2)])
    await reporter.drain(job.id)
    assert [f.frame for f in await store.frames(job.id)] == [0, 1, 2]
    stored = await store.checkpoint(job.id)
    assert stored is not None and stored.state == {"next": 3}
