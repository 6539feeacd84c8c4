"""Verdicts: the transition a job should take after a run, a recovery or a shutdown.

Pure functions of the job (its retry policy was fixed when it was created: ``max_attempts``
and ``retry_on``) and of what happened; JobExecutionService applies them through the store.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from lensforge.errors import Cancelled, InternalError, WorkerLost
from lensforge.execution.tool_runner import Outcome
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
    code: str | None = None  # the error code of a failure


def attempts_allowed(job: JobRecord, code: str | None, worker_lost_attempts: int) -> int:
    """How many attempts a job gets when it fails with ``code``: a lost worker is the
    server's problem (at least ``worker_lost_attempts``), other codes the tool's policy."""
    if code == WorkerLost.code:
        return max(job.max_attempts, worker_lost_attempts)
    return job.max_attempts if code in job.retry_on else 1


def of_outcome(job: JobRecord, outcome: Outcome, *, cancelled: bool) -> Verdict:
    """SUCCESS, CANCELLED or FAILED, as the outcome says (retries are decided later)."""
    now = time.time()
    if cancelled or outcome.error_code == Cancelled.code:
        envelope = Cancelled(plugin=job.plugin, tool=job.tool, job_id=job.id).envelope()
        return Verdict(Status.CANCELLED, {"error": envelope, "finished_at": now}, "cancelled")
    if outcome.ok:
        values = {"result": outcome.result, "finished_at": now, "progress": 1.0}
        return Verdict(Status.SUCCESS, values, artifacts=tuple(outcome.artifacts))
    code = outcome.error_code
    envelope = {"error": dict((outcome.error or {}).get("error", {}))}
    values = {"error": envelope, "traceback": outcome.traceback, "finished_at": now}
    return Verdict(Status.FAILED, values, code, code=code)


def with_retry(job: JobRecord, verdict: Verdict, worker_lost_attempts: int) -> Verdict:
    """A failure marked retryable (or not) for this tool, and turned into a retry after a
    jittered exponential back-off while the job has attempts left."""
    if verdict.status is not Status.FAILED:
        return verdict
    allowed = attempts_allowed(job, verdict.code, worker_lost_attempts)
    envelope = verdict.values["error"]
    envelope["error"]["retryable"] = allowed > 1
    if job.attempts >= allowed:
        return verdict
    delay = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (job.attempts - 1))
    delay *= random.uniform(0.5, 1.0)  # jitter
    values = {"error": envelope, "not_before": time.time() + delay, "lease_owner": None}
    return Verdict(Status.PENDING, values, f"retry after {verdict.code} in {delay:.2f}s")


def lost(job: JobRecord, worker_lost_attempts: int) -> Verdict:
    """A job whose lease expired: back to PENDING, or FAILED with worker_lost when spent."""
    if job.attempts < attempts_allowed(job, WorkerLost.code, worker_lost_attempts):
        return Verdict(Status.PENDING, {"lease_owner": None}, "lease expired")
    envelope = WorkerLost(
        f"The worker running the job was lost after {job.attempts} attempt(s).",
        plugin=job.plugin,
        tool=job.tool,
        job_id=job.id,
    ).envelope()
    return Verdict(
        Status.FAILED,
        {"error": envelope, "finished_at": time.time()},
        "worker_lost",
        code=WorkerLost.code,
    )


def handed_back(job: JobRecord) -> Verdict:
    """A running job this server stops before it finished: PENDING again, no attempt charged."""
    values = {"attempts": max(job.attempts - 1, 0), "lease_owner": None}
    return Verdict(Status.PENDING, values, "server shutdown")


def cancelled_pending() -> Verdict:
    return Verdict(Status.CANCELLED, {"finished_at": time.time()}, "cancelled")


def internal_failure(job: JobRecord) -> Verdict:
    """A run whose outcome could not be recorded: FAILED now, rather than by lease expiry."""
    envelope = InternalError(
        "The job's outcome could not be recorded; the server log has the details.",
        plugin=job.plugin,
        tool=job.tool,
        job_id=job.id,
    ).envelope()
    return Verdict(Status.FAILED, {"error": envelope, "finished_at": time.time()}, "internal")
