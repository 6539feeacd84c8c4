"""Waiting for jobs: futures woken when a job ends, here or (by a store notice) elsewhere.

A job finished by this server wakes its waiters with the record (:meth:`Waiters.finished`);
one finished by another server wakes them through a notice (:meth:`Waiters.poke`: they read
it again). Without notices (SQLite) waiters read the job every ``poll_interval_s * 2``; with
them only every ``NOTICED_POLL_S``, in case a notice was lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from lensforge.store import TERMINAL, JobRecord

Waiter = asyncio.Future[JobRecord | None]
NOTICED_POLL_S = 5.0


class Waiters:
    """Callers waiting for jobs to finish, by job id."""

    def __init__(self, read: Callable[[str], Awaitable[JobRecord]], poll_interval_s: float) -> None:
        self._read = read
        self.recheck_s = poll_interval_s * 2
        self._waiting: dict[str, list[Waiter]] = {}

    def noticed(self) -> None:
        """Notices of jobs ended elsewhere will come: poll only as a safety net."""
        self.recheck_s = max(self.recheck_s, NOTICED_POLL_S)

    def poke(self, job_id: str) -> None:
        """``job_id`` changed elsewhere: its waiters read it again now."""
        for future in self._waiting.get(job_id, ()):
            _expire(future)

    def poke_all(self) -> None:
        """Notices may have been missed: every waiter reads its job again."""
        for job_id in list(self._waiting):
            self.poke(job_id)

    def register(self, job_id: str, waiter: Waiter) -> None:
        """Add a future made before the job could start, so that no wake-up is missed."""
        self._waiting.setdefault(job_id, []).append(waiter)

    def finished(self, job: JobRecord) -> None:
        """Wake everyone waiting for ``job`` (now terminal)."""
        for future in self._waiting.pop(job.id, []):
            if not future.done():
                future.set_result(job)

    async def wait(
        self,
        job_id: str,
        timeout_s: float,
        *,
        current: JobRecord | None = None,
        waiter: Waiter | None = None,
    ) -> JobRecord:
        """The job once terminal, or as it stands when ``timeout_s`` runs out.

        ``current`` is the job as the caller just saw it, saving the first read; ``waiter``
        a future already registered for it.
        """
        deadline = time.monotonic() + timeout_s
        loop = asyncio.get_running_loop()
        while True:
            future = waiter or loop.create_future()
            if waiter is None:
                self.register(job_id, future)
            waiter = None
            try:
                job = current or await self._read(job_id)
                current = None
                if job.status in TERMINAL:
                    return job
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return job
                # Finished here: the future fires with the job. Elsewhere: a notice pokes it
                # (or, without notices, the timer), and the job is read again.
                timer = loop.call_later(min(remaining, self.recheck_s), _expire, future)
                finished = await future
                timer.cancel()
                if finished is not None:
                    return finished
            finally:
                waiters = self._waiting.get(job_id, [])
                if future in waiters:
                    waiters.remove(future)
                if not waiters:
                    self._waiting.pop(job_id, None)


def _expire(future: Waiter) -> None:
    if not future.done():
        future.set_result(None)  # the wait ran out; the job is read again
