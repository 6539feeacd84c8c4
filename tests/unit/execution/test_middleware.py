"""The chain around executor.run: composition order, active counts, metrics, retry verdicts."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from lensforge.errors import PluginError, WorkerLost
from lensforge.execution.executors import CallControl
from lensforge.execution.middleware import (
    Attempt,
    Handler,
    compose,
    count_active,
    default_chain,
    record_metrics,
    retry_failures,
    run_on,
)
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.execution.verdicts import Verdict, handed_back, lost
from lensforge.plugin import Plugin, tool
from lensforge.registry import Registry
from lensforge.store import JobRecord, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.support import ScriptedExecutor, fail

pytestmark = pytest.mark.anyio


class Counted(Plugin):
    name = "counted"
    version = "1.0.0"

    @tool
    def go(self, n: int) -> int:
        """Echo n."""
        return n


async def running_job(**options: object) -> JobRecord:
    store = InMemoryJobStore()
    new = NewJob(plugin="counted", tool="go", inputs={"n": 1}, **options)  # type: ignore[arg-type]
    job, _ = await store.create(new, claim_for="w")
    return job


def attempt_of(job: JobRecord) -> Attempt:
    call = ToolCall(job.plugin, job.tool, job.inputs, job.id, job.attempts, 5.0)
    return Attempt(job, call, CallControl())


async def test_compose_runs_the_first_middleware_outermost() -> None:
    seen: list[str] = []

    def named(name: str):  # type: ignore[no-untyped-def]
        async def step(attempt: Attempt, call_next: Handler) -> Verdict:
            seen.append(f"{name}>")
            verdict = await call_next(attempt)
            seen.append(f"<{name}")
            return verdict

        return step

    async def inner(attempt: Attempt) -> Verdict:
        seen.append("run")
        return Verdict(Status.SUCCESS, {})

    handler = compose([named("a"), named("b")], inner)
    await handler(attempt_of(await running_job()))
    assert seen == ["a>", "b>", "run", "<b", "<a"]


async def test_count_active_counts_while_the_call_runs_and_after_a_failure() -> None:
    registry = Registry()
    registry.register(Counted)
    record = registry.get("counted")
    during: list[int] = []

    async def inner(attempt: Attempt) -> Verdict:
        during.append(record.active)
        raise RuntimeError("executor broke")

    with pytest.raises(RuntimeError):
        await compose([count_active(registry)], inner)(attempt_of(await running_job()))
    assert (during, record.active) == ([1], 0)


async def test_record_metrics_records_calls_that_ran_in_another_process() -> None:
    registry = Registry()
    executor = ScriptedExecutor(fail())
    handler = compose([record_metrics(registry)], run_on(executor))
    verdict = await handler(attempt_of(await running_job()))
    assert verdict.status is Status.FAILED
    assert registry.metrics.tool("counted", "go")["calls"] == 1
    # the default chain records metrics only for executors that run tools elsewhere
    assert len(default_chain(registry, executor, worker_lost_attempts=3)) == 2
    elsewhere = replace(executor, in_process=False)
    assert len(default_chain(registry, elsewhere, worker_lost_attempts=3)) == 3


async def test_retry_failures_turns_a_covered_failure_into_a_backed_off_retry() -> None:
    job = await running_job(max_attempts=2, retry_on=("plugin_error",))
    handler = compose([retry_failures(3)], run_on(ScriptedExecutor(fail())))
    verdict = await handler(attempt_of(job))
    assert verdict.status is Status.PENDING
    assert verdict.values["lease_owner"] is None
    assert verdict.values["not_before"] > time.time()
    assert verdict.values["error"]["error"]["retryable"] is True


async def test_retry_failures_leaves_a_spent_or_uncovered_failure_failed() -> None:
    spent = replace(await running_job(max_attempts=1, retry_on=("plugin_error",)))
    verdict = await compose([retry_failures(3)], run_on(ScriptedExecutor(fail())))(
        attempt_of(spent)
    )
    assert (verdict.status, verdict.code) == (Status.FAILED, "plugin_error")
    assert verdict.values["error"]["error"]["retryable"] is False


async def test_a_lost_worker_is_retried_up_to_the_servers_minimum() -> None:
    job = await running_job(max_attempts=1)
    lost_outcome = Outcome(error=WorkerLost().envelope())

    async def died(call: ToolCall, control: CallControl) -> Outcome:
        return lost_outcome

    verdict = await compose([retry_failures(2)], run_on(ScriptedExecutor(died)))(attempt_of(job))
    assert verdict.status is Status.PENDING
    assert lost(job, 2).status is Status.PENDING
    assert lost(replace(job, attempts=2), 2).values["error"]["error"]["code"] == "worker_lost"


async def test_handed_back_uncharges_the_attempt() -> None:
    job = await running_job()
    verdict = handed_back(job)
    assert (verdict.status, verdict.values["attempts"]) == (Status.PENDING, 0)
    assert PluginError.code == "plugin_error"
