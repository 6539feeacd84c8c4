"""PluginExecutionService (``execution/plugins.py``): the call it builds from a claimed job,
the executor it stands for, and the plugin states reported by workers mirrored here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import pytest

from lensforge.errors import WorkerLost
from lensforge.execution.executors import CallControl
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.registry import PluginState
from lensforge.store import NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.front_support import registry
from tests.unit.execution.support import ScriptedExecutor

pytestmark = pytest.mark.anyio


@dataclass
class Reporting(ScriptedExecutor):
    """An executor whose workers reported their plugins' states (as the local one's do)."""

    plugin_states: dict[str, tuple[str, str | None]] = field(default_factory=dict)


async def test_a_jobs_call_carries_its_id_attempt_and_time_limit() -> None:
    executor = ScriptedExecutor(capacity=3)
    plugins = PluginExecutionService(registry(), executor, default_timeout_s=9.0)
    assert plugins.capacity == 3
    store = InMemoryJobStore()
    limited, _ = await store.create(
        NewJob(plugin="front", tool="steps", inputs={"n": 1}, timeout_s=2.5), claim_for="w"
    )
    unlimited, _ = await store.create(
        NewJob(plugin="front", tool="steps", inputs={}), claim_for="w"
    )
    await plugins.execute(replace(limited, attempts=2), CallControl())  # a retry
    await plugins.execute(unlimited, CallControl())
    first, second = executor.calls
    assert (first.plugin, first.tool, first.inputs) == ("front", "steps", {"n": 1})
    assert (first.job_id, first.attempt, first.timeout_s) == (limited.id, 2, 2.5)
    assert (second.job_id, second.timeout_s) == (unlimited.id, 9.0)  # a job stored before 0003


async def test_plugin_states_reported_by_workers_are_mirrored_once_started() -> None:
    reg = registry()
    reg.add_unavailable("gone", "needs a package that is not installed")
    executor = Reporting(
        plugin_states={
            "unknown": ("INITIALIZED", None),  # not in this registry: skipped
            "front": ("FAILED", "setup raised RuntimeError"),
            "gone": ("INITIALIZED", None),  # already UNAVAILABLE here: left so
        }
    )
    plugins = PluginExecutionService(reg, executor, default_timeout_s=5.0)
    assert reg.get("front").state is PluginState.LOADED
    await plugins.start()
    front = reg.get("front")
    assert (front.state, front.reason) == (PluginState.FAILED, "setup raised RuntimeError")
    gone = reg.get("gone")
    assert (gone.state, gone.reason) == (
        PluginState.UNAVAILABLE,
        "needs a package that is not installed",
    )
    await plugins.stop()


async def test_an_executor_without_workers_leaves_the_states_as_they_are() -> None:
    reg = registry()
    plugins = PluginExecutionService(reg, ScriptedExecutor(), default_timeout_s=5.0)
    await plugins.start()
    assert reg.get("front").state is PluginState.LOADED
    await plugins.stop()


async def lost_worker(call: ToolCall, control: CallControl) -> Outcome:
    return Outcome(error=WorkerLost("The worker process died.").envelope())


async def test_a_lost_worker_is_retried_three_times_by_default() -> None:
    plugins = PluginExecutionService(
        registry(), ScriptedExecutor(script=lost_worker), default_timeout_s=5.0
    )
    job, _ = await InMemoryJobStore().create(
        NewJob(plugin="front", tool="steps", inputs={}), claim_for="w"
    )
    assert (await plugins.execute(job, CallControl())).status is Status.PENDING
    third = replace(job, attempts=3)
    verdict = await plugins.execute(third, CallControl())
    assert (verdict.status, verdict.code) == (Status.FAILED, "worker_lost")


async def test_lease_recovery_allows_the_services_worker_lost_attempts() -> None:
    store = InMemoryJobStore()
    plugins = PluginExecutionService(
        registry(), ScriptedExecutor(), default_timeout_s=5.0, worker_lost_attempts=2
    )
    jobs = JobExecutionService(store, plugins)
    job, _ = await store.create(
        NewJob(plugin="front", tool="steps", inputs={}), claim_for="gone", lease_s=0.0
    )
    await asyncio.sleep(0.01)
    assert await jobs.recover() == 1
    requeued = await store.get(job.id)
    assert requeued is not None and requeued.status is Status.PENDING
    (again,) = await store.claim("gone", 0.0, 1)
    assert again.attempts == 2
    await asyncio.sleep(0.01)
    assert await jobs.recover() == 1
    failed = await store.get(job.id)
    assert failed is not None and failed.status is Status.FAILED
    assert failed.error is not None and failed.error["error"]["code"] == "worker_lost"
