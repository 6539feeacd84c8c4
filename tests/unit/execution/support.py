"""A scripted executor and a service factory: the job layer with no worker process or SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from lensforge.errors import Cancelled, PluginError
from lensforge.execution.executors import CallControl
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.registry import Registry
from lensforge.store import JobRecord, Status
from lensforge.testing import InMemoryJobStore

Script = Callable[[ToolCall, CallControl], Awaitable[Outcome]]


async def succeed(call: ToolCall, control: CallControl) -> Outcome:
    return Outcome(result={"echo": call.inputs, "attempt": call.attempt})


def fail(code_error: type[PluginError] = PluginError) -> Script:
    async def run(call: ToolCall, control: CallControl) -> Outcome:
        return Outcome(error=code_error("it broke").envelope(), traceback="tb")

    return run


async def block_until_cancelled(call: ToolCall, control: CallControl) -> Outcome:
    stopped = asyncio.Event()
    control.add_cancel_listener(stopped.set)
    await stopped.wait()
    return Outcome(error=Cancelled().envelope())


@dataclass
class ScriptedExecutor:
    """Runs each call with ``script`` (per attempt: ``scripts[attempt - 1]`` if given)."""

    script: Script = succeed
    capacity: int = 1
    scripts: list[Script] = field(default_factory=list)
    name: str = "scripted"
    in_process: bool = True
    calls: list[ToolCall] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        self.calls.append(call)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            script = self.scripts[call.attempt - 1] if self.scripts else self.script
            return await script(call, control)
        finally:
            self.running -= 1


@asynccontextmanager
async def service(
    executor: ScriptedExecutor,
    store: InMemoryJobStore | None = None,
    *,
    dispatch: bool = True,
    **options: float,
) -> AsyncIterator[JobExecutionService]:
    """A started JobExecutionService on the in-memory store (stopped on exit)."""
    plugins = PluginExecutionService(
        Registry(),
        executor,
        default_timeout_s=5.0,
        worker_lost_attempts=int(options.pop("worker_lost_attempts", 3)),
    )
    options.setdefault("poll_interval_s", 0.02)
    jobs = JobExecutionService(store or InMemoryJobStore(), plugins, **options)  # type: ignore[arg-type]
    await jobs.start(dispatch=dispatch)
    try:
        yield jobs
    finally:
        await jobs.stop()


async def wait_for_status(jobs: JobExecutionService, job_id: str, status: Status) -> JobRecord:
    """The job once it reaches ``status`` (polled for up to about five seconds)."""
    for _ in range(500):
        job = await jobs.get(job_id)
        if job.status is status:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached {status}")


class FlakyCheckpoints(InMemoryJobStore):
    """Fails its first ``failures`` checkpoint writes, as a database that is away would."""

    failures = 1

    async def save_checkpoint(self, *args: Any, **kwargs: Any) -> bool:
        if self.failures:
            self.failures -= 1
            raise OSError("the database is away")
        return await super().save_checkpoint(*args, **kwargs)
