"""The Celery side of the throughput benchmark (``bench/throughput.py``).

The benchmark starts ``celery -A throughput_celery worker -c 2`` with ``bench/`` on its path
and the Redis URL in ``TBENCH_REDIS_URL``; it builds its submitting client with
:func:`make_app` (a fresh app per run, since each run has its own Redis).
"""

from __future__ import annotations

import os

from celery import Celery


def noop() -> dict[str, bool]:
    """No-op."""
    return {"ok": True}


def make_app(url: str) -> Celery:
    """A Celery app on the Redis at ``url`` (broker and result backend) with ``tbench.noop``."""
    celery = Celery("throughput_celery", broker=url, backend=url, set_as_current=False)
    celery.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_pool_limit=32,  # 16 submitting threads never wait for a producer connection
        worker_hijack_root_logger=False,
    )
    celery.task(name="tbench.noop")(noop)
    return celery


# What `celery -A throughput_celery worker` loads.
app = make_app(os.environ.get("TBENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
