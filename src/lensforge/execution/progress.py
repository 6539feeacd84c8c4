"""Progress reports of running jobs: throttled, then written to the store off the caller.

A tool may report progress from any thread (or its worker process, through the executor);
each job's reports are throttled to a few writes a second, the last one (1.0) always passes,
and the write is fenced by this server's lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from lensforge.store import JobStoreProtocol

PROGRESS_INTERVAL_S = 0.25


class ProgressReporter:
    """Makes the ``on_progress`` callback of each job this server runs."""

    def __init__(
        self, store: JobStoreProtocol, worker_id: str, interval_s: float = PROGRESS_INTERVAL_S
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.interval_s = interval_s

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
