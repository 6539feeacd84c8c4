"""JobExecutionService: the job lifecycle, and the only writer of job status.

PENDING → RUNNING → SUCCESS | FAILED; PENDING | RUNNING → CANCELLED; RUNNING → PENDING only by
lease recovery, a declared retry or a graceful stop. It submits jobs, waits for them, cancels
them and applies the verdict of every run (:meth:`_apply`, :meth:`_finish`) through the
store's domain API. Claiming and capacity are the :class:`~.dispatch.Dispatcher`'s; the
heartbeat and lease recovery the :class:`~.leases.LeaseKeeper`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lensforge.blobs import blob_refs
from lensforge.errors import Conflict, IllegalTransition, JobNotFound
from lensforge.execution.dispatch import Dispatcher
from lensforge.execution.executors import CallControl
from lensforge.execution.leases import LeaseKeeper, make_worker_id
from lensforge.execution.plugins import PluginExecutionService
from lensforge.execution.progress import ProgressReporter
from lensforge.execution.verdicts import (
    Verdict,
    cancelled_pending,
    handed_back,
    internal_failure,
)
from lensforge.execution.waiting import Waiter, Waiters
from lensforge.store import (
    TERMINAL,
    Event,
    FrameItem,
    JobRecord,
    JobStoreProtocol,
    NewJob,
    Notice,
    Status,
)

log = logging.getLogger(__name__)


@dataclass
class _Running:
    job: JobRecord
    control: CallControl
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class JobExecutionService:
    """Creates, runs, waits for, cancels and recovers jobs."""

    def __init__(
        self,
        store: JobStoreProtocol,
        plugins: PluginExecutionService,
        *,
        lease_s: float = 30.0,
        poll_interval_s: float = 0.5,
        max_queue: int = 10_000,
        shutdown_grace_s: float = 10.0,
        worker_id: str | None = None,
        max_running_per_key: int = 0,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.shutdown_grace_s = shutdown_grace_s
        self.worker_id = worker_id or make_worker_id()
        self._running: dict[str, _Running] = {}
        self.waiters = Waiters(self.get, poll_interval_s)
        self.progress = ProgressReporter(store, self.worker_id)
        self.dispatcher = Dispatcher(
            store,
            worker_id=self.worker_id,
            capacity=lambda: plugins.capacity,
            busy=self._running.__len__,
            start=self._start,
            lease_s=lease_s,
            poll_interval_s=poll_interval_s,
            max_queue=max_queue,
            per_owner=max_running_per_key,
        )
        self.leases = LeaseKeeper(
            store,
            worker_id=self.worker_id,
            lease_s=lease_s,
            worker_lost_attempts=plugins.worker_lost_attempts,
            running=self._running.keys,
            cancel=self._cancel_running,
            apply=lambda job, verdict, owned_by: self._apply(job, verdict, owned_by=owned_by),
            recovered=self.dispatcher.wake,
        )

    async def start(self, *, dispatch: bool = True) -> None:
        """Recover expired leases, then start claiming and running jobs."""
        await self.store.start()
        await self.plugins.start()
        await self.leases.recover(dead_local_owners=True)
        if self.store.listen(self._noticed):
            self.waiters.noticed()
        await self.dispatcher.start(loop=dispatch)
        if dispatch:
            self.leases.start()

    async def stop(self) -> None:
        """Graceful shutdown: stop claiming, let running jobs finish within the grace period,
        then stop the executor and hand unfinished jobs back to PENDING, no attempt charged."""
        await self.dispatcher.stop()
        await self.leases.stop()
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
                await self._apply(job, handed_back(job), owned_by=self.worker_id)
            except Exception:
                log.exception("could not hand job %s back", job.id)
        if leftover:
            log.info("handed %d running jobs back", len(leftover), extra={"event": "jobs_released"})
        await self.store.stop()

    def _noticed(self, notice: Notice) -> None:
        """A store notice: jobs ended or became PENDING in some process (maybe this one)."""
        if notice.resync:
            self.waiters.poke_all()
            self.dispatcher.noticed(0)
            return
        for job_id in notice.finished:
            self.waiters.poke(job_id)
        if notice.pending:
            self.dispatcher.noticed(notice.pending)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        job = await self.store.get(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(f"No job with id '{job_id}'.", job_id=job_id)
        return job

    async def list_jobs(self, **filters: Any) -> list[JobRecord]:
        return await self.store.list(**filters)

    async def events(self, job_id: str, *, owner: str | None = None) -> list[Event]:
        await self.get(job_id, owner=owner)
        return await self.store.events(job_id)

    async def frames(
        self, job_id: str, *, owner: str | None = None, after: int = -1, limit: int = 100
    ) -> list[FrameItem]:
        """The job's stored per-frame items after ``after`` (a seq), oldest first."""
        await self.get(job_id, owner=owner)
        return await self.store.frames(job_id, after=after, limit=limit)

    async def counts(self) -> dict[str, int]:
        return await self.store.counts()

    async def owns_blob(self, digest: str, owner: str) -> bool:
        return await self.store.owns_blob(digest, owner)

    async def own_blob(self, digest: str, owner: str) -> None:
        """Record that ``owner`` uploaded the blob (so it may read and reference it)."""
        await self.store.add_blob_owners([(digest, owner)])

    async def ping(self) -> None:
        await self.store.ping()

    @property
    def write_stats(self) -> tuple[int, int]:
        """Store transactions run so far, and the writes they carried (group commit)."""
        return self.store.write_stats

    async def recover(self, *, dead_local_owners: bool = False) -> int:
        """Recover jobs whose lease expired now (see :class:`~.leases.LeaseKeeper`)."""
        return await self.leases.recover(dead_local_owners=dead_local_owners)

    # -- submit and wait ---------------------------------------------------------------------

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

    async def _submit(self, new: NewJob, *, watch: bool) -> tuple[JobRecord, bool, Waiter | None]:
        await self.dispatcher.check_queue()
        claim_for = self.dispatcher.claim_for_new(new)
        if claim_for is not None:
            self.dispatcher.reserved += 1
        waiter = asyncio.get_running_loop().create_future() if watch else None
        future = asyncio.ensure_future(
            self.store.create(
                new, claim_for=claim_for, lease_s=self.lease_s, blobs=blob_refs(new.inputs)
            )
        )
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
        waiter: Waiter | None,
    ) -> None:
        if claimed:
            self.dispatcher.reserved -= 1
        if future.cancelled() or future.exception() is not None:
            return
        job, created = future.result()
        if created and waiter is not None:  # before it can start, so no wake-up is missed
            self.waiters.register(job.id, waiter)
        if created and job.status is Status.RUNNING:
            self._start(job)
        elif created:
            self.dispatcher.added()

    async def wait(
        self,
        job_id: str,
        timeout_s: float,
        *,
        current: JobRecord | None = None,
        waiter: Waiter | None = None,
    ) -> JobRecord:
        """The job once terminal, or as it stands when ``timeout_s`` runs out (see Waiters)."""
        return await self.waiters.wait(job_id, timeout_s, current=current, waiter=waiter)

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
                    return await self._apply(job, cancelled_pending(), owned_by=None)
                await self.store.request_cancel(job_id)
                self._cancel_running(job_id)
                return await self.wait(job_id, wait_s)
            except IllegalTransition:
                continue  # it moved on between our read and our write: look again
        return await self.get(job_id, owner=owner)

    def _cancel_running(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running is not None:
            running.control.cancel()

    # -- applying verdicts: the only status writes -------------------------------------------

    async def _apply(self, job: JobRecord, verdict: Verdict, *, owned_by: str | None) -> JobRecord:
        updated, _ = await self.store.finish(
            job,
            verdict.status,
            verdict.values,
            worker=self.worker_id,
            reason=verdict.reason,
            owned_by=owned_by,
            artifacts=verdict.artifacts,
        )
        self._after_transition(job, updated)
        return updated

    async def _finish(self, job: JobRecord, verdict: Verdict) -> None:
        """Apply a run's verdict, fenced by this server's lease and, with a backlog, claim
        the next jobs in the same transaction (this job's slot is about to free up)."""
        claim_next = self.dispatcher.claim_next()
        self.dispatcher.reserved += claim_next
        try:
            updated, claimed = await self.store.finish(
                job,
                verdict.status,
                verdict.values,
                worker=self.worker_id,
                reason=verdict.reason,
                owned_by=self.worker_id,
                artifacts=verdict.artifacts,
                claim_next=claim_next,
                lease_s=self.lease_s,
                per_owner=self.dispatcher.per_owner,
            )
        finally:
            self.dispatcher.reserved -= claim_next
        self._after_transition(job, updated)
        self._running.pop(job.id, None)
        self.dispatcher.claimed(claimed, claim_next)

    def _after_transition(self, job: JobRecord, updated: JobRecord) -> None:
        """Log it, wake waiters, schedule a retry."""
        if log.isEnabledFor(logging.INFO):  # the line's extra dict is not free
            log.info(
                "job %s %s -> %s",
                job.id,
                job.status.value,
                updated.status.value,
                extra={
                    "event": "job_transition",
                    "job_id": job.id,
                    "plugin": job.plugin,
                    "tool": job.tool,
                    "from_status": job.status.value,
                    "to_status": updated.status.value,
                    "attempt": updated.attempts,
                },
            )
        if updated.status in TERMINAL:
            self.waiters.finished(updated)
        elif updated.status is Status.PENDING:
            self.dispatcher.wake(max(0.0, (updated.not_before or 0) - time.time()))

    # -- running a claimed job ---------------------------------------------------------------

    def _start(self, job: JobRecord) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job %s running",
                job.id,
                extra={
                    "event": "job_claimed",
                    "job_id": job.id,
                    "plugin": job.plugin,
                    "tool": job.tool,
                    "attempt": job.attempts,
                },
            )
        control = CallControl(self.progress.callback(job.id))
        control.on_checkpoint = self.progress.checkpointer(job.id, refused=control.cancel)
        running = _Running(job, control)
        self._running[job.id] = running
        running.task = asyncio.create_task(self._run(running), name=f"job-{job.id}")

    async def _run(self, running: _Running) -> None:
        job = running.job
        try:
            if job.attempts > 1:  # a retry resumes from its last checkpoint, if it made one
                checkpoint = await self.store.checkpoint(job.id)
                running.control.resume = checkpoint.state if checkpoint is not None else None
            verdict = await self.plugins.execute(job, running.control)
            await self.progress.drain(job.id)  # its checkpoints are stored before its result
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
            self.dispatcher.freed()

    async def _fail_internal(self, job: JobRecord) -> None:
        """A job whose outcome could not be stored fails now, rather than via lease expiry."""
        try:
            await self._apply(job, internal_failure(job), owned_by=self.worker_id)
        except Exception:
            log.exception("job %s could not be failed either", job.id)
