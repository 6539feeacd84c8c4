"""The overview figures of ``GET /v1/stats``: jobs by state, the last hour, workers alive.

Built from the job layer's existing reads (the API does not touch the store): job counts by
state for an admin (one grouped count), and the newest :data:`SAMPLE` jobs for the last
hour's throughput and error rate and for a non-admin key's own counts. When a sample is
full, the figures say so (``complete: false``) and the rate is taken over the time the
sample covers. A grouped count over a time window, in the job layer, would make every
figure exact at any volume.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from lensforge.store import JobRecord, Status
from lensforge.wiring import Services

WINDOW_S = 3600.0
SAMPLE = 1000  # newest jobs read for the last hour (and a non-admin key's counts)


def last_hour(sample: Sequence[JobRecord], now: float, complete: bool) -> dict[str, Any]:
    """Jobs finished and failed in the hour before ``now``, from the newest jobs first.

    ``complete``: the sample holds every job of the owner (else it is the newest ``SAMPLE``,
    and when its oldest job is younger than an hour, the rate is over the span it covers).
    """
    since = now - WINDOW_S
    finished = [j for j in sample if j.finished_at is not None and j.finished_at >= since]
    failed = sum(1 for j in finished if j.status is Status.FAILED)
    oldest = min((j.created_at for j in sample), default=since)
    covered = WINDOW_S if complete or oldest <= since else max(now - oldest, 1.0)
    return {
        "finished": len(finished),
        "failed": failed,
        "throughput_per_min": round(len(finished) / (covered / 60), 3),
        "error_rate": round(failed / len(finished), 4) if finished else 0.0,
        "covered_s": round(covered, 1),
        "complete": complete or oldest <= since,
    }


async def stats(services: Services, owner: str | None) -> dict[str, Any]:
    """Everything the overview shows, in one JSON object (``owner``'s jobs only, if set)."""
    now = time.time()
    sample = await services.analysis.list_jobs(owner=owner, limit=SAMPLE + 1)
    complete = len(sample) <= SAMPLE
    sample = sample[:SAMPLE]
    if owner is None:
        counts = await services.analysis.counts()
    else:  # the job layer counts all owners at once: count this owner's from the sample
        counts = {status.value: 0 for status in Status}
        for job in sample:
            counts[job.status.value] += 1
    plugins = {
        record.name: {"state": record.current_state.value, "reason": record.reason}
        for record in services.registry.records()
    }
    return {
        "jobs": counts,
        "jobs_complete": owner is None or complete,
        "queue_depth": counts[Status.PENDING.value],
        "last_hour": last_hour(sample, now, complete),
        "window_s": WINDOW_S,
        "workers_alive": services.analysis.workers_alive(),
        "executor": services.settings.executor,
        "plugins": plugins,
    }
