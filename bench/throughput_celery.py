"""The Celery side of the throughput benchmark (``bench/throughput.py``): the app and its task.

The benchmark starts ``celery -A throughput_celery worker -c 2`` in bench/ with the Redis URL
in ``TBENCH_REDIS_URL`` and ``TBENCH_ACKS_LATE=1`` for late acks; its client process
(``throughput_clients.py``) builds its own app with :func:`make_app` and no result backend,
so that submitting costs it no result subscriptions (the worker still stores every result,
which is how the benchmark sees completions).
"""

from __future__ import annotations

import os

from celery import Celery

TASK = "tbench.noop"


def noop() -> dict[str, bool]:
    """No-op."""
    return {"ok": True}


def make_app(url: str, *, results: bool = True, acks_late: bool = False) -> Celery:
    """A Celery app with ``tbench.noop`` on the Redis at ``url``: the broker, and the result
    backend when ``results``; ``acks_late`` acknowledges each task after it ran instead of
    when it was received."""
    celery = Celery(
        "throughput_celery", broker=url, backend=url if results else None, set_as_current=False
    )
    celery.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=acks_late,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    celery.task(name=TASK)(noop)
    return celery


# What `celery -A throughput_celery worker` loads.
app = make_app(
    os.environ.get("TBENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    acks_late=os.environ.get("TBENCH_ACKS_LATE") == "1",
)
