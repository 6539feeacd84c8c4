"""TracedStore: the job store with a span around each write on a job's path (create, claim,
transition, finish, cancel request), in the job's trace, when ``LENSFORGE_OTEL`` is on.

A decorator over the domain API (:class:`JobStoreProtocol`), not the SQL below it: wiring
wraps the store the job service writes through, only when tracing is on
(:func:`traced`). Each span's parent is the context the job was created in
(:func:`lensforge.tracing.parent`); one write that claims several jobs gives each its own
``lensforge.store.claim`` span, spanning that write, in that job's trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from lensforge import tracing
from lensforge.store.protocol import JobStoreProtocol
from lensforge.store.records import JobRecord, NewJob
from lensforge.store.tables import TERMINAL, Status


def _error_code(values: dict[str, Any]) -> str | None:
    """The code of the error envelope a write stores, if it stores one."""
    error = values.get("error")
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        code = error["error"].get("code")
        return code if isinstance(code, str) else None
    return None


class TracedStore:
    """A job store whose writes on a job's path are spans of the job's trace; every other
    operation is the wrapped store's own (attribute delegation)."""

    def __init__(self, store: JobStoreProtocol) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def create(
        self,
        new: NewJob,
        *,
        claim_for: str | None = None,
        lease_s: float = 30.0,
        blobs: Sequence[str] = (),
    ) -> tuple[JobRecord, bool]:
        attributes = {"lensforge.plugin": new.plugin, "lensforge.tool": new.tool}
        with tracing.tracer().start_as_current_span(
            "lensforge.store.create", attributes=attributes
        ) as s:
            job, created = await self._store.create(
                new, claim_for=claim_for, lease_s=lease_s, blobs=blobs
            )
            s.set_attributes({**tracing.job_attributes(job), "lensforge.job.created": created})
        if created and job.status not in TERMINAL:
            tracing.remember(job.id, otel_context.get_current())  # the request's, not the write's
        return job, created

    async def claim(
        self,
        worker: str,
        lease_s: float,
        limit: int,
        job_ids: Sequence[str] = (),
        *,
        per_owner: int = 0,
    ) -> list[JobRecord]:
        started = time.time_ns()
        jobs = await self._store.claim(worker, lease_s, limit, job_ids, per_owner=per_owner)
        _claimed(jobs, started)
        return jobs

    async def transition(
        self,
        job_id: str,
        from_status: Status,
        to_status: Status,
        *,
        worker: str | None = None,
        reason: str | None = None,
        owned_by: str | None = None,
        known: JobRecord | None = None,
        **values: Any,
    ) -> JobRecord:
        with _write_span("lensforge.store.transition", job_id) as span:
            job = await self._store.transition(
                job_id,
                from_status,
                to_status,
                worker=worker,
                reason=reason,
                owned_by=owned_by,
                known=known,
                **values,
            )
            span.set_attributes(tracing.job_attributes(job))
            tracing.end_state(span, job.status.value, _error_code(values))
        _ended(job)
        return job

    async def finish(
        self,
        job: JobRecord,
        to_status: Status,
        values: dict[str, Any],
        *,
        worker: str | None = None,
        reason: str | None = None,
        owned_by: str | None = None,
        artifacts: Sequence[str] = (),
        claim_next: int = 0,
        lease_s: float = 30.0,
        per_owner: int = 0,
    ) -> tuple[JobRecord, list[JobRecord]]:
        started = time.time_ns()
        with _write_span("lensforge.store.finish", job.id) as span:
            span.set_attributes(tracing.job_attributes(job))
            updated, claimed = await self._store.finish(
                job,
                to_status,
                values,
                worker=worker,
                reason=reason,
                owned_by=owned_by,
                artifacts=artifacts,
                claim_next=claim_next,
                lease_s=lease_s,
                per_owner=per_owner,
            )
            tracing.end_state(span, updated.status.value, _error_code(values))
        _ended(updated)
        _claimed(claimed, started)
        return updated, claimed

    async def request_cancel(self, job_id: str) -> None:
        with _write_span("lensforge.store.request_cancel", job_id):
            await self._store.request_cancel(job_id)


@contextmanager
def _write_span(name: str, job_id: str) -> Iterator[Span]:
    attributes = {"lensforge.job.id": job_id}
    with tracing.tracer().start_as_current_span(
        name, tracing.parent(job_id), attributes=attributes
    ) as span:
        yield span


def _claimed(jobs: list[JobRecord], started_ns: int) -> None:
    """One ``lensforge.store.claim`` span per job claimed in one write, in each job's trace."""
    ended = time.time_ns()
    tracer = tracing.tracer()
    for job in jobs:
        span = tracer.start_span(
            "lensforge.store.claim",
            tracing.parent(job.id),
            attributes=tracing.job_attributes(job),
            start_time=started_ns,
        )
        span.end(ended)


def _ended(job: JobRecord) -> None:
    if job.status in TERMINAL:
        tracing.forget(job.id)


def traced(store: JobStoreProtocol) -> JobStoreProtocol:
    """``store`` with its job-path writes traced when tracing is on; ``store`` itself if not."""
    return TracedStore(store) if tracing.enabled() else store
