"""Scale benchmark: no-op jobs end to end on SQLite and PostgreSQL, one server or two, local
workers or Ray; and ``GET /v1/jobs`` latency over a million jobs in PostgreSQL.

    .venv/bin/python bench/scale.py                          # full sizes: a quiet machine
    .venv/bin/python bench/scale.py --jobs 300 --rows 20000  # a quick check
    .venv/bin/python bench/scale.py --only b,c --json /tmp/scale.json

In one run, N no-op jobs (5,000 by default) through ``POST /v1/jobs``, each configuration
with the same client as ``throughput.py`` (``throughput_clients.py``: raw keep-alive
HTTP/1.1, 16 requests in flight, pinned to the last CPU) and the same server
(``scale_serve.py``: ``serve.py``'s app with the no-op ``bench`` plugin, settings from
LENSFORGE_*), ``--workers`` worker processes (or Ray calls in flight) per server:

(a) SQLite + the local executor, one server pinned to the first CPU;
(b) PostgreSQL + the local executor, one server pinned to the first CPU (its workers inherit
    the pin);
(c) PostgreSQL + two servers on the one database, server 1 pinned to the first CPU and
    server 2 to the second (``taskset -c``); the client is split in two processes, one per
    server, each with half the jobs and half the connections (round-robin by connection);
(d) PostgreSQL + ``LENSFORGE_EXECUTOR=ray`` (``LENSFORGE_RAY_ADDRESS=local``: a private Ray on
    loopback with ``--workers`` CPUs), one server pinned to the first CPU with its Ray daemons;
(list) a million jobs inserted in PostgreSQL (one ``INSERT ... SELECT generate_series`` into
    the schema the real migrations made; 90% of them one API key's, the rest three other
    owners'), then ``GET /v1/jobs?limit=50`` timed one request at a time, for the first page
    and for a page reached by its keyset cursor about 90% deep, both as an admin key (every
    owner's jobs) and as the owner's own read key (its jobs only).

PostgreSQL is a throwaway cluster (``lensforge.testing_postgres``, fsync off, loopback), one
fresh database per configuration. Throughput is N over first submit to last finish (the
store's ``finished_at``); latency runs from each job's submit to its finish. Targets (issue
18): listing p95 under 20 ms at any depth; (c) at least 1.5x (b) when each server has its
own core; (d) at least half of (b). Every process started here is stopped at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from common import (  # bench/ is sys.path[0]
    Server,
    descendants,
    describe,
    exit_on_sigterm,
    machine,
    pick_cpus,
    start_settings_server,
    stop_all,
    wait_for,
    write_json,
)
from scale_listing import PAGE, prepare, time_pages
from throughput import (
    BUSY_PCT,
    Result,
    Store,
    client_output,
    cpu_meter,
    figures,
    start_client,
    with_client,
)

from lensforge.store import JobStore
from lensforge.testing_postgres import PostgresCluster, throwaway_cluster

CONFIGS = ("a", "b", "c", "d")
PARTS = (*CONFIGS, "list")
NAMES = {
    "a": "(a) SQLite + local",
    "b": "(b) PostgreSQL + local",
    "c": "(c) PostgreSQL + two servers",
    "d": "(d) PostgreSQL + Ray",
}
LIST_P95_TARGET_MS = 20.0
TWO_SERVERS_TARGET = 1.5  # (c) / (b)
RAY_TARGET = 0.5  # (d) / (b)
# The cluster serves a few servers' pools and the benchmark's readers.
PG_SETTINGS = ("max_connections=200", "shared_buffers=256MB")


class Completions(Protocol):
    """What the benchmark reads from a store while jobs run (``throughput.Store``'s face)."""

    def counts(self) -> dict[str, int]: ...
    def finished(self) -> int: ...
    def times(self, since: float) -> dict[str, tuple[float, float, float]]: ...
    def close(self) -> None: ...


class PgStore:
    """The jobs table of a PostgreSQL database, read beside the servers."""

    def __init__(self, cluster: PostgresCluster, database: str) -> None:
        import psycopg

        self.conn = psycopg.connect(cluster.conninfo(database), autocommit=True)

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        return {str(status): int(n) for status, n in rows}

    def finished(self) -> int:
        query = "SELECT count(*) FROM jobs WHERE status IN ('SUCCESS', 'FAILED', 'CANCELLED')"
        row = self.conn.execute(query).fetchone()
        return int(row[0]) if row else 0

    def times(self, since: float) -> dict[str, tuple[float, float, float]]:
        rows = self.conn.execute(
            "SELECT id, created_at, started_at, finished_at FROM jobs "
            "WHERE status = 'SUCCESS' AND created_at >= %s",
            (since,),
        ).fetchall()
        return {str(job_id): (c, s, f) for job_id, c, s, f in rows}

    def close(self) -> None:
        self.conn.close()


# -- (a)-(d): no-op jobs end to end ------------------------------------------------------


@contextlib.contextmanager
def servers(
    count: int, rundir: Path, env: dict[str, str], cpus: list[int | None]
) -> Iterator[list[Server]]:
    """``count`` servers, server i pinned to ``cpus[i]``; each stopped at the end with every
    process below it (Ray's daemons run in process groups of their own)."""
    started: list[Server] = []
    below: set[int] = set()
    try:
        for i in range(count):
            started.append(start_settings_server(rundir, f"server{i + 1}", cpu=cpus[i], env=env))
        for server in started:
            server.wait_ready(limit_s=120.0)
        yield started
    finally:
        for server in started:
            below |= set(descendants(server.pid))
        for server in started:
            server.stop()
        for pid in below:  # what outlived its server, by the pids seen while it ran
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def submit(
    ports: list[int], jobs: int, rundir: Path, args: argparse.Namespace, limit_s: float
) -> dict[str, Any]:
    """``throughput_clients.py lensforge`` once per server (the jobs and connections split
    evenly), all at once; their outputs merged."""
    split = argparse.Namespace(**vars(args))
    split.concurrency = max(1, args.concurrency // len(ports))
    started = []
    for i, port in enumerate(ports):
        share = jobs // len(ports) + (1 if i < jobs % len(ports) else 0)
        started.append(start_client("lensforge", share, rundir, split, "--port", str(port)))
    merged: dict[str, Any] = {"sent": {}, "accepted": {}, "errors": [], "cpu_s": 0.0}
    for proc, out in started:
        each = client_output(proc, out, limit_s)
        merged["sent"] |= each["sent"]
        merged["accepted"] |= each["accepted"]
        merged["errors"] += each["errors"]
        merged["cpu_s"] += each["cpu_s"]
    return merged


def run_config(
    part: str, args: argparse.Namespace, rundir: Path, cluster: PostgresCluster | None
) -> Result:
    env = {
        "LENSFORGE_EXECUTOR": "ray" if part == "d" else "local",
        "LENSFORGE_WORKERS": str(args.workers),
        "LENSFORGE_DATA_DIR": str(rundir / "data"),
        "LENSFORGE_LOG_LEVEL": "warning",
        "LENSFORGE_RATE_LIMIT_PER_S": "0",
    }
    if part == "d":
        env |= {
            "LENSFORGE_RAY_ADDRESS": "local",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    database = ""
    if part == "a":
        cluster = None
        env["LENSFORGE_DATABASE_URL"] = f"sqlite:///{rundir / 'lensforge.db'}"
    else:
        assert cluster is not None
        database = cluster.create_database()
        env["LENSFORGE_DATABASE_URL"] = cluster.url(database)
        migrate(env["LENSFORGE_DATABASE_URL"])  # once, before two servers start
    count = 2 if part == "c" else 1
    with servers(count, rundir, env, args.server_cpus) as running:
        store: Completions = (
            Store(rundir / "lensforge.db") if cluster is None else PgStore(cluster, database)
        )
        try:
            return measure(part, running, store, args, rundir, cluster)
        finally:
            store.close()


def migrate(url: str) -> None:
    """Run the real migrations on a fresh database."""
    store = JobStore(url)
    store.migrate()
    store.close()


def postgres_pids(cluster: PostgresCluster | None) -> list[int]:
    """The postmaster and its processes (the servers' backends among them) now."""
    if cluster is None or cluster.root is None:
        return []
    postmaster = int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])
    return [postmaster, *descendants(postmaster)]


def measure(
    part: str,
    running: list[Server],
    store: Completions,
    args: argparse.Namespace,
    rundir: Path,
    cluster: PostgresCluster | None,
) -> Result:
    def alive() -> None:
        for server in running:
            server.alive()

    ports = [server.port for server in running]
    warm = submit(ports, args.warmup, rundir, args, 120)
    if (
        warm["errors"]
        or wait_for(lambda: store.finished() >= args.warmup, 120, alive) is None
        or store.counts().get("SUCCESS", 0) < args.warmup
    ):
        raise RuntimeError(f"warm-up failed: {warm['errors'][:3]} {store.counts()}")
    time.sleep(0.5)
    baseline, since = store.finished(), time.time()
    pids = {f"server{i + 1}": [s.pid] for i, s in enumerate(running)}
    workers = [pid for server in running for pid in descendants(server.pid)]
    with cpu_meter(**pids, workers=workers, postgres=postgres_pids(cluster)) as cpu:
        client = submit(ports, args.jobs, rundir, args, args.limit)
        target = baseline + len(client["sent"])
        seen = wait_for(lambda: store.finished() >= target, args.limit, alive)
    counts, times = store.counts(), store.times(since)
    finished = {job: t[2] for job, t in times.items() if job in client["sent"]}
    submit_end = max(client["accepted"].values(), default=math.nan)
    result = with_client(figures(NAMES[part], client["sent"], finished, submit_end), client, cpu)
    result.part = part
    result.extra |= {"store_counts": counts, "completion_seen": seen is not None}
    result.extra["servers"] = [
        {"pid": s.pid, "cpu": args.server_cpus[i]} for i, s in enumerate(running)
    ]
    return result


# -- (list): GET /v1/jobs over a million jobs --------------------------------------------


def run_list(args: argparse.Namespace, rundir: Path, cluster: PostgresCluster) -> dict[str, Any]:
    listing = prepare(cluster, args.rows)
    print(f"  {args.rows:,} jobs inserted and analysed in {listing.fill_s:.1f} s")
    env = {
        "LENSFORGE_DATABASE_URL": listing.url,
        "LENSFORGE_EXECUTOR": "local",
        "LENSFORGE_WORKERS": "1",
        "LENSFORGE_DATA_DIR": str(rundir / "data"),
        "LENSFORGE_LOG_LEVEL": "warning",
        "LENSFORGE_RATE_LIMIT_PER_S": "0",
    }
    with servers(1, rundir, env, args.server_cpus) as (server,):
        pages = time_pages(listing, server.port, server.pid, args.depth, args.requests)
    return {"rows": args.rows, "fill_s": listing.fill_s, "pages": pages}


# -- report ------------------------------------------------------------------------------


def print_config(r: Result) -> None:
    print(f"  {r.jobs_s:.1f} jobs/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms")
    shares = {k: v for k, v in r.cpu_pct.items() if k != "window_s"}
    cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in shares.items())
    print(f"  CPU over {r.cpu_pct.get('window_s', math.nan):.2f} s (% of one core): {cpu}")
    if r.extra.get("client_errors"):
        print(f"  client errors: {r.extra['client_errors'][:3]}")
    if r.cpu_pct.get("other processes", 0) > BUSY_PCT:
        print(
            f"  WARNING: other processes used more than {BUSY_PCT:.0f}% of a core meanwhile:"
            " the machine was not quiet, so these figures are low."
        )


def report(
    results: dict[str, Result], listing: dict[str, Any] | None, args: argparse.Namespace
) -> list[str]:
    """Print the table and the targets; the targets missed."""
    missed: list[str] = []
    print(f"\n{args.jobs:,} no-op jobs per configuration, {args.workers} workers per server")
    print(f"{'':32}{'jobs/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs (b)':>8}")
    b = results.get("b")
    for part, r in results.items():
        versus = f"{r.jobs_s / b.jobs_s:.2f}x" if b and b.jobs_s else ""
        print(f"{NAMES[part]:32}{r.jobs_s:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{versus:>8}")
    if b and b.jobs_s:
        for part, target in (("c", TWO_SERVERS_TARGET), ("d", RAY_TARGET)):
            if part in results:
                ratio = results[part].jobs_s / b.jobs_s
                verdict = "met" if ratio >= target else "NOT met"
                print(f"Target {NAMES[part][:3]}/(b) >= {target:g}: {verdict} ({ratio:.2f})")
                if ratio < target:
                    missed.append(f"{part}/b")
    if listing is not None:
        print(f"\nGET /v1/jobs?limit={PAGE} over {listing['rows']:,} jobs in PostgreSQL")
        for name, page in listing["pages"].items():
            print(
                f"  {name:28}p50 {page['p50_ms']:6.2f} ms  p95 {page['p95_ms']:6.2f} ms"
                f"  server CPU {page['server_cpu_ms']:5.2f} ms"
            )
        worst = max(page["p95_ms"] for page in listing["pages"].values())
        verdict = "met" if worst < LIST_P95_TARGET_MS else "NOT met"
        print(f"Target listing p95 < {LIST_P95_TARGET_MS:g} ms at any depth: {verdict}")
        if worst >= LIST_P95_TARGET_MS:
            missed.append("list")
            for name, page in listing["pages"].items():
                print(f"\n{name}:\n{page['plan']}")
    return missed


def parse_only(value: str) -> list[str]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"choose from {','.join(PARTS)}")
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per configuration (5000)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs to list (1000000)")
    parser.add_argument(
        "--only", type=parse_only, default=list(PARTS), help="comma-separated: a,b,c,d,list"
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--workers", type=int, default=2, help="workers per server (2)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up jobs (100)")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per phase (300)")
    parser.add_argument("--requests", type=int, default=200, help="GETs per page (200)")
    parser.add_argument("--depth", type=float, default=0.9, help="the deep page (0.9)")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing")
    args = parser.parse_args()
    if not 1 <= args.jobs <= 100_000 or not PAGE * 2 <= args.rows <= 10_000_000:
        parser.error(f"--jobs must be 1..100000 and --rows {PAGE * 2}..10000000")
    if not 0 < args.depth < 1 or not 1 <= args.requests <= 10_000:
        parser.error("--depth must be between 0 and 1, --requests 1..10000")

    exit_on_sigterm()
    info = machine()
    print(describe(info))
    first, last = pick_cpus(args.no_pin)
    args.client_cpu = last
    args.server_cpus = [first, last]  # server 1 on the first CPU, server 2 on the last
    cores = len(os.sched_getaffinity(0))
    print(
        f"pinning: server 1 (and its workers) on CPU {first}, server 2 on CPU {last}, "
        f"clients on CPU {last}; this machine has {cores} usable cores"
        + (", so in (c) server 2 shares its core with the client" if cores <= 2 else "")
        if first is not None
        else "pinning: none"
    )
    started = time.monotonic()
    results: dict[str, Result] = {}
    listing: dict[str, Any] | None = None
    failed: dict[str, str] = {}
    needs_pg = any(part != "a" for part in args.only)
    with (
        tempfile.TemporaryDirectory(prefix="lensforge-scale-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        try:
            cluster = (
                stack.enter_context(throwaway_cluster(settings=PG_SETTINGS)) if needs_pg else None
            )
            for part in args.only:
                rundir = Path(tmp) / part
                rundir.mkdir()
                print(f"\n{NAMES.get(part, '(list) GET /v1/jobs')}")
                try:
                    if part == "list":
                        assert cluster is not None
                        listing = run_list(args, rundir, cluster)
                    else:
                        results[part] = run_config(part, args, rundir, cluster)
                        print_config(results[part])
                except Exception as exc:  # report it, go on with the other parts
                    failed[part] = str(exc)
                    print(f"  {part} FAILED: {exc}")
        finally:
            stop_all()
    missed = report(results, listing, args)
    print(f"\nbench took {time.monotonic() - started:.1f} s")
    if args.json is not None:
        payload: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
        payload |= {"failed": failed, "missed": missed, "listing": listing}
        payload["results"] = {part: asdict(r) for part, r in results.items()}
        write_json(args.json, payload, info)
    complete = not failed and all(r.jobs == args.jobs for r in results.values())
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
