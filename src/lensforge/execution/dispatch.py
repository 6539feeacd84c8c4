"""The dispatcher: claiming PENDING jobs, and the capacity accounting behind it.

Free capacity is what the executor can take minus the jobs running here and the claims in
flight (``reserved``). Three ways a job gets claimed, cheapest first:

- **at creation**: with idle capacity and no backlog, a new job is inserted already claimed
  (``claim_for_new``), saving a transaction;
- **at a finish**: with a backlog, the transaction that finishes a job claims the next ones
  for the slot it frees (``claim_next``);
- **by the loop**: woken when jobs are added here or (on PostgreSQL) noticed elsewhere
  (:meth:`noticed`), when slots free up with a backlog, and every poll interval as a safety
  net. While a claim gets all it asked for, more work is assumed and claimed again as soon
  as a slot frees: a backlog left by a dead server drains at this server's own pace.

Every claim is fair across callers and honours ``per_owner`` (the most RUNNING jobs one
owner may have; 0: no cap): see ``JobStoreProtocol.claim``. With a cap, jobs are not claimed
at creation (that insert cannot count the owner's RUNNING jobs): they are claimed by the
loop, woken at once, for one more transaction per job.

``pending`` is an estimate of the backlog (exact after a claim that found less than it
asked for); it gates the first two and the queue limit (``check_queue``: 429 past
``max_queue``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from lensforge.errors import RateLimited
from lensforge.store import JobRecord, JobStoreProtocol, NewJob, Status

log = logging.getLogger(__name__)


class Dispatcher:
    """Claims jobs for this server and hands each to ``start``."""

    def __init__(
        self,
        store: JobStoreProtocol,
        *,
        worker_id: str,
        capacity: Callable[[], int],
        busy: Callable[[], int],
        start: Callable[[JobRecord], None],
        lease_s: float,
        poll_interval_s: float,
        max_queue: int,
        per_owner: int = 0,
    ) -> None:
        self.store = store
        self.per_owner = per_owner
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.max_queue = max_queue
        self.pending = 0  # estimated PENDING jobs
        self.reserved = 0  # claims in flight
        self.accepting = False
        self._capacity, self._busy, self._start = capacity, busy, start
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def free(self) -> int:
        return self._capacity() - self._busy() - self.reserved

    async def start(self, *, loop: bool = True) -> None:
        self.pending = await self.store.count(Status.PENDING)
        if loop:
            self.accepting = True
            self._task = asyncio.create_task(self._loop(), name="lensforge-dispatch")

    async def stop(self) -> None:
        self.accepting = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self, delay: float = 0.0) -> None:
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._wake.set)
        else:
            self._wake.set()

    async def check_queue(self) -> None:
        """RateLimited (429) past ``max_queue`` PENDING jobs, instead of growing."""
        if self.pending >= self.max_queue:
            self.pending = await self.store.count(Status.PENDING)
            if self.pending >= self.max_queue:
                error = RateLimited(
                    f"The queue is full ({self.max_queue} pending jobs); retry shortly.",
                    details={"max_queue": self.max_queue},
                )
                error.headers = {"Retry-After": "1"}
                raise error

    def claim_for_new(self, new: NewJob) -> str | None:
        """The lease owner to claim a new job for at its creation, if now is the time (never
        with a per-owner cap: only a claim's transaction can count the owner's RUNNING jobs)."""
        if (
            self.accepting
            and self.pending == 0
            and not self.per_owner
            and new.not_before is None
            and self.free() > 0
        ):
            return self.worker_id
        return None

    def added(self) -> None:
        """A job was added PENDING."""
        self.pending += 1
        self._wake.set()

    def noticed(self, pending: int) -> None:
        """Another process left ``pending`` jobs PENDING (or, with 0, may have): try a claim."""
        self.pending = max(self.pending, pending, 1)
        if self.free() > 0:
            self._wake.set()

    def claim_next(self) -> int:
        """How many jobs a finishing job's transaction should claim (0 without a backlog)."""
        return self.free() + 1 if self.accepting and self.pending > 0 else 0

    def claimed(self, jobs: list[JobRecord], asked: int = 0) -> None:
        """Start the ``jobs`` a claim for ``asked`` got: fewer means no backlog is left, all of
        them that more may wait (a backlog this server did not see arrive)."""
        if asked and len(jobs) < asked:
            self.pending = 0
        elif asked:
            self.pending = max(1, self.pending - len(jobs))
        else:
            self.pending = max(0, self.pending - len(jobs))
        for job in jobs:
            self._start(job)

    def freed(self) -> None:
        """A slot freed up; it matters only with a backlog (others' jobs come by notice)."""
        if self.pending > 0:
            self._wake.set()

    async def _loop(self) -> None:
        while self.accepting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()
            try:
                await self._claim_and_start()
            except Exception:
                log.exception("dispatch failed", extra={"event": "dispatch_failed"})
                await asyncio.sleep(self.poll_interval_s)

    async def _claim_and_start(self) -> None:
        free = self.free()
        while free > 0 and self.accepting:
            self.reserved += free
            try:
                jobs = await self.store.claim(
                    self.worker_id, self.lease_s, free, per_owner=self.per_owner
                )
            finally:
                self.reserved -= free
            self.claimed(jobs, free)
            if len(jobs) < free:
                return
            free = self.free()
