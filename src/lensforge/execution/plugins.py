"""PluginExecutionService: hands a claimed job to the executor and says what became of it.

It never writes job status itself: it returns a :class:`Verdict` (the transition the job
should take), and JobExecutionService applies it through the store.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from lensforge.errors import Cancelled, LensForgeError, WorkerLost
from lensforge.execution.executors import CallControl, Executor
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.registry import Registry
from lensforge.store import JobRecord, Status

RETRY_BASE_S = 0.5
RETRY_CAP_S = 60.0


@dataclass(frozen=True)
class Verdict:
    """The transition a finished run asks for, with the values to store."""

    status: Status
    values: dict[str, Any]
    reason: str | None = None
    artifacts: tuple[str, ...] = ()  # digests of the images the tool produced


class PluginExecutionService:
    """Delegates jobs to an executor and maps outcomes to job transitions."""

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        default_timeout_s: float,
        *,
        worker_lost_attempts: int = 3,
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.default_timeout_s = default_timeout_s
        self.worker_lost_attempts = worker_lost_attempts

    def attempts_allowed(self, job: JobRecord, code: str | None) -> int:
        """How many attempts a job gets when it fails with ``code``."""
        if code == WorkerLost.code:
            return max(job.max_attempts, self.worker_lost_attempts)
        try:
            spec = self.registry.resolve(job.plugin, job.tool)
        except LensForgeError:
            return 1
        return job.max_attempts if code in spec.retry_on else 1

    @property
    def capacity(self) -> int:
        return self.executor.capacity

    async def start(self) -> None:
        await self.executor.start()

    async def stop(self) -> None:
        await self.executor.stop()

    def timeout_for(self, job: JobRecord) -> float:
        if job.timeout_s is not None:
            return job.timeout_s
        try:
            declared = self.registry.resolve(job.plugin, job.tool).timeout_s
        except LensForgeError:
            declared = None
        return declared or self.default_timeout_s

    async def execute(self, job: JobRecord, control: CallControl) -> Verdict:
        call = ToolCall(
            plugin=job.plugin,
            tool=job.tool,
            inputs=job.inputs,
            job_id=job.id,
            attempt=job.attempts,
            timeout_s=self.timeout_for(job),
        )
        record = None
        try:
            record = self.registry.get(job.plugin)
            record.active += 1
        except LensForgeError:
            pass  # the ToolRunner reports the missing plugin as the job's error
        try:
            outcome = await self.executor.run(call, control)
        finally:
            if record is not None:
                record.active -= 1
        return self.verdict(job, outcome, cancelled=control.cancelled)

    def verdict(self, job: JobRecord, outcome: Outcome, *, cancelled: bool) -> Verdict:
        now = time.time()
        if cancelled or outcome.error_code == Cancelled.code:
            cancelled_envelope = Cancelled(
                plugin=job.plugin, tool=job.tool, job_id=job.id
            ).envelope()
            values = {"error": cancelled_envelope, "finished_at": now}
            return Verdict(Status.CANCELLED, values, "cancelled")
        if outcome.ok:
            return Verdict(
                Status.SUCCESS,
                {"result": outcome.result, "finished_at": now, "progress": 1.0},
                artifacts=tuple(outcome.artifacts),
            )
        code = outcome.error_code
        allowed = self.attempts_allowed(job, code)
        body = dict((outcome.error or {}).get("error", {}))
        body["retryable"] = allowed > 1  # this kind of failure is retried for this tool
        envelope: dict[str, Any] = {"error": body}
        if job.attempts < allowed:
            delay = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (job.attempts - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter
            return Verdict(
                Status.PENDING,
                {"error": envelope, "not_before": now + delay, "lease_owner": None},
                f"retry after {code} in {delay:.2f}s",
            )
        values = {"error": envelope, "traceback": outcome.traceback, "finished_at": now}
        return Verdict(Status.FAILED, values, code)
