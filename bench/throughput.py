"""Throughput benchmark: durable no-op jobs per second, submit to SUCCESS, beside
``multiprocessing.Pool(2)`` and Celery + Redis with early and with late acks.

    .venv/bin/python bench/throughput.py                  # about a minute on 2 cores
    .venv/bin/python bench/throughput.py --rounds 3       # alternate, report medians
    .venv/bin/python bench/throughput.py --only lensforge --py-spy /tmp/tp.speedscope
    .venv/bin/python bench/throughput.py --jobs 1000 --no-celery --json /tmp/tp.json

Measures on this machine, in one run, the same N no-op calls (5,000 by default) through:

(a) the floor: ``multiprocessing.Pool(2)``, every call submitted at once with
    ``apply_async`` from this process: two worker processes with nothing durable around them;
(b) LensForge: ``bench/serve.py lensforge`` (``create_app`` with the no-op ``bench`` plugin,
    uvloop + httptools, access log off, settings from LENSFORGE_*) with a temporary SQLite
    store and the ``local`` executor's 2 worker processes; jobs submitted with
    ``POST /v1/jobs``; completions read from the store (SQLite, read-only, every 50 ms);
(c) Celery + Redis, early acks (Celery's default): Debian ``redis-server`` on a loopback port
    (no persistence) as broker and result backend, ``celery worker -c 2`` (prefork, default
    prefetch) of ``throughput_celery.py``; completions read from the result keys in Redis;
(d) the same with ``task_acks_late``: a task is acknowledged after it ran, so a worker lost
    mid-task leaves it to be run again: what LensForge's durable jobs give.

Each system's client runs in a process of its own (``throughput_clients.py``), pinned to the
same core (the last one) for every system, and only submits; its CPU is printed beside the
figures so the comparison's fairness shows. The systems themselves are not pinned. Throughput
is N over first submit to last finish (the store's ``finished_at``, Celery's ``date_done``);
latency runs from each job's submit to its finish. It also reads the resident memory
(VmRSS) of the server or Celery's main process and its workers, idle and under load, and
the CPU each party used; when other processes take more than a quarter of a core the run is
flagged as noisy (``--rounds`` then alternates the parts and reports medians). Every phase is
bounded in count and time; every process started here is stopped at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from common import (  # bench/ is sys.path[0]
    BENCH_DIR,
    CpuMeter,
    Server,
    children_cpu_s,
    cpu_s,
    descendants,
    describe,
    exit_on_sigterm,
    free_port,
    log_tail,
    machine,
    median,
    percentile,
    pick_cpus,
    rss_mb,
    spawn,
    start_bench_server,
    stop,
    stop_all,
    wait_for,
    write_json,
)

TARGET_JOBS_S = 600.0  # from the issue: durable jobs/s end to end, and ahead of Celery
READY_TIMEOUT_S = 60.0
SAMPLE_S = 0.1
PARTS = ("floor", "lensforge", "celery", "celery-late")
BUSY_PCT = 25.0  # CPU (% of one core) other processes may use before a run counts as noisy

# -- readings ----------------------------------------------------------------------------


@dataclass
class Memory:
    """Resident memory of a main process and, separately, of its worker processes (MiB)."""

    main_mb: float
    workers_mb: list[float]

    def text(self) -> str:
        each = " + ".join(f"{mb:.0f}" for mb in self.workers_mb) or "none"
        return f"{self.main_mb:.0f} MiB, workers {each} MiB"


def memory(pid: int, worker_pids: list[int]) -> Memory:
    return Memory(round(rss_mb(pid), 1), [round(rss_mb(w), 1) for w in worker_pids])


class Sampler(threading.Thread):
    """Samples the VmRSS of a process and its workers every ``SAMPLE_S`` while running."""

    def __init__(self, pid: int, worker_pids: list[int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.worker_pids = pid, worker_pids
        self.samples: list[Memory] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(SAMPLE_S):
            self.samples.append(memory(self.pid, self.worker_pids))

    def finish(self) -> Memory:
        """Stop; the peak of the main process and of each worker over the samples."""
        self._halt.set()
        self.join()
        if not self.samples:
            return memory(self.pid, self.worker_pids)
        peaks = [max(s.workers_mb[i] for s in self.samples) for i in range(len(self.worker_pids))]
        return Memory(max(s.main_mb for s in self.samples), peaks)


def cpu_meter(**pids: list[int]) -> CpuMeter:
    """A CPU meter of the named processes, this process (the floor's client and the
    completion watcher) and the children reaped meanwhile (the client process)."""
    parties: dict[str, Callable[[], float]] = {
        name: partial(_cpu_of, each) for name, each in pids.items()
    }
    parties |= {"bench process": time.process_time, "client process": children_cpu_s}
    return CpuMeter(parties)


def _cpu_of(pids: list[int]) -> float:
    return sum(cpu_s(pid) for pid in pids)


# -- figures -----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    jobs: int  # completed successfully, the figures below are over these
    wall_s: float  # first submit to last finish
    jobs_s: float
    p50_ms: float
    p99_ms: float
    submit_s: float = math.nan  # first submit to last submitted
    client_cpu_s: float = math.nan  # the client's CPU while it submitted
    ratio_to_floor: float | None = None
    cpu_pct: dict[str, float] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    part: str = ""  # one of PARTS
    round: int = 1

    @property
    def client_us_per_job(self) -> float:
        return 1e6 * self.client_cpu_s / self.jobs if self.jobs else math.nan


def figures(
    name: str, sent: dict[str, float], finished: dict[str, float], submit_end: float
) -> Result:
    """Throughput and end-to-end latency of the jobs in ``sent`` (id -> submit time) that
    ``finished`` (id -> finish time) holds."""
    done = [job for job in sent if job in finished]
    if not done:
        return Result(name, 0, math.nan, 0.0, math.nan, math.nan)
    start = min(sent.values())
    end = max(finished[job] for job in done)
    latencies = sorted(1000 * (finished[job] - sent[job]) for job in done)
    return Result(
        name=name,
        jobs=len(done),
        wall_s=round(end - start, 3),
        jobs_s=round(len(done) / (end - start), 1),
        p50_ms=round(percentile(latencies, 50), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        submit_s=round(submit_end - start, 3),
    )


# -- (a) the floor: multiprocessing.Pool(2) ----------------------------------------------


def _noop(_: int) -> dict[str, bool]:
    return {"ok": True}


def _finished(finished: dict[str, float], key: str, _result: Any) -> None:
    finished[key] = time.time()  # in the pool's result-handler thread


def run_floor(jobs: int, workers: int, timeout_s: float) -> Result:
    context = multiprocessing.get_context("fork")  # no thread of ours is busy meanwhile
    sent: dict[str, float] = {}
    finished: dict[str, float] = {}
    with context.Pool(workers) as pool:
        pool.map(_noop, range(100), chunksize=1)  # warm-up
        with cpu_meter(pool_workers=[p.pid for p in pool._pool if p.pid]) as cpu:
            pending = []
            for i in range(jobs):
                key = str(i)
                sent[key] = time.time()
                callback = partial(_finished, finished, key)
                pending.append(pool.apply_async(_noop, (i,), callback=callback))
            submit_end = time.time()
            deadline = time.monotonic() + timeout_s
            for each in pending:
                each.wait(max(0.0, deadline - time.monotonic()))
        if all(each.ready() for each in pending):
            pool.close()
            pool.join()  # the result handler has run every callback
        else:
            pool.terminate()  # past the time limit: the figures cover what finished
    result = figures(f"floor: Pool({workers})", sent, finished, submit_end)
    result.cpu_pct = cpu.percent()
    return result


# -- the client processes ----------------------------------------------------------------


def start_client(
    system: str, jobs: int, rundir: Path, args: argparse.Namespace, *options: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """``throughput_clients.py SYSTEM`` on the client core; the process and its output file."""
    out = rundir / f"client-{system}-{jobs}-{time.monotonic_ns()}.json"
    argv = [sys.executable, str(BENCH_DIR / "throughput_clients.py"), system]
    argv += ["--jobs", str(jobs), "--concurrency", str(args.concurrency), "--out", str(out)]
    argv += ["--limit", str(args.limit), *options]
    return spawn(argv, out.with_suffix(".log"), cpu=args.client_cpu), out


def client_output(proc: subprocess.Popen[bytes], out: Path, limit_s: float) -> dict[str, Any]:
    """Wait for a client to finish (stopping it past ``limit_s``); what it wrote."""
    try:
        proc.wait(limit_s)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError(f"the client ran past {limit_s:g} s") from None
    stop(proc)
    if not out.exists():
        raise RuntimeError(f"the client wrote nothing:\n{log_tail(out.with_suffix('.log'))}")
    output: dict[str, Any] = json.loads(out.read_text())
    return output


def with_client(result: Result, client: dict[str, Any], cpu: CpuMeter) -> Result:
    result.client_cpu_s = round(client["cpu_s"], 3)
    result.cpu_pct = cpu.percent()
    result.extra["submitted"] = len(client["sent"])
    result.extra["client_errors"] = client["errors"][:10]
    if result.submit_s:
        result.extra["submit_jobs_s"] = round(len(client["sent"]) / result.submit_s, 1)
    return result


# -- (b) LensForge -----------------------------------------------------------------------


class Store:
    """The LensForge SQLite file, opened read-only beside the server."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        return {status: int(n) for status, n in rows}

    def finished(self) -> int:
        """Jobs in a terminal state (a FAILED job ends the wait too, and shows in the counts)."""
        query = "SELECT count(*) FROM jobs WHERE status IN ('SUCCESS', 'FAILED', 'CANCELLED')"
        return int(self.conn.execute(query).fetchone()[0])

    def times(self, since: float) -> dict[str, tuple[float, float, float]]:
        """id -> (created_at, started_at, finished_at) of the SUCCESS jobs created since."""
        rows = self.conn.execute(
            "SELECT id, created_at, started_at, finished_at FROM jobs "
            "WHERE status = 'SUCCESS' AND created_at >= ?",
            (since,),
        ).fetchall()
        return {job_id: (c, s, f) for job_id, c, s, f in rows}

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None, duration_s: int) -> Iterator[None]:
    """Profile ``pid`` (the server, not its workers) with py-spy while the block runs."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if output is not None and not Path(exe).exists():
        print("  py-spy not found (.venv/bin/pip install py-spy): not profiling")
        output = None
    if output is None:
        yield
        return
    argv = [exe, "record", "--pid", str(pid), "-d", str(duration_s), "-r", "200"]
    argv += ["--format", "speedscope", "-o", str(output), "--nonblocking"]
    proc = spawn(argv, output.with_suffix(".py-spy.log"))
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(duration_s + 15)
        stop(proc)
        print(f"  py-spy profile of the server: {output}")


def run_lensforge(args: argparse.Namespace, rundir: Path, profile: Path | None) -> Result:
    env = {"LENSFORGE_EXECUTOR": "local", "LENSFORGE_WORKERS": str(args.workers)}
    server: Server = start_bench_server("lensforge", rundir, db_dir=rundir, env=env)
    store: Store | None = None
    try:
        server.wait_ready()
        workers = descendants(server.pid)
        print(f"  server pid {server.pid} on 127.0.0.1:{server.port}, worker pids {workers}")
        store = Store(rundir / "lensforge.db")
        port = ["--port", str(server.port)]
        warm = client_output(*start_client("lensforge", args.warmup, rundir, args, *port), 60)
        if (
            warm["errors"]
            or wait_for(lambda: store.finished() >= args.warmup, args.limit, server.alive) is None
            or store.counts().get("SUCCESS", 0) < args.warmup
        ):
            raise RuntimeError(f"warm-up failed: {warm['errors'][:3]} {store.counts()}")
        time.sleep(1.0)
        idle = memory(server.pid, workers)

        baseline, since = store.finished(), time.time()
        sampler = Sampler(server.pid, workers)
        with (
            py_spy(server.pid, profile, args.py_spy_duration),
            cpu_meter(server=[server.pid], workers=workers) as cpu,
        ):
            sampler.start()
            proc, out = start_client("lensforge", args.jobs, rundir, args, *port)
            client = client_output(proc, out, args.limit)
            target = baseline + len(client["sent"])
            seen = wait_for(lambda: store.finished() >= target, args.limit, server.alive)
        load = sampler.finish()
        counts, times = store.counts(), store.times(since)
        time.sleep(1.0)
        after = memory(server.pid, workers)
    finally:
        if store is not None:
            store.close()
        server.stop()

    mine = {job: t for job, t in times.items() if job in client["sent"]}
    submit_end = max(client["accepted"].values(), default=math.nan)
    finished = {job: t[2] for job, t in mine.items()}
    result = with_client(figures("LensForge", client["sent"], finished, submit_end), client, cpu)
    result.memory = {"idle": asdict(idle), "load_peak": asdict(load), "after": asdict(after)}
    accepted = sorted(1000 * (client["accepted"][j] - client["sent"][j]) for j in client["sent"])
    queued = sorted(1000 * (t[1] - t[0]) for t in mine.values())
    result.extra |= {
        "store_counts": counts,
        "completion_seen": seen is not None,
        "post_p50_ms": round(percentile(accepted, 50), 2),
        "post_p99_ms": round(percentile(accepted, 99), 2),
        "queued_p50_ms": round(percentile(queued, 50), 1),
        "queued_p99_ms": round(percentile(queued, 99), 1),
    }
    return result


# -- (c, d) Celery + Redis ---------------------------------------------------------------


def celery_missing() -> str | None:
    """Why the Celery parts cannot run, or None when they can."""
    if shutil.which("redis-server") is None:
        return "redis-server not found (apt-get install -y redis-server, or make bench)"
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (.venv/bin/pip install -e '.[bench]')"
    return None


def _meta_key(task_id: str) -> str:
    return f"celery-task-meta-{task_id}"


def _all_stored(rclient: Any, ids: list[str]) -> bool:
    """Whether every task has its result in Redis. Tasks finish in about the order they
    were sent, so the last one is looked up first, and the rest only once it is there."""
    if not ids or not rclient.exists(_meta_key(ids[-1])):
        return not ids
    keys = [_meta_key(task_id) for task_id in ids]
    stored = sum(int(rclient.exists(*keys[i : i + 1000])) for i in range(0, len(keys), 1000))
    return stored >= len(ids)


def _finish_times(rclient: Any, ids: list[str]) -> tuple[dict[str, float], dict[str, int]]:
    """task id -> ``date_done`` of its SUCCESS result, and the count of results by status."""
    finished: dict[str, float] = {}
    statuses: dict[str, int] = {}
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        for task_id, meta in zip(chunk, rclient.mget([_meta_key(t) for t in chunk]), strict=True):
            data = json.loads(meta) if meta is not None else {"status": "MISSING"}
            statuses[data["status"]] = statuses.get(data["status"], 0) + 1
            if data["status"] == "SUCCESS":
                done = dt.datetime.fromisoformat(data["date_done"])
                finished[task_id] = done.replace(tzinfo=done.tzinfo or dt.UTC).timestamp()
    return finished, statuses


def run_celery(args: argparse.Namespace, rundir: Path, acks_late: bool) -> Result:
    import redis

    redis_port = free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
    redis_argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    redis_proc = spawn(redis_argv, rundir / "redis.log")
    worker_proc: subprocess.Popen[bytes] | None = None
    rclient = redis.Redis(port=redis_port, socket_timeout=10)
    try:

        def redis_up() -> bool:
            with contextlib.suppress(redis.RedisError):
                return bool(rclient.ping())
            return False

        if wait_for(redis_up, READY_TIMEOUT_S) is None:
            raise RuntimeError(f"redis-server not ready:\n{log_tail(rundir / 'redis.log')}")
        env = {"TBENCH_REDIS_URL": url, "TBENCH_ACKS_LATE": "1" if acks_late else "0"}
        worker_argv = [sys.executable, "-m", "celery", "-A", "throughput_celery", "worker"]
        worker_argv += ["-c", str(args.workers), "-P", "prefork", "--loglevel", "WARNING"]
        worker_argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        worker_argv += ["-n", f"tbench-{redis_port}@%h"]
        worker_log = rundir / "celery.log"
        worker_proc = spawn(worker_argv, worker_log, env={**os.environ, **env}, cwd=BENCH_DIR)
        proc = worker_proc

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"celery exited with {proc.returncode}:\n{log_tail(worker_log)}")

        options = ["--redis-url", url, "--api", args.celery_api]
        # The warm-up waits in the queue until the worker is up: its results say it is ready.
        warm = client_output(*start_client("celery", args.warmup, rundir, args, *options), 60)
        warm_ids = list(warm["sent"])
        if (
            warm["errors"]
            or wait_for(lambda: _all_stored(rclient, warm_ids), READY_TIMEOUT_S, alive) is None
        ):
            raise RuntimeError(
                f"celery warm-up failed: {warm['errors'][:3]}\n{log_tail(worker_log)}"
            )
        workers = descendants(proc.pid)
        print(f"  redis pid {redis_proc.pid} on port {redis_port}, celery pid {proc.pid}, ", end="")
        print(f"pool pids {workers}")
        time.sleep(1.0)
        idle = memory(proc.pid, workers)

        sampler = Sampler(proc.pid, workers)
        with cpu_meter(celery=[proc.pid], workers=workers, redis=[redis_proc.pid]) as cpu:
            sampler.start()
            client = client_output(
                *start_client("celery", args.jobs, rundir, args, *options), args.limit
            )
            ids = list(client["sent"])
            seen = wait_for(lambda: _all_stored(rclient, ids), args.limit, alive)
        load = sampler.finish()
        finished, statuses = _finish_times(rclient, ids)
        redis_mb = rss_mb(redis_proc.pid)
    finally:
        rclient.close()
        if worker_proc is not None:
            stop(worker_proc)
        stop(redis_proc)

    name = f"Celery, {'late' if acks_late else 'early'} acks"
    submit_end = max(client["sent"].values(), default=math.nan)
    result = with_client(figures(name, client["sent"], finished, submit_end), client, cpu)
    result.memory = {"idle": asdict(idle), "load_peak": asdict(load), "redis_mb": redis_mb}
    result.extra |= {"statuses": statuses, "completion_seen": seen is not None}
    return result


# -- report ------------------------------------------------------------------------------


def summarize(results: list[Result]) -> dict[str, dict[str, float]]:
    """Per part: the median over rounds of jobs/s, p50, p99 and the client's CPU per job."""
    summary: dict[str, dict[str, float]] = {}
    for part in PARTS:
        mine = [r for r in results if r.part == part]
        if mine:
            summary[part] = {
                "rounds": len(mine),
                "jobs_s": round(median(r.jobs_s for r in mine), 1),
                "p50_ms": round(median(r.p50_ms for r in mine), 1),
                "p99_ms": round(median(r.p99_ms for r in mine), 1),
                "client_us_per_job": round(median(r.client_us_per_job for r in mine), 1),
            }
    floor = summary.get("floor", {}).get("jobs_s")
    for part, each in summary.items():
        if floor and part != "floor":
            each["ratio_to_floor"] = round(each["jobs_s"] / floor, 4)
    for r in results:
        if floor and r.part != "floor":
            r.ratio_to_floor = round(r.jobs_s / floor, 4)
    return summary


def print_result(r: Result, label: str) -> None:
    print(f"\n{label}: {r.jobs_s:.1f} jobs/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms")
    print(f"  {r.wall_s:.2f} s first submit to last finish, submitting {r.submit_s:.2f} s")
    shares = {k: v for k, v in r.cpu_pct.items() if k != "window_s"}
    cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in shares.items())
    print(f"  CPU over {r.cpu_pct.get('window_s', math.nan):.2f} s (% of one core): {cpu}")
    if not math.isnan(r.client_cpu_s):
        print(
            f"  client CPU while submitting: {r.client_cpu_s:.3f} s, "
            f"{r.client_us_per_job:.0f} us per job"
        )
    if r.extra:
        print(f"  {json.dumps(r.extra)}")
    main = "server" if r.part == "lensforge" else "celery"
    for label_, key in (("idle", "idle"), ("under load", "load_peak"), ("after", "after")):
        if key in r.memory:
            print(f"  RSS {label_}: {main} {Memory(**r.memory[key]).text()}")
    if "redis_mb" in r.memory:
        print(f"  RSS of redis-server after the run: {r.memory['redis_mb']:.0f} MiB")
    if r.part != "floor" and r.cpu_pct.get("other processes", 0) > BUSY_PCT:
        print(
            f"  WARNING: other processes used more than {BUSY_PCT:.0f}% of a core meanwhile:"
            " the machine was not quiet, so these figures are low."
        )


def report(results: list[Result], skipped: str | None, args: argparse.Namespace) -> None:
    summary = summarize(results)
    names = {
        "floor": f"floor: Pool({args.workers})",
        "lensforge": "LensForge POST /v1/jobs",
        "celery": "Celery + Redis, early acks",
        "celery-late": "Celery + Redis, late acks",
    }
    print(
        f"\n{args.jobs:,} no-op jobs, {args.workers} worker processes, clients "
        + ("unpinned" if args.client_cpu is None else f"pinned to CPU {args.client_cpu}")
        + f" ({args.concurrency} in flight; Celery client: {args.celery_api})"
    )
    for r in results:
        print_result(r, f"{names[r.part]} (round {r.round})" if args.rounds > 1 else names[r.part])

    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"\nSummary{rounds}:")
    print(f"{'':28}{'jobs/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs floor':>10}{'client us/job':>15}")
    for part, f in summary.items():
        ratio = f"{f['ratio_to_floor']:.4f}" if "ratio_to_floor" in f else ""
        client = "" if math.isnan(f["client_us_per_job"]) else f"{f['client_us_per_job']:.0f}"
        print(
            f"{names[part]:28}{f['jobs_s']:>9.1f}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}"
            f"{ratio:>10}{client:>15}"
        )
    if skipped:
        print(f"{'Celery + Redis':28}skipped: {skipped}")
    lensforge = summary.get("lensforge")
    if lensforge is None:
        return
    verdict = "met" if lensforge["jobs_s"] >= TARGET_JOBS_S else "NOT met"
    print(f"\nTarget >= {TARGET_JOBS_S:.0f} durable jobs/s end to end: {verdict} ", end="")
    print(f"({lensforge['jobs_s']:.0f} jobs/s)")
    for part in ("celery", "celery-late"):
        if part in summary:
            celery = summary[part]
            ahead = "yes" if lensforge["jobs_s"] > celery["jobs_s"] else "NO"
            print(f"Ahead of {names[part]} ({celery['jobs_s']:.0f} tasks/s): {ahead}", end="")
            print(
                f"; client CPU per job {lensforge['client_us_per_job']:.0f} us (LensForge) "
                f"against {celery['client_us_per_job']:.0f} us (Celery)"
            )


def run_part(part: str, rnd: int, args: argparse.Namespace, rundir: Path) -> Result:
    if part == "floor":
        print(f"(a) floor: {args.jobs:,} no-op calls in multiprocessing.Pool({args.workers})")
        return run_floor(args.jobs, args.workers, args.limit)
    if part == "lensforge":
        print(f"(b) LensForge: {args.jobs:,} jobs via POST /v1/jobs, local executor")
        return run_lensforge(args, rundir, args.py_spy if rnd == 1 else None)
    late = part == "celery-late"
    step = "(d)" if late else "(c)"
    print(f"{step} Celery + Redis, {'late' if late else 'early'} acks: {args.jobs:,} tasks")
    return run_celery(args, rundir, acks_late=late)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per system (5000)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="client requests in flight (16)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up jobs (100)")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per phase (120)")
    parser.add_argument("--no-celery", action="store_true", help="skip Celery + Redis")
    parser.add_argument(
        "--celery-api",
        choices=["raw", "group"],
        default="raw",
        help="Celery's client: its own message pushed in pipelines (raw, the default) or "
        "group(...).apply_async() in a Producer.batch() (group); see throughput_clients.py",
    )
    parser.add_argument("--only", choices=PARTS, action="append", help="this part (repeatable)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every part this many times, alternating, "
        "and report medians: for a machine other work shares (1)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the clients to a core")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--py-spy", type=Path, help="profile the server to this speedscope file")
    parser.add_argument("--py-spy-duration", type=int, default=5, help="seconds (5)")
    args = parser.parse_args()
    if not 1 <= args.jobs <= 100_000 or not 1 <= args.concurrency <= 256:
        parser.error("--jobs must be 1..100000 and --concurrency 1..256")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1..10")

    exit_on_sigterm()
    info = machine()
    print(describe(info))
    args.client_cpu = pick_cpus(args.no_pin)[1]
    started = time.monotonic()
    parts = args.only or list(PARTS)
    skipped = "--no-celery" if args.no_celery else None
    if any(p.startswith("celery") for p in parts) and skipped is None:
        skipped = celery_missing()
    if skipped:
        parts = [p for p in parts if not p.startswith("celery")]
    results: list[Result] = []
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="lensforge-throughput-") as tmp:
        try:
            for rnd, part in ((r, p) for r in range(1, args.rounds + 1) for p in parts):
                if args.rounds > 1 and part == parts[0]:
                    print(f"-- round {rnd} of {args.rounds}")
                rundir = Path(tmp) / f"{part}-{rnd}"
                rundir.mkdir()
                try:
                    result = run_part(part, rnd, args, rundir)
                except Exception as exc:  # report it, go on with the other parts
                    failed[f"{part} round {rnd}"] = str(exc)
                    print(f"  {part} FAILED: {exc}")
                    continue
                result.part, result.round = part, rnd
                results.append(result)
        finally:
            stop_all()
    report(results, skipped, args)
    print(f"\nbench took {time.monotonic() - started:.1f} s")
    if args.json is not None:
        payload: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
        payload |= {"skipped": skipped, "failed": failed, "summary": summarize(results)}
        payload["results"] = [asdict(r) for r in results]
        write_json(args.json, payload, info)
    complete = not failed and all(r.jobs == args.jobs for r in results)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
