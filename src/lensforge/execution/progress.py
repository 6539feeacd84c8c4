"""Progress reports and checkpoints of running jobs, written to the store off the caller.

A tool may report progress from any thread (or its worker process, through the executor);
each job's reports are throttled to a few writes a second, the last one (1.0) always passes,
and the write is fenced by this server's lease.

Checkpoints (``ctx.checkpoint``: a long job's resume state and its new per-frame items) are
never throttled: each one is written, fenced the same way, in the order the tool made them
(one job's writes are chained). :meth:`ProgressReporter.drain` waits for a job's
checkpoints to be stored, which JobExecutionService does before it records the job's result,
so a finished job's items are all there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from lensforge.store import JobStoreProtocol

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.25


class ProgressReporter:
    """Makes the ``on_progress`` and ``on_checkpoint`` callbacks of each job this server runs."""

    def __init__(
        self, store: JobStoreProtocol, worker_id: str, interval_s: float = PROGRESS_INTERVAL_S
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.interval_s = interval_s
        self._checkpoints: dict[str, asyncio.Future[None]] = {}  # each job's last write
        self._made: set[str] = set()  # jobs that made a checkpoint (from any thread)
        # Items of checkpoints the store failed to write, carried into the job's next one,
        # so that a newer state is never stored without the items before it.
        self._unsaved: dict[str, list[dict[str, Any]]] = {}

    def callback(self, job_id: str) -> Callable[[float, str | None], None]:
        loop = asyncio.get_running_loop()
        last = [0.0]  # when this job's last report was let through

        def report(fraction: float, message: str | None) -> None:
            now = time.monotonic()
            if fraction < 1.0 and now - last[0] < self.interval_s:
                return  # throttled: a few writes a second per job at most
            last[0] = now
            loop.call_soon_threadsafe(self._save, job_id, fraction, message)

        return report

    def _save(self, job_id: str, fraction: float, message: str | None) -> None:
        write = self.store.set_progress(job_id, fraction, message, self.worker_id)
        future = asyncio.ensure_future(write)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def checkpointer(
        self, job_id: str, refused: Callable[[], None]
    ) -> Callable[[dict[str, Any], list[dict[str, Any]]], None]:
        """The job's ``on_checkpoint`` (callable from any thread); ``refused`` is called if
        the store refuses a checkpoint (the job is no longer this server's)."""
        loop = asyncio.get_running_loop()

        def checkpoint(state: dict[str, Any], items: list[dict[str, Any]]) -> None:
            self._made.add(job_id)  # before it is chained: drain() knows to wait for it
            if _on_loop(loop):  # the inline executor: chained now, before the tool returns
                self._chain(job_id, state, items, refused)
            else:
                loop.call_soon_threadsafe(self._chain, job_id, state, items, refused)

        return checkpoint

    def _chain(
        self,
        job_id: str,
        state: dict[str, Any],
        items: list[dict[str, Any]],
        refused: Callable[[], None],
    ) -> None:
        before = self._checkpoints.get(job_id)
        write = asyncio.ensure_future(self._write(before, job_id, state, items, refused))
        self._checkpoints[job_id] = write
        write.add_done_callback(lambda f: self._forget(job_id, f))

    async def _write(
        self,
        before: asyncio.Future[None] | None,
        job_id: str,
        state: dict[str, Any],
        items: list[dict[str, Any]],
        refused: Callable[[], None],
    ) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)  # in the tool's order
        items = self._unsaved.pop(job_id, []) + items
        try:
            stored = await self.store.save_checkpoint(job_id, state, items, self.worker_id)
        except Exception:
            log.exception(
                "checkpoint of job %s not stored; its items go with the next one",
                job_id,
                extra={"event": "checkpoint_failed", "job_id": job_id},
            )
            self._unsaved[job_id] = items
            return
        if not stored:
            log.warning(
                "checkpoint of job %s refused: the job is no longer ours",
                job_id,
                extra={"event": "checkpoint_fenced", "job_id": job_id},
            )
            refused()

    def _forget(self, job_id: str, done: asyncio.Future[None]) -> None:
        if self._checkpoints.get(job_id) is done:
            del self._checkpoints[job_id]

    async def drain(self, job_id: str) -> None:
        """Wait until every checkpoint the job made so far is written (or failed)."""
        if job_id not in self._made:
            return  # the common case: a tool that never checkpoints costs no loop turn
        self._made.discard(job_id)
        await asyncio.sleep(0)  # checkpoints handed over from threads are chained first
        while (last := self._checkpoints.get(job_id)) is not None:
            await asyncio.gather(last, return_exceptions=True)
            await asyncio.sleep(0)  # let the done-callback forget it
        if self._unsaved.pop(job_id, None) is not None:
            # Its last checkpoint failed: a retry resumes from the one before, whose items
            # are all stored; only this attempt's later items are missing, as after a crash.
            log.error(
                "job %s ends with checkpoint items unstored",
                job_id,
                extra={"event": "checkpoint_lost", "job_id": job_id},
            )


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # a thread with no loop: a tool on the thread executor
        return False
