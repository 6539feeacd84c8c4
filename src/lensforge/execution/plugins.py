"""PluginExecutionService: hands a claimed job to the executor and says what became of it.

It never writes job status itself: it returns a :class:`~lensforge.execution.verdicts.Verdict`
(the transition the job should take), and JobExecutionService applies it through the store.
The steps around ``executor.run`` (active counts, metrics, retry verdicts) are the
middleware chain of :mod:`~lensforge.execution.middleware`. The job carries its own time
limit and retry policy, fixed when it was created: no registry lookup here.
"""

from __future__ import annotations

from collections.abc import Sequence

from lensforge.errors import LensForgeError
from lensforge.execution.executors import CallControl, Executor
from lensforge.execution.middleware import (
    Attempt,
    Handler,
    Middleware,
    compose,
    default_chain,
    run_on,
)
from lensforge.execution.tool_runner import ToolCall
from lensforge.execution.verdicts import Verdict
from lensforge.registry import PluginState, Registry
from lensforge.store import JobRecord


class PluginExecutionService:
    """Delegates jobs to an executor through the middleware chain."""

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        default_timeout_s: float,
        *,
        worker_lost_attempts: int = 3,
        middlewares: Sequence[Middleware] | None = None,
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.default_timeout_s = default_timeout_s  # for jobs stored before 0003 only
        self.worker_lost_attempts = worker_lost_attempts
        if middlewares is None:
            middlewares = default_chain(
                registry, executor, worker_lost_attempts=worker_lost_attempts
            )
        self._handle: Handler = compose(middlewares, run_on(executor))

    @property
    def capacity(self) -> int:
        return self.executor.capacity

    async def start(self) -> None:
        await self.executor.start()
        self._mirror_plugin_states()

    async def stop(self) -> None:
        await self.executor.stop()

    def _mirror_plugin_states(self) -> None:
        """Plugins set up in worker processes: show their lifecycle state here too."""
        states: dict[str, tuple[str, str | None]] = getattr(self.executor, "plugin_states", {})
        for name, (state, reason) in states.items():
            try:
                record = self.registry.get(name)
            except LensForgeError:
                continue
            if record.state is PluginState.LOADED:
                record.state, record.reason = PluginState(state), reason

    async def execute(self, job: JobRecord, control: CallControl) -> Verdict:
        call = ToolCall(
            plugin=job.plugin,
            tool=job.tool,
            inputs=job.inputs,
            job_id=job.id,
            attempt=job.attempts,
            timeout_s=job.timeout_s if job.timeout_s is not None else self.default_timeout_s,
        )
        return await self._handle(Attempt(job, call, control))
