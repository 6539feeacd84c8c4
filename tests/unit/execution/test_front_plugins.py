"""PluginExecutionService (``execution/plugins.py``): the call it builds from a claimed job,
the executor it stands for, and the plugin states reported by workers mirrored here."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lensforge.execution.executors import CallControl
from lensforge.execution.plugins import PluginExecutionService
from lensforge.registry import PluginState
from lensforge.store import NewJob
from lensforge.testing import InMemoryJobStore
from tests.unit.execution.front_support import registry
from tests.unit.execution.support import ScriptedExecutor

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
    await plugins.execute(limited, CallControl())
    await plugins.execute(unlimited, CallControl())
    first, second = executor.calls
    assert (first.plugin, first.tool, first.inputs) == ("front", "steps", {"n": 1})
    assert (first.job_id, first.attempt, first.timeout_s) == (limited.id, limited.attempts, 2.5)
    assert limited.attempts == 1
    assert (second.job_id, second.timeout_s) == (unlimited.id, 9.0)  # a job stored before 0003


async def test_plugin_states_reported_by_workers_are_mirrored_once_started() -> None:
    reg = registry()
    reg.add_unavailable("gone", "needs a package that is not installed")
    executor = Reporting(
        plugin_states={
            "front": ("FAILED", "setup raised RuntimeError"),
            "gone": ("INITIALIZED", None),  # already UNAVAILABLE here: left so
            "unknown": ("INITIALIZED", None),  # not in this registry: ignored
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
