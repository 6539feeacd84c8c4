"""What wraps every run of a job around ``executor.run``, as one composed chain.

A middleware is ``async def step(attempt, call_next) -> Verdict``: it may act before and
after the rest of the chain (procrastinate's worker middleware is the model). The chain is
declared, in order, in :func:`default_chain`; :func:`compose` wraps it around the innermost
handler, which runs the call on the executor and judges its outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

from lensforge import tracing
from lensforge.errors import LensForgeError
from lensforge.execution.executors import CallControl, Executor
from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.execution.verdicts import Verdict, of_outcome, with_retry
from lensforge.registry import Registry
from lensforge.store import JobRecord


@dataclass
class Attempt:
    """One run of a job: the call handed to the executor and, once back, its outcome."""

    job: JobRecord
    call: ToolCall
    control: CallControl
    outcome: Outcome | None = None


Handler = Callable[[Attempt], Awaitable[Verdict]]


class Middleware(Protocol):
    def __call__(self, attempt: Attempt, call_next: Handler) -> Awaitable[Verdict]: ...


def compose(middlewares: Sequence[Middleware], handler: Handler) -> Handler:
    """``middlewares[0]`` outermost, ``handler`` innermost."""
    for middleware in reversed(middlewares):
        handler = partial(middleware, call_next=handler)
    return handler


def run_on(executor: Executor) -> Handler:
    """The innermost handler: run the call, say what its outcome means for the job."""

    async def run(attempt: Attempt) -> Verdict:
        attempt.outcome = await executor.run(attempt.call, attempt.control)
        return of_outcome(attempt.job, attempt.outcome, cancelled=attempt.control.cancelled)

    return run


def count_active(registry: Registry) -> Middleware:
    """The plugin's count of running calls (shown in its lifecycle) while the call runs."""

    async def step(attempt: Attempt, call_next: Handler) -> Verdict:
        try:
            record = registry.get(attempt.call.plugin)
        except LensForgeError:  # the ToolRunner reports the missing plugin as the job's error
            return await call_next(attempt)
        record.active += 1
        try:
            return await call_next(attempt)
        finally:
            record.active -= 1

    return step


def record_metrics(registry: Registry) -> Middleware:
    """Call counts and durations in this process's metrics, for calls that ran elsewhere
    (a worker process's ToolRunner records into that process's registry)."""

    async def step(attempt: Attempt, call_next: Handler) -> Verdict:
        verdict = await call_next(attempt)
        if attempt.outcome is not None:
            call, outcome = attempt.call, attempt.outcome
            registry.metrics.record(call.plugin, call.tool, outcome.duration_s, outcome.error_code)
        return verdict

    return step


def retry_failures(worker_lost_attempts: int) -> Middleware:
    """A failure the job's retry policy covers becomes a retry (see verdicts.with_retry)."""

    async def step(attempt: Attempt, call_next: Handler) -> Verdict:
        return with_retry(attempt.job, await call_next(attempt), worker_lost_attempts)

    return step


def trace_runs() -> Middleware:
    """Each run a ``lensforge.job.run`` span in its job's trace, whose context the call
    carries to wherever its tool runs (see lensforge.tracing)."""

    async def step(attempt: Attempt, call_next: Handler) -> Verdict:
        with tracing.run_span(attempt.job) as ended:
            attempt.call = replace(attempt.call, traceparent=tracing.traceparent())
            verdict = await call_next(attempt)
            ended(verdict.status.value, verdict.code)
            return verdict

    return step


def default_chain(
    registry: Registry, executor: Executor, *, worker_lost_attempts: int
) -> list[Middleware]:
    """The chain around every run, outermost first."""
    chain = [trace_runs()] if tracing.enabled() else []
    chain.append(count_active(registry))
    if not executor.in_process:
        chain.append(record_metrics(registry))
    chain.append(retry_failures(worker_lost_attempts))
    return chain
