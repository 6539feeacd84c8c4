"""Fairness in the running service: one caller's long jobs do not hold back another's."""

from __future__ import annotations

import asyncio
import time

import pytest

from lensforge.execution.executors import CallControl
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, service

pytestmark = pytest.mark.anyio


async def long_or_short(call: ToolCall, control: CallControl) -> Outcome:
    if call.inputs.get("long"):
        stopped = asyncio.Event()
        control.add_cancel_listener(stopped.set)
        await stopped.wait()
    return Outcome(result={"ok": True})


def job(owner: str, *, long: bool) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={"long": long}, owner=owner, timeout_s=60.0)


async def test_hanging_jobs_of_one_key_leave_room_for_another_keys_short_jobs() -> None:
    executor = ScriptedExecutor(long_or_short, capacity=4)
    async with service(
        executor, InMemoryJobStore(), max_running_per_key=2, shutdown_grace_s=0
    ) as jobs:
        for _ in range(50):
            await jobs.submit(job("hog", long=True))
        started = time.monotonic()
        short = [(await jobs.submit(job("quick", long=False)))[0] for _ in range(5)]
        done = [await jobs.wait(j.id, 5.0) for j in short]
        assert [j.status for j in done] == [Status.SUCCESS] * 5
        assert time.monotonic() - started < 2.0
        running = await jobs.store.list(status=Status.RUNNING, owner="hog")
        assert len(running) == 2  # the cap held
        assert executor.most_at_once <= 4


async def test_without_a_cap_callers_still_interleave() -> None:
    executor = ScriptedExecutor(long_or_short, capacity=1)
    store = InMemoryJobStore()
    async with service(executor, store, dispatch=False) as jobs:
        for owner in ("a", "a", "a", "b", "b"):
            await jobs.submit(job(owner, long=False))
        claimed: list[JobRecord] = await store.claim("w", 30.0, 4)
        assert [j.owner for j in claimed] == ["a", "b", "a", "b"]
