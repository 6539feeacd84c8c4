"""The submitting clients of the throughput benchmark, each run in a process of its own.

    python bench/throughput_clients.py lensforge --port P --jobs N --concurrency C --out F
    python bench/throughput_clients.py celery --redis-url URL --jobs N --concurrency C \
        --out F [--api raw|group]

``throughput.py`` starts them pinned to the same core whichever system they drive, so that
each client's CPU is its own figure and takes the same share from either system. A client
only submits; completions are seen from the system's side (LensForge's store, Celery's
result keys in Redis) by the benchmark. Each writes a JSON file: ``sent`` (id -> submit
time, in submission order), ``errors``, ``cpu_s`` (this process's CPU from the first submit
to the last) and, for LensForge, ``accepted`` (id -> when its 202 arrived).

- **lensforge**: ``C`` keep-alive HTTP/1.1 connections on uvloop, one request in flight on
  each, the same bytes each time (``POST /v1/jobs`` of the no-op tool); the job id is read
  from each 202. Submit time: just before the request is written.
- **celery --api raw** (the default): Celery's own task message for ``tbench.noop``, made
  once by ``app.send_task`` and taken at the Redis transport before it is pushed, then
  pushed ``N`` times with a fresh task id and delivery tag each, ``C`` messages per Redis
  pipeline (``LPUSH``, the command kombu's transport sends for each message). The lean
  counterpart of the raw HTTP client. Submit time: just before its pipeline is sent.
- **celery --api group**: Celery's public API, ``group(noop.s() for ...).apply_async()``
  inside kombu's ``Producer.batch(C)`` (pipelined publishes). Submit time: Celery's
  ``before_task_publish`` signal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from common import HttpConnection, run_async  # bench/ is sys.path[0]

BODY = b'{"plugin":"bench","tool":"noop","inputs":{}}'


# -- LensForge ---------------------------------------------------------------------------


async def _submit_lensforge(args: argparse.Namespace, out: dict[str, Any]) -> None:
    left = args.jobs

    async def submitter() -> None:
        nonlocal left
        try:
            conn = await HttpConnection.open(args.port)
        except OSError as exc:
            out["errors"].append(f"connect: {exc!r}")
            return
        request = conn.build("POST", "/v1/jobs", BODY)
        try:
            while left > 0:
                left -= 1
                sent = time.time()
                status, body = await conn.send(request)
                if status != 202:
                    out["errors"].append(f"{status} {body[:200].decode(errors='replace')}")
                    continue
                job_id = json.loads(body)["job_id"]
                out["sent"][job_id] = sent
                out["accepted"][job_id] = time.time()
        except (OSError, asyncio.IncompleteReadError) as exc:
            out["errors"].append(f"connection lost: {exc!r}")  # this one stops, others go on
        finally:
            await conn.close()

    try:
        async with asyncio.timeout(args.limit):
            await asyncio.gather(*(submitter() for _ in range(args.concurrency)))
    except TimeoutError:
        out["errors"].append(f"submission ran past {args.limit:g} s")


def lensforge(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"sent": {}, "accepted": {}, "errors": [], "cpu_s": 0.0}
    cpu0 = time.process_time()
    run_async(_submit_lensforge(args, out))
    out["cpu_s"] = time.process_time() - cpu0
    return out


# -- Celery ------------------------------------------------------------------------------


def _message_template(app: Any, producer: Any) -> tuple[str, str, str, str]:
    """(Redis list, message JSON, its task id, its delivery tag): one message exactly as
    ``app.send_task`` hands it to kombu's Redis transport, kept instead of pushed."""
    from kombu.utils.json import dumps
    from throughput_celery import TASK

    channel = producer.channel
    taken: list[tuple[str, dict[str, Any]]] = []

    def keep(queue: str, message: dict[str, Any], **_: Any) -> None:
        priority = channel._get_message_priority(message, reverse=False)
        taken.append((channel._q_for_pri(queue, priority), message))

    channel._put = keep  # this channel instance only, for one message
    try:
        app.send_task(TASK, producer=producer)
    finally:
        del channel._put
    key, message = taken[0]
    return key, dumps(message), message["headers"]["id"], message["properties"]["delivery_tag"]


def _celery_raw(app: Any, args: argparse.Namespace, out: dict[str, Any]) -> None:
    with app.producer_or_acquire() as producer:
        key, template, task_id, tag = _message_template(app, producer)
        client = producer.channel.client
        cpu0 = time.process_time()
        for start in range(0, args.jobs, args.concurrency):
            ids = [str(uuid.uuid4()) for _ in range(min(args.concurrency, args.jobs - start))]
            pipe = client.pipeline(transaction=False)
            for new_id in ids:
                pipe.lpush(key, template.replace(task_id, new_id).replace(tag, str(uuid.uuid4())))
            sent = time.time()
            pipe.execute()
            out["sent"].update(dict.fromkeys(ids, sent))
        out["cpu_s"] = time.process_time() - cpu0


def _celery_group(app: Any, args: argparse.Namespace, out: dict[str, Any]) -> None:
    from celery import group
    from celery.signals import before_task_publish
    from throughput_celery import TASK

    def mark(headers: dict[str, Any], **_: Any) -> None:
        out["sent"][headers["id"]] = time.time()

    before_task_publish.connect(mark, weak=False)
    noop = app.signature(TASK)
    with app.producer_or_acquire() as producer, producer.batch(max_size=args.concurrency):
        cpu0 = time.process_time()
        group(noop.clone() for _ in range(args.jobs)).apply_async(producer=producer)
    out["cpu_s"] = time.process_time() - cpu0


def celery(args: argparse.Namespace) -> dict[str, Any]:
    from throughput_celery import make_app

    app = make_app(args.redis_url, results=False)
    out: dict[str, Any] = {"sent": {}, "errors": [], "cpu_s": 0.0}
    try:
        (_celery_raw if args.api == "raw" else _celery_group)(app, args, out)
    except Exception as exc:  # reported in the output; the benchmark says which run failed
        out["errors"].append(repr(exc))
    finally:
        app.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("system", choices=["lensforge", "celery"])
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=16, help="in flight / per pipeline")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds at most (LensForge)")
    parser.add_argument("--port", type=int, help="LensForge's port")
    parser.add_argument("--redis-url", help="Celery's broker")
    parser.add_argument("--api", choices=["raw", "group"], default="raw", help="Celery client")
    args = parser.parse_args()
    out = lensforge(args) if args.system == "lensforge" else celery(args)
    args.out.write_text(json.dumps(out))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
