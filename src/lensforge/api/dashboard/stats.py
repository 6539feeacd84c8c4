"""The overview figures of ``GET /v1/stats``: jobs by state, the last hour, workers alive.

A read-only query over the job table, run on the store's engine in a thread. It sits here,
beside its only user, until the store grows a domain operation for it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import case, func, select

from lensforge.store import JobStore, Status
from lensforge.store.tables import jobs
from lensforge.wiring import Services

WINDOW_S = 3600.0


def job_figures(store: JobStore, owner: str | None, now: float) -> dict[str, Any]:
    """Jobs by state, and jobs finished and failed in the last hour (``owner``'s only, if set)."""
    by_state = select(jobs.c.status, func.count()).group_by(jobs.c.status)
    since = now - WINDOW_S
    recent = select(
        func.count(),
        func.coalesce(func.sum(case((jobs.c.status == Status.FAILED.value, 1), else_=0)), 0),
    ).where(jobs.c.finished_at >= since)
    if owner is not None:
        by_state = by_state.where(jobs.c.owner == owner)
        recent = recent.where(jobs.c.owner == owner)
    with store.engine.connect() as conn:
        counts = {status.value: 0 for status in Status}
        counts.update({status: int(n) for status, n in conn.execute(by_state)})
        finished, failed = conn.execute(recent).one()
    finished, failed = int(finished), int(failed)
    return {
        "jobs": counts,
        "queue_depth": counts[Status.PENDING.value],
        "last_hour": {
            "finished": finished,
            "failed": failed,
            "throughput_per_min": round(finished / (WINDOW_S / 60), 3),
            "error_rate": round(failed / finished, 4) if finished else 0.0,
        },
    }


def workers_alive(services: Services) -> int:
    """Worker processes alive (local executor), or the threads (thread), or 1 (inline)."""
    executor = services.jobs.plugins.executor
    pids = getattr(executor, "pids", None)
    if callable(pids):
        return len(pids())
    return services.settings.workers if services.settings.executor == "thread" else 1


async def stats(services: Services, owner: str | None) -> dict[str, Any]:
    """Everything the overview shows, in one JSON object."""
    now = time.time()
    figures = await asyncio.to_thread(job_figures, services.store, owner, now)
    plugins = {
        record.name: {"state": record.current_state.value, "reason": record.reason}
        for record in services.registry.records()
    }
    return {
        **figures,
        "window_s": WINDOW_S,
        "workers_alive": workers_alive(services),
        "executor": services.settings.executor,
        "plugins": plugins,
    }
