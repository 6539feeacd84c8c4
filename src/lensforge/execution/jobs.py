"""JobExecutionService: the job lifecycle, and the only writer of job status.

PENDING → RUNNING → SUCCESS | FAILED; PENDING | RUNNING → CANCELLED; RUNNING → PENDING only by
lease recovery or a declared retry. It owns the dispatcher, which claims due PENDING jobs
atomically from the store (the jobs this server just accepted at once, others' by polling),
runs them through PluginExecutionService, renews their leases and recovers expired ones.

Writes go through a :class:`~lensforge.store.writer.StoreWriter`, which commits the writes
of concurrent jobs together (group commit); reads run on a small thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from lensforge.blobs import blob_refs
from lensforge.errors import (
    Conflict,
    IllegalTransition,
    InternalError,
    JobNotFound,
    RateLimited,
    WorkerLost,
)
from lensforge.execution.executors import CallControl
from lensforge.execution.leases import host_prefix, make_worker_id, owner_alive
from lensforge.execution.plugins import PluginExecutionService, Verdict
from lensforge.store import TERMINAL, Event, JobRecord, JobStore, NewJob, Status, StoreBusy
from lensforge.store.dbapi import Tx
from lensforge.store.writer import StoreWriter

log = logging.getLogger(__name__)
T = TypeVar("T")
PROGRESS_INTERVAL_S = 0.25


@dataclass
class _Running:
    job: JobRecord
    control: CallControl
    last_progress_at: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class JobExecutionService:
    """Creates, runs, waits for, cancels and recovers jobs."""

    def __init__(
        self,
        store: JobStore,
        plugins: PluginExecutionService,
        *,
        lease_s: float = 30.0,
        poll_interval_s: float = 0.5,
        max_queue: int = 10_000,
        shutdown_grace_s: float = 10.0,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.max_queue = max_queue
        self.shutdown_grace_s = shutdown_grace_s
        self._pending_estimate = 0
        self._reserved = 0  # claims in flight
        self.worker_id = worker_id or make_worker_id()
        self._db_pool = ThreadPoolExecutor(
            2 if store.is_sqlite else 8, thread_name_prefix="lensforge-db"
        )
        self._writer = StoreWriter(store)
        self._running: dict[str, _Running] = {}
        self._waiters: dict[str, list[asyncio.Future[JobRecord | None]]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    # -- plumbing ----------------------------------------------------------------------------

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, partial(fn, *args, **kwargs))

    async def _write(self, op: Callable[[Tx], T]) -> T:
        return await self._writer.run(op)

    async def start(self, *, dispatch: bool = True) -> None:
        """Recover expired leases, then start claiming and running jobs."""
        await self._writer.start()
        await self.plugins.start()
        await self.recover(dead_local_owners=True)
        self._pending_estimate = await self._db(self.store.count, Status.PENDING)
        if dispatch:
            self._accepting = True
            self._tasks = [
                asyncio.create_task(self._dispatch_loop(), name="lensforge-dispatch"),
                asyncio.create_task(self._maintenance_loop(), name="lensforge-leases"),
            ]

    async def stop(self) -> None:
        """Graceful shutdown: stop claiming, let running jobs finish within the grace period,
        then stop the executor and hand unfinished jobs back to PENDING, no attempt charged."""
        self._accepting = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = [r.task for r in self._running.values() if r.task is not None]
        if running and self.shutdown_grace_s > 0:
            await asyncio.wait(running, timeout=self.shutdown_grace_s)
        leftover = [r.job for r in self._running.values()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.plugins.stop()
        for job in leftover:
            try:
                await self._apply(
                    job,
                    Verdict(
                        Status.PENDING,
                        {"attempts": max(job.attempts - 1, 0), "lease_owner": None},
                        "server shutdown",
                    ),
                    owned_by=self.worker_id,
                )
            except Exception:
                log.exception("could not hand job %s back", job.id)
        if leftover:
            log.info("handed %d running jobs back", len(leftover), extra={"event": "jobs_released"})
        await self._writer.stop()
        self._db_pool.shutdown(wait=True)

    # -- queries -----------------------------------------------------------------------------

    async def get(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        job = await self._read(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(f"No job with id '{job_id}'.", job_id=job_id)
        return job

    async def _read(self, job_id: str) -> JobRecord | None:
        raw = self._writer.connection  # SQLite: one row by key costs less than a thread hop
        if raw is not None:
            with contextlib.suppress(StoreBusy):  # that connection never waits for a lock
                return self.store.get(job_id, raw=raw)
        return await self._db(self.store.get, job_id)

    async def list_jobs(self, **filters: Any) -> list[JobRecord]:
        return await self._db(partial(self.store.list_jobs, **filters))

    async def events(self, job_id: str, *, owner: str | None = None) -> list[Event]:
        await self.get(job_id, owner=owner)
        return await self._db(self.store.events, job_id)

    async def counts(self) -> dict[str, int]:
        return await self._db(self.store.counts)

    async def owns_blob(self, digest: str, owner: str) -> bool:
        return await self._db(self.store.owns_blob, digest, owner)

    async def ping(self) -> None:
        await self._db(self.store.ping)

    @property
    def write_stats(self) -> tuple[int, int]:
        """Store transactions run so far, and the writes they carried (group commit)."""
        return self._writer.transactions, self._writer.writes

    # -- lifecycle ---------------------------------------------------------------------------

    async def submit(self, new: NewJob) -> tuple[JobRecord, bool]:
        """Record a PENDING job (or find its idempotent twin) and wake the dispatcher.

        Past ``max_queue`` PENDING jobs, answers RateLimited (429) instead of growing.
        """
        job, created, _ = await self._submit(new, watch=False)
        return job, created

    async def submit_and_wait(self, new: NewJob, timeout_s: float) -> JobRecord:
        """Submit, then :meth:`wait`: the job once terminal, or as it stands at the timeout."""
        job, _, waiter = await self._submit(new, watch=True)
        return await self.wait(job.id, timeout_s, current=job, waiter=waiter)

    async def _submit(
        self, new: NewJob, *, watch: bool
    ) -> tuple[JobRecord, bool, asyncio.Future[JobRecord | None] | None]:
        if self._pending_estimate >= self.max_queue:
            self._pending_estimate = await self._db(self.store.count, Status.PENDING)
            if self._pending_estimate >= self.max_queue:
                error = RateLimited(
                    f"The queue is full ({self.max_queue} pending jobs); retry shortly.",
                    details={"max_queue": self.max_queue},
                )
                error.headers = {"Retry-After": "1"}
                raise error
        # With idle capacity and no backlog, claim the new job in the same transaction.
        claim_for = (
            self.worker_id
            if self._accepting
            and self._pending_estimate == 0
            and new.not_before is None
            and self._free_capacity() > 0
            else None
        )
        refs = [(digest, new.owner) for digest in blob_refs(new.inputs)]

        def create(tx: Tx) -> tuple[JobRecord, bool]:
            self.store.add_blob_owners(refs, tx=tx)
            return self.store.create(new, claim_for=claim_for, lease_s=self.lease_s, tx=tx)

        if claim_for is not None:
            self._reserved += 1
        waiter = asyncio.get_running_loop().create_future() if watch else None
        future = self._writer.submit(create)
        # Started here, not by the caller: a claimed job runs even if its caller goes away.
        future.add_done_callback(
            partial(self._created, claimed=claim_for is not None, waiter=waiter)
        )
        job, created = await asyncio.shield(future)
        return job, created, waiter if created else None

    def _created(
        self,
        future: asyncio.Future[tuple[JobRecord, bool]],
        *,
        claimed: bool,
        waiter: asyncio.Future[JobRecord | None] | None,
    ) -> None:
        if claimed:
            self._reserved -= 1
        if future.cancelled() or future.exception() is not None:
            return
        job, created = future.result()
        if created and waiter is not None:  # before it can start, so no wake-up is missed
            self._waiters.setdefault(job.id, []).append(waiter)
        if created and job.status is Status.RUNNING:
            self._start(job)
        elif created:
            self._pending_estimate += 1
            self._wake.set()

    def _free_capacity(self) -> int:
        return self.plugins.capacity - len(self._running) - self._reserved

    async def wait(
        self,
        job_id: str,
        timeout_s: float,
        *,
        current: JobRecord | None = None,
        waiter: asyncio.Future[JobRecord | None] | None = None,
    ) -> JobRecord:
        """The job once terminal, or as it stands when ``timeout_s`` runs out.

        ``current`` is the job as the caller just saw it, saving the first read; ``waiter``
        a future already registered for it (see :meth:`submit_and_wait`).
        """
        deadline = time.monotonic() + timeout_s
        loop = asyncio.get_running_loop()
        while True:
            future = waiter or loop.create_future()
            if waiter is None:
                self._waiters.setdefault(job_id, []).append(future)
            waiter = None
            try:
                job = current or await self.get(job_id)
                current = None
                if job.status in TERMINAL:
                    return job
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return job
                # Finished here: the future fires. Finished by another process: poll again.
                timer = loop.call_later(min(remaining, self.poll_interval_s * 2), _expire, future)
                finished = await future
                timer.cancel()
                if finished is not None:
                    return finished
            finally:
                waiters = self._waiters.get(job_id, [])
                if future in waiters:
                    waiters.remove(future)
                if not waiters:
                    self._waiters.pop(job_id, None)

    async def watch(
        self, job_id: str, *, owner: str | None = None, interval_s: float = 0.1
    ) -> AsyncIterator[JobRecord]:
        """Yield the job each time its status or progress changes, ending when it is terminal."""
        last: tuple[Status, float, str | None] | None = None
        while True:
            job = await self.get(job_id, owner=owner)
            snapshot = (job.status, job.progress, job.progress_message)
            if snapshot != last:
                last = snapshot
                yield job
            if job.status in TERMINAL:
                return
            await asyncio.sleep(interval_s)

    async def cancel(
        self, job_id: str, *, owner: str | None = None, wait_s: float = 2.0
    ) -> JobRecord:
        """Cancel a job: PENDING at once; RUNNING once its work has really stopped."""
        for _ in range(5):
            job = await self.get(job_id, owner=owner)
            if job.status in TERMINAL:
                raise Conflict(
                    f"Job {job_id} already finished ({job.status.value}); nothing to cancel.",
                    job_id=job_id,
                    details={"status": job.status.value},
                )
            try:
                if job.status is Status.PENDING:
                    return await self._apply(
                        job,
                        Verdict(Status.CANCELLED, {"finished_at": time.time()}, "cancelled"),
                        owned_by=None,
                    )
                await self._write(partial(_request_cancel, self.store, job_id))
                running = self._running.get(job_id)
                if running is not None:
                    running.control.cancel()
                return await self.wait(job_id, wait_s)
            except IllegalTransition:
                continue  # it moved on between our read and our write: look again
        return await self.get(job_id, owner=owner)

    async def recover(self, *, dead_local_owners: bool = False) -> int:
        """Requeue (or fail, when attempts are spent) RUNNING jobs whose lease expired.

        With ``dead_local_owners`` (at start-up), jobs leased to a server process on this host
        that no longer exists are recovered at once instead of when their lease runs out.
        """
        recovered = 0
        candidates = await self._db(self.store.expired_leases)
        if dead_local_owners:
            mine = await self._db(self.store.running_owned_by, host_prefix())
            candidates += [job for job in mine if not owner_alive(job.lease_owner)]
        for job in candidates:
            values: dict[str, Any]
            if job.attempts < self.plugins.attempts_allowed(job, WorkerLost.code):
                status, values, reason = Status.PENDING, {"lease_owner": None}, "lease expired"
            else:
                envelope = WorkerLost(
                    f"The worker running the job was lost after {job.attempts} attempt(s).",
                    plugin=job.plugin,
                    tool=job.tool,
                    job_id=job.id,
                ).envelope()
                status, values, reason = (
                    Status.FAILED,
                    {"error": envelope, "finished_at": time.time()},
                    "worker_lost",
                )
            try:
                await self._apply(job, Verdict(status, values, reason), owned_by=job.lease_owner)
                recovered += 1
            except IllegalTransition:
                continue  # its worker came back and finished it, or another server recovered it
        if recovered:
            log.warning(
                "recovered %d jobs with expired leases",
                recovered,
                extra={"event": "jobs_recovered"},
            )
            self._wake.set()
        return recovered

    async def _apply(self, job: JobRecord, verdict: Verdict, *, owned_by: str | None) -> JobRecord:
        def transition(tx: Tx) -> JobRecord:
            updated = self.store.transition(
                job.id,
                job.status,
                verdict.status,
                worker=self.worker_id,
                reason=verdict.reason,
                owned_by=owned_by,
                known=job,
                tx=tx,
                **verdict.values,
            )
            _own_artifacts(self.store, updated, verdict.artifacts, tx)
            return updated

        updated = await self._write(transition)
        self._after_transition(job, updated)
        return updated

    def _after_transition(self, job: JobRecord, updated: JobRecord) -> None:
        """Wake waiters, schedule a retry."""
        if updated.status in TERMINAL:
            for future in self._waiters.pop(job.id, []):
                if not future.done():
                    future.set_result(updated)
        elif updated.status is Status.PENDING:
            delay = max(0.0, (updated.not_before or 0) - time.time())
            asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _finish(self, job: JobRecord, verdict: Verdict) -> None:
        """Apply a run's verdict and, with a backlog, claim the next jobs in the same
        transaction (this job's slot is about to free up)."""
        if not (self._accepting and self._pending_estimate > 0):
            await self._apply(job, verdict, owned_by=self.worker_id)
            return
        free = self._free_capacity() + 1
        self._reserved += free

        def finish_and_claim(tx: Tx) -> tuple[JobRecord, list[JobRecord]]:
            updated, claimed = self.store.transition_and_claim(
                job.id,
                job.status,
                verdict.status,
                worker=self.worker_id,
                lease_s=self.lease_s,
                limit=free,
                reason=verdict.reason,
                owned_by=self.worker_id,
                known=job,
                tx=tx,
                **verdict.values,
            )
            _own_artifacts(self.store, updated, verdict.artifacts, tx)
            return updated, claimed

        try:
            updated, claimed = await self._write(finish_and_claim)
        finally:
            self._reserved -= free
        self._pending_estimate = max(0, self._pending_estimate - len(claimed))
        self._after_transition(job, updated)
        self._running.pop(job.id, None)
        for next_job in claimed:
            self._start(next_job)

    # -- the dispatcher ----------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while self._accepting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()
            try:
                await self._claim_and_start()
            except Exception:
                log.exception("dispatch failed", extra={"event": "dispatch_failed"})
                await asyncio.sleep(self.poll_interval_s)

    async def _claim_and_start(self) -> None:
        free = self._free_capacity()
        while free > 0 and self._accepting:
            self._reserved += free
            try:
                claimed = await self._write(
                    partial(_claim, self.store, self.worker_id, self.lease_s, free)
                )
            finally:
                self._reserved -= free
            self._pending_estimate = max(0, self._pending_estimate - len(claimed))
            for job in claimed:
                self._start(job)
            if len(claimed) < free:
                if not claimed:
                    self._pending_estimate = 0  # nothing due: the backlog is gone
                return
            free = self._free_capacity()

    def _start(self, job: JobRecord) -> None:
        running = _Running(job, CallControl())
        running.control.on_progress = self._progress_callback(running)
        self._running[job.id] = running
        running.task = asyncio.create_task(self._run(running), name=f"job-{job.id}")

    async def _run(self, running: _Running) -> None:
        job = running.job
        try:
            verdict = await self.plugins.execute(job, running.control)
            try:
                await self._finish(job, verdict)
            except IllegalTransition:
                log.warning(
                    "job %s result refused: its lease was taken over",
                    job.id,
                    extra={"event": "job_result_fenced", "job_id": job.id},
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "job %s could not be finished", job.id, extra={"event": "job_finish_failed"}
            )
            await self._fail_internal(job)
        finally:
            self._running.pop(job.id, None)
            if self._pending_estimate > 0:  # a freed slot matters only with a backlog;
                self._wake.set()  # other servers' jobs are found by polling

    async def _fail_internal(self, job: JobRecord) -> None:
        """A job whose outcome could not be stored fails now, rather than via lease expiry."""
        envelope = InternalError(
            "The job's outcome could not be recorded; the server log has the details.",
            plugin=job.plugin,
            tool=job.tool,
            job_id=job.id,
        ).envelope()
        verdict = Verdict(
            Status.FAILED, {"error": envelope, "finished_at": time.time()}, "internal"
        )
        try:
            await self._apply(job, verdict, owned_by=self.worker_id)
        except Exception:
            log.exception("job %s could not be failed either", job.id)

    def _progress_callback(self, running: _Running) -> Callable[[float, str | None], None]:
        loop = asyncio.get_running_loop()

        def report(fraction: float, message: str | None) -> None:
            now = time.monotonic()
            if fraction < 1.0 and now - running.last_progress_at < PROGRESS_INTERVAL_S:
                return  # throttled: a few writes a second per job at most
            running.last_progress_at = now
            loop.call_soon_threadsafe(self._schedule_progress, running.job.id, fraction, message)

        return report

    def _schedule_progress(self, job_id: str, fraction: float, message: str | None) -> None:
        future = self._writer.submit(
            partial(_set_progress, self.store, job_id, fraction, message, self.worker_id)
        )
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _maintenance_loop(self) -> None:
        """Heartbeat the leases of running jobs, pass on cancel requests, recover others'."""
        interval = max(0.2, self.lease_s / 3)
        while self._accepting:
            await asyncio.sleep(interval)
            try:
                ids = list(self._running)
                if ids:
                    await self._write(
                        partial(_renew_leases, self.store, self.worker_id, ids, self.lease_s)
                    )
                    for job in await self._db(self.store.get_many, ids):
                        if job.cancel_requested and job.id in self._running:
                            self._running[job.id].control.cancel()
                await self.recover()
            except Exception:
                log.exception(
                    "lease maintenance failed", extra={"event": "lease_maintenance_failed"}
                )


def _expire(future: asyncio.Future[JobRecord | None]) -> None:
    if not future.done():
        future.set_result(None)  # the wait ran out; the job is read again


# Write operations for the StoreWriter: each a function of the shared transaction.


def _own_artifacts(store: JobStore, job: JobRecord, digests: Sequence[str], tx: Tx) -> None:
    """The caller of a job may download the images its tool produced (a success's only)."""
    if digests:
        store.add_blob_owners([(digest, job.owner) for digest in digests], tx=tx)


def _claim(store: JobStore, worker: str, lease_s: float, limit: int, tx: Tx) -> list[JobRecord]:
    return store.claim(worker, lease_s, limit, tx=tx)


def _set_progress(
    store: JobStore, job_id: str, fraction: float, message: str | None, owner: str, tx: Tx
) -> bool:
    return store.set_progress(job_id, fraction, message, owner, tx=tx)


def _renew_leases(store: JobStore, owner: str, ids: list[str], lease_s: float, tx: Tx) -> int:
    return store.renew_leases(owner, ids, lease_s, tx=tx)


def _request_cancel(store: JobStore, job_id: str, tx: Tx) -> None:
    store.request_cancel(job_id, tx=tx)
