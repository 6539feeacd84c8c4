"""The ray executor on a real local Ray cluster (loopback, 2 CPUs)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lensforge.execution.executors import CallControl
from lensforge.execution.executors.ray import RayExecutor
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.execution.worker import WorkerConfig, plugin_path
from lensforge.media import MediaLimits
from lensforge.registry import load_registry
from lensforge.settings import Settings
from lensforge.store import NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.plugins_for_tests import Chaos, Testing
from tests.ray.gpu_plugin import NeedsGpu, Steps
from tests.support import png

pytestmark = [pytest.mark.slow, pytest.mark.ray]

PLUGINS = [Testing, Chaos, NeedsGpu, Steps]


@pytest.fixture(scope="module")
def ray_executor(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RayExecutor, asyncio.Runner]]:
    root = tmp_path_factory.mktemp("ray")
    settings = Settings(database_url=f"sqlite:///{root / 'db'}", data_dir=root / "data")
    config = WorkerConfig(
        settings=settings,
        limits=MediaLimits(),
        extra_plugins=[plugin_path(cls) for cls in PLUGINS],
    )
    registry = load_registry(extra=PLUGINS)
    executor = RayExecutor(config, registry, workers=2, cancel_grace_s=0.5)
    with asyncio.Runner() as runner:
        runner.run(executor.start())
        try:
            yield executor, runner
        finally:
            runner.run(executor.stop())


def run(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
    plugin: str,
    tool: str,
    inputs: dict[str, object] | None = None,
    *,
    timeout_s: float = 30,
    control: CallControl | None = None,
) -> Outcome:
    executor, runner = ray_executor
    call = ToolCall(plugin, tool, inputs or {}, job_id=f"job-{tool}", timeout_s=timeout_s)
    return runner.run(executor.run(call, control or CallControl()))


def test_tools_run_in_warm_actors(ray_executor: tuple[RayExecutor, asyncio.Runner]) -> None:
    outcome = run(ray_executor, "testing", "echo", {"text": "hi", "times": 2})
    assert outcome.ok and outcome.result == {"text": "hi", "times": 2}
    first = run(ray_executor, "testing", "pid").result["pid"]
    assert run(ray_executor, "testing", "pid").result["pid"] == first  # the same warm actor
    assert first != os.getpid()
    bad = run(ray_executor, "testing", "echo", {"times": "x"})
    assert bad.error_code == "validation_error"


def test_a_real_vision_tool_reads_its_image_from_the_blob_store(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
) -> None:
    executor, _ = ray_executor
    ref = executor.config.settings.open_blobs().put(png(64, 48))
    outcome = run(ray_executor, "image", "info", {"image": {"blob": ref}})
    assert outcome.ok, outcome.error
    assert (outcome.result["width"], outcome.result["height"]) == (64, 48)


def test_a_hanging_tool_times_out_and_its_actor_is_replaced(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
) -> None:
    before = run(ray_executor, "chaos", "record", {"path": os.devnull, "pause": 0})
    assert before.ok
    outcome = run(ray_executor, "chaos", "hang", timeout_s=1.0)
    assert outcome.error_code == "timeout"
    after = run(ray_executor, "chaos", "record", {"path": os.devnull, "pause": 0})
    assert after.ok


def test_a_dead_actor_is_worker_lost_and_the_next_call_runs(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
) -> None:
    assert run(ray_executor, "chaos", "exit").error_code == "worker_lost"
    pid = run(ray_executor, "testing", "pid").result["pid"]
    os.kill(pid, signal.SIGKILL)  # killed from outside, between calls
    outcomes = [run(ray_executor, "testing", "pid") for _ in range(2)]
    assert outcomes[0].error_code == "worker_lost" or outcomes[0].ok
    assert outcomes[1].ok and outcomes[1].result["pid"] != pid


def test_cancel_stops_a_running_call_and_progress_arrives(
    ray_executor: tuple[RayExecutor, asyncio.Runner], tmp_path: Path
) -> None:
    executor, runner = ray_executor
    seen: list[float] = []
    control = CallControl(on_progress=lambda fraction, _: seen.append(fraction))

    async def cancel_later() -> Outcome:
        call = ToolCall("testing", "sleep", {"seconds": 20}, job_id="job-cancel", timeout_s=30)
        task = asyncio.create_task(executor.run(call, control))
        await asyncio.sleep(1.5)
        control.cancel()
        return await asyncio.wait_for(task, 10)

    outcome = runner.run(cancel_later())
    assert outcome.error_code == "cancelled"
    assert seen and 0 < seen[-1] < 0.5


def test_checkpoints_arrive_once_each_in_order_before_the_result(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
) -> None:
    """Some are taken by the poller while the tool runs, the last ones come back with the
    result: together, every one exactly once, in the order the tool wrote them."""
    seen: list[tuple[int, list[dict[str, int]]]] = []
    control = CallControl(on_checkpoint=lambda state, items: seen.append((state["next"], items)))
    outcome = run(ray_executor, "steps", "walk", {"n": 8, "pause": 0.15}, control=control)
    assert outcome.ok and outcome.result == {"steps": 8}
    assert seen == [(step + 1, [{"index": step}]) for step in range(8)]


def test_calls_wait_for_a_slot_and_a_waiting_call_cancelled_never_runs(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
) -> None:
    """The executor takes two calls per running one (the next job waits beside the actors);
    one cancelled while it waits answers ``cancelled`` when a slot frees, without running."""
    executor, runner = ray_executor
    assert executor.capacity == 2 * executor.workers

    def sleep_call(job_id: str) -> ToolCall:
        return ToolCall("testing", "sleep", {"seconds": 2}, job_id=job_id, timeout_s=30)

    async def go() -> tuple[Outcome, list[Outcome], float]:
        busy = [
            asyncio.create_task(executor.run(sleep_call(f"job-busy-{i}"), CallControl()))
            for i in range(executor.workers)
        ]
        await asyncio.sleep(0.5)
        control = CallControl()
        waiting = asyncio.create_task(executor.run(sleep_call("job-waiting"), control))
        await asyncio.sleep(0.2)
        control.cancel()
        outcome = await asyncio.wait_for(waiting, 15)
        answered = time.monotonic()
        done = await asyncio.gather(*busy)
        return outcome, done, time.monotonic() - answered

    outcome, busy, after = runner.run(go())
    assert outcome.error_code == "cancelled"
    assert all(o.ok for o in busy)
    assert after < 1.0  # answered as the slot freed, not after a run of its own


def test_a_private_cluster_listens_on_loopback_only(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
) -> None:
    import subprocess

    ray_pids = set()
    for line in subprocess.run(
        ["ps", "-eo", "pid,comm"], capture_output=True, text=True
    ).stdout.splitlines()[1:]:
        pid, _, command = line.strip().partition(" ")
        if any(name in command for name in ("raylet", "gcs_server", "ray::")):
            ray_pids.add(pid)
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    exposed = [
        line
        for line in listening.splitlines()
        if any(f"pid={pid}," in line for pid in ray_pids)
        and not line.split()[3].startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:"))
    ]
    assert ray_pids and exposed == []


def test_a_gpu_tool_on_a_gpu_less_cluster_fails_at_once_naming_the_gpu(
    ray_executor: tuple[RayExecutor, asyncio.Runner],
) -> None:
    executor, runner = ray_executor
    started = time.monotonic()
    outcome = run(ray_executor, "needs_gpu", "infer")
    assert outcome.error_code == "resource_exhausted"
    assert outcome.error is not None and "GPU" in outcome.error["error"]["message"]

    async def as_a_job() -> tuple[Status, dict[str, Any] | None]:
        # A second executor on the same Ray runtime: it does not own Ray, so stopping the
        # job service leaves the module's cluster (and its actors) running.
        own = RayExecutor(executor.config, executor.registry, workers=1)
        plugins = PluginExecutionService(executor.registry, own, default_timeout_s=30)
        jobs = JobExecutionService(InMemoryJobStore(), plugins, poll_interval_s=0.05)
        await jobs.start()
        try:
            new = NewJob(plugin="needs_gpu", tool="infer", inputs={}, timeout_s=30)
            job = await jobs.submit_and_wait(new, timeout_s=20)
            return job.status, job.error
        finally:
            await jobs.stop()

    status, error = runner.run(as_a_job())
    assert status is Status.FAILED
    assert error is not None and error["error"]["code"] == "resource_exhausted"
    assert "GPU" in error["error"]["message"] and "Ray cluster" in error["error"]["message"]
    assert time.monotonic() - started < 15  # failed fast: no wait for a GPU node
