"""The listing part of the scale benchmark: a million jobs in PostgreSQL, and the latency of
``GET /v1/jobs`` pages at the top and deep in the listing (used by ``scale.py``).

:func:`prepare` migrates a fresh database with the real migrations, creates three API keys
(an admin, a large owner, a small owner) and inserts the jobs with one ``INSERT ... SELECT
generate_series``; :func:`time_pages` times the first page and a page reached by its keyset
cursor for each key, one request at a time, with the server's CPU per request and the
``EXPLAIN ANALYZE`` of the store's list query for that page.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from common import HttpConnection, cpu_s, percentile, run_async  # bench/ is sys.path[0]

from lensforge.security.keys import KeyStore
from lensforge.store import JobStore
from lensforge.testing_postgres import PostgresCluster

PAGE = 50
WARM_GETS = 5


@dataclass
class Viewer:
    """An API key that lists jobs: ``owner`` None for an admin (every owner's jobs)."""

    who: str
    owner: str | None
    secret: str


@dataclass
class Listing:
    """The filled database and the keys that read it."""

    cluster: PostgresCluster
    database: str
    rows: int
    fill_s: float
    viewers: list[Viewer]

    @property
    def url(self) -> str:
        return self.cluster.url(self.database)


# Rows like the ones the server writes for a finished no-op job. Ids are time-ordered like
# new_job_id() (48-bit milliseconds, version 7, variant, random): one millisecond apart, so
# the listing order is the insertion order. Owners: 90% the bench key's, 3.3% a second
# key's (a small owner: its deep pages must not scan the other owners' rows), the rest two
# owners without a key.
INSERT_JOBS = """
INSERT INTO jobs (id, plugin, tool, status, inputs, result, error, traceback, attempts,
    max_attempts, progress, progress_message, owner, idempotency_key, request_hash, timeout_s,
    cancel_requested, lease_owner, lease_expires_at, not_before, created_at, updated_at,
    started_at, finished_at, retry_on)
SELECT
    substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || lpad(to_hex(mod(i, 4096)), 3, '0')
        || '-' || to_hex(8 + mod(i, 4)) || lpad(to_hex((random() * 4095)::int), 3, '0')
        || '-' || lpad(to_hex((random() * 281474976710000)::bigint), 12, '0'),
    'bench', 'noop', 'SUCCESS', '{}', '{"ok": true}', NULL, NULL, 1,
    1, 1.0, NULL, CASE WHEN mod(i, 30) = 0 THEN %(minor)s
        WHEN mod(i, 10) = 0 THEN 'other' || mod(i, 2) ELSE %(owner)s END,
    NULL, NULL, 30.0, false, NULL, NULL, NULL, t, t + 0.002, t + 0.001, t + 0.002, '[]'
FROM (
    SELECT i, t, lpad(to_hex((t * 1000)::bigint), 12, '0') AS h
    FROM (SELECT i, %(start)s + i / 1000.0 AS t FROM generate_series(1, %(rows)s) AS i) AS s
) AS g
"""


def fill(cluster: PostgresCluster, database: str, rows: int, owner: str, minor: str) -> float:
    """Insert ``rows`` finished jobs and ANALYZE; the seconds it took."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(cluster.conninfo(database), autocommit=True) as conn:
        start = time.time() - rows / 1000.0 - 3600
        params = {"owner": owner, "minor": minor, "start": start, "rows": rows}
        conn.execute(INSERT_JOBS, params)
        conn.execute("VACUUM ANALYZE jobs")
    return time.monotonic() - started


def deep_cursor(cluster: PostgresCluster, database: str, owner: str | None, depth: float) -> str:
    """The id a client would hold as ``cursor`` after paging ``depth`` of the way down."""
    import psycopg

    where, params = ("WHERE owner = %s", (owner,)) if owner else ("", ())
    with psycopg.connect(cluster.conninfo(database)) as conn:
        row = conn.execute(f"SELECT count(*) FROM jobs {where}", params).fetchone()
        offset = int((row[0] if row else 0) * depth) // PAGE * PAGE - 1
        row = conn.execute(
            f"SELECT id FROM jobs {where} ORDER BY id DESC OFFSET %s LIMIT 1",
            (*params, max(0, offset)),
        ).fetchone()
    if row is None:
        raise RuntimeError("no job that deep")
    return str(row[0])


def explain(cluster: PostgresCluster, database: str, owner: str | None, cursor: str | None) -> str:
    """EXPLAIN ANALYZE of the store's list query for that page (as the route asks it)."""
    import psycopg

    conditions = [("jobs.owner = %s", owner), ("jobs.id < %s", cursor)]
    where = " AND ".join(sql for sql, value in conditions if value is not None)
    params = tuple(value for _, value in conditions if value is not None)
    query = f"SELECT * FROM jobs {'WHERE ' + where if where else ''} ORDER BY jobs.id DESC"
    query += f" LIMIT {PAGE + 1}"
    with psycopg.connect(cluster.conninfo(database)) as conn:
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}", params).fetchall()
    return "\n".join(str(line[0]) for line in plan)


async def time_gets(port: int, path: str, key: str, requests: int) -> list[float]:
    """Milliseconds of ``requests`` GETs one after another on one keep-alive connection."""
    conn = await HttpConnection.open(port)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {conn.host}\r\nAuthorization: Bearer {key}\r\n\r\n"
    ).encode()
    try:
        for _ in range(WARM_GETS):  # warm: the connection, the key cache, the page cache
            await conn.send(request)
        timings = []
        for _ in range(requests):
            started = time.perf_counter()
            status, body = await conn.send(request)
            timings.append(1000 * (time.perf_counter() - started))
            if status != 200 or len(json.loads(body)["jobs"]) != PAGE:
                raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return sorted(timings)
    finally:
        await conn.close()


def prepare(cluster: PostgresCluster, rows: int) -> Listing:
    """A fresh migrated database with three keys and ``rows`` finished jobs."""
    database = cluster.create_database()
    store = JobStore(cluster.url(database))
    store.migrate()
    keys = KeyStore(store.engine)
    _, admin_secret = keys.create("bench-admin", ("admin",))
    reader, reader_secret = keys.create("bench-reader", ("read",))
    small, small_secret = keys.create("bench-small", ("read",))
    store.close()
    fill_s = fill(cluster, database, rows, reader.id, small.id)
    viewers = [
        Viewer("admin", None, admin_secret),
        Viewer("owner", reader.id, reader_secret),
        Viewer("small owner", small.id, small_secret),
    ]
    return Listing(cluster, database, rows, round(fill_s, 1), viewers)


def time_pages(
    listing: Listing, port: int, server_pid: int, depth: float, requests: int
) -> dict[str, dict[str, Any]]:
    """Each viewer's first page and its page ``depth`` of the way down: latency percentiles,
    the server's CPU per request and the query plan, by page name."""
    pages: dict[str, dict[str, Any]] = {}
    cluster, database = listing.cluster, listing.database
    for viewer in listing.viewers:
        for deep in (0.0, depth):
            cursor = deep_cursor(cluster, database, viewer.owner, deep) if deep else None
            path = f"/v1/jobs?limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
            cpu0 = cpu_s(server_pid)
            timings = run_async(time_gets(port, path, viewer.secret, requests))
            cpu_ms = 1000 * (cpu_s(server_pid) - cpu0) / (len(timings) + WARM_GETS)
            name = f"{viewer.who}, {f'{deep:.0%} deep' if deep else 'first page'}"
            pages[name] = {
                "p50_ms": round(percentile(timings, 50), 2),
                "p95_ms": round(percentile(timings, 95), 2),
                "max_ms": round(timings[-1], 2),
                "server_cpu_ms": round(cpu_ms, 2),
                "requests": len(timings),
                "plan": explain(cluster, database, viewer.owner, cursor),
            }
            print(
                f"  {name}: p50 {pages[name]['p50_ms']:.2f} ms, "
                f"p95 {pages[name]['p95_ms']:.2f} ms, server CPU {cpu_ms:.2f} ms per request"
            )
    return pages
