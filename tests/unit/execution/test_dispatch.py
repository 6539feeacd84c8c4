"""The dispatcher's capacity accounting and the three ways a job gets claimed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lensforge.errors import RateLimited
from lensforge.execution.dispatch import Dispatcher
from lensforge.execution.executors import CallControl
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, service

pytestmark = pytest.mark.anyio


def new(**options: object) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={}, timeout_s=5.0, **options)  # type: ignore[arg-type]


def dispatcher(store: InMemoryJobStore, started: list[JobRecord], capacity: int = 2) -> Dispatcher:
    return Dispatcher(
        store,
        worker_id="me",
        capacity=lambda: capacity,
        busy=lambda: len(started),
        start=started.append,
        lease_s=30.0,
        poll_interval_s=0.01,
        max_queue=3,
    )


async def test_a_new_job_is_claimed_at_creation_only_when_idle_and_due() -> None:
    started: list[JobRecord] = []
    d = dispatcher(InMemoryJobStore(), started)
    assert d.claim_for_new(new()) is None  # not accepting before start
    await d.start()
    try:
        assert d.claim_for_new(new()) == "me"
        assert d.claim_for_new(new(not_before=time.time() + 60)) is None
        d.pending = 1  # a backlog goes first
        assert d.claim_for_new(new()) is None
        d.pending, d.reserved = 0, 2  # every slot reserved
        assert d.claim_for_new(new()) is None
    finally:
        await d.stop()


async def test_a_finish_claims_for_its_own_slot_and_the_free_ones_only_with_a_backlog() -> None:
    started: list[JobRecord] = []
    d = dispatcher(InMemoryJobStore(), started, capacity=3)
    await d.start()
    try:
        started.append(None)  # type: ignore[arg-type]  # one job running: two slots free
        assert d.claim_next() == 0  # no backlog
        d.pending = 5
        assert d.claim_next() == 3  # its own slot and the two free ones
    finally:
        await d.stop()


async def test_the_loop_claims_up_to_the_free_capacity_oldest_first() -> None:
    store = InMemoryJobStore()
    jobs = [(await store.create(new()))[0] for _ in range(4)]
    started: list[JobRecord] = []
    d = dispatcher(store, started, capacity=3)
    await d.start()
    try:
        d.wake()
        for _ in range(100):
            if len(started) == 3:
                break
            await asyncio.sleep(0.01)
        assert [job.id for job in started] == [job.id for job in jobs[:3]]
        assert all(job.status is Status.RUNNING and job.lease_owner == "me" for job in started)
        assert d.pending == 1
    finally:
        await d.stop()


async def test_past_max_queue_the_count_is_checked_then_rate_limited() -> None:
    store = InMemoryJobStore()
    d = dispatcher(store, [])
    d.pending = 10  # a stale estimate: the store has no job
    await d.check_queue()
    assert d.pending == 0
    for _ in range(3):
        await store.create(new())
    d.pending = 3
    with pytest.raises(RateLimited):
        await d.check_queue()


class CountingStore(InMemoryJobStore):
    """Counts the jobs claimed by claim() and by finish()."""

    def __init__(self) -> None:
        super().__init__()
        self.by_claim = 0
        self.by_finish = 0

    async def claim(self, *args: Any, **kwargs: Any) -> list[JobRecord]:
        claimed = await super().claim(*args, **kwargs)
        self.by_claim += len(claimed)
        return claimed

    async def finish(self, *args: Any, **kwargs: Any) -> tuple[JobRecord, list[JobRecord]]:
        updated, claimed = await super().finish(*args, **kwargs)
        self.by_finish += len(claimed)
        return updated, claimed


async def test_with_a_backlog_finishing_jobs_claim_the_next_in_the_same_write() -> None:
    """Pipelining of claims: each finish claims the next job, no separate claim is needed."""
    store = CountingStore()
    release = asyncio.Event()

    async def gated(call: ToolCall, control: CallControl) -> Outcome:
        await release.wait()
        return Outcome(result=1)

    async with service(ScriptedExecutor(gated), store, poll_interval_s=60) as jobs:
        first, _ = await jobs.submit(new())  # claimed at creation: the slot is taken
        queued = [(await jobs.submit(new()))[0] for _ in range(3)]
        release.set()
        done = [await jobs.wait(job.id, 5) for job in [first, *queued]]
    assert {job.status for job in done} == {Status.SUCCESS}
    assert (store.by_finish, store.by_claim) == (3, 0)
