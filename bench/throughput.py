"""LensForge throughput benchmark: durable no-op jobs per second, submit to SUCCESS.

    .venv/bin/python bench/throughput.py                  # ~40 s on 2 cores
    .venv/bin/python bench/throughput.py --rounds 3       # alternate, report medians (noisy box)
    .venv/bin/python bench/throughput.py --only lensforge --py-spy /tmp/tp.speedscope
    .venv/bin/python bench/throughput.py --jobs 1000 --no-celery --json /tmp/tp.json

Measures on this machine, in one run, the same N no-op calls (5,000 by default):

(a) the floor: ``multiprocessing.Pool(2)`` running a no-op function, every call submitted at
    once with ``apply_async``: two worker processes with nothing durable around them;
(b) LensForge: a real server (``python bench/throughput.py --serve-fd FD``: ``create_app``
    with the no-op plugin ``tbench`` of ``throughput_plugin.py``, settings from LENSFORGE_*,
    uvloop + httptools, access log off) on a loopback socket, with a temporary SQLite store
    and data dir and the ``local`` executor's 2 worker processes. After a warm-up, an asyncio
    client (raw keep-alive streams on uvloop, 16 connections, one request in flight on each)
    submits ``POST /v1/jobs``; every 50 ms the benchmark checks, and once every submission
    is answered counts in the store (SQLite, read-only), until all are SUCCESS. Throughput
    is N over first submit to last ``finished_at``; latency runs from each job's submit (the
    client's clock, just before the request is written) to its ``finished_at`` in the store;
(c) Celery + Redis: Debian ``redis-server`` on a loopback port (no persistence) and
    ``celery worker -c 2`` (prefork, default prefetch and early acks) of
    ``throughput_celery.py``, both started here; 16 threads call ``.delay()``; completion is
    polled in Redis every 50 ms; latency runs from submit to each result's ``date_done``.
    Skipped, saying so, when ``redis-server`` or the ``celery``/``redis`` packages are missing.

It also reads the resident memory (VmRSS) of the LensForge server process and, separately,
of its worker processes, idle (after the warm-up), under load (peak of samples every
100 ms) and after; and the CPU each party used over the run: server (split by thread),
workers, this process (the load generator: its client thread is shown too, so a saturated
client would show) and every other process on the machine. When those others take more
than a quarter of a core the run is flagged: the machine is shared and the figures are low;
``--rounds`` then alternates the parts and reports medians. Every phase is bounded in count
and time, and every process started here is stopped at exit (SIGTERM, then SIGKILL of its
process group; children also get SIGTERM if this process dies).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import datetime as dt
import http.client
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
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

BENCH_DIR = Path(__file__).resolve().parent
BODY = b'{"plugin":"tbench","tool":"noop","inputs":{}}'
REQUEST = (
    b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)

TARGET_JOBS_S = 600.0  # from the issue: durable jobs/s end to end, and ahead of Celery
READY_TIMEOUT_S = 60.0
POLL_S = 0.05
SAMPLE_S = 0.1
PARTS = ("floor", "lensforge", "celery")
BUSY_PCT = 25.0  # CPU (% of one core) other processes may use before a run counts as noisy

# -- child processes ---------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    argv: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so its own children are stopped with it)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            pass_fds=pass_fds,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the child (a graceful stop: it stops its own workers), SIGKILL it after
    ``grace_s``, then SIGKILL whatever is left of its process group; idempotent."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group (worker children)
        os.killpg(proc.pid, signal.SIGKILL)
    if proc in _children:
        _children.remove(proc)  # never signal that process group id again: it may be reused


def stop_all() -> None:
    for proc in reversed(_children):
        stop(proc)


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally, then atexit


def log_tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- /proc readings ----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
        return found
    for entry in Path("/proc").iterdir():  # kernels without /proc/PID/task/TID/children
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(_stat(entry.name)[1]) == pid:
                    found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    """VmRSS of one process in MiB (0 when it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads, not its children)."""
    with contextlib.suppress(OSError, IndexError):
        fields = _stat(pid)
        return (int(fields[11]) + int(fields[12])) / _TICK
    return 0.0


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``, by thread id."""
    found: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                found[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def machine_busy_s() -> float:
    """CPU seconds every process on the machine spent busy, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


@dataclass
class Memory:
    """Resident memory of a main process and, separately, of its worker processes (MiB)."""

    main_mb: float
    workers_mb: list[float]

    @property
    def workers_total_mb(self) -> float:
        return sum(self.workers_mb)

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


class CpuMeter:
    """CPU seconds used by named processes, by this process and by the whole machine."""

    def __init__(self, pids: dict[str, list[int]], threads_of: int | None = None) -> None:
        self.pids = pids
        self.threads_of = threads_of  # also split this process's CPU by thread
        self.start = self._read()
        self.threads_start = thread_cpu_s(threads_of) if threads_of else {}
        self.used: dict[str, float] = {}
        self.threads_used: dict[int, float] = {}

    def stop(self) -> None:
        """End the window: read each party's CPU while its processes still run."""
        end = self._read()
        self.used = {name: end[name] - self.start[name] for name in end}
        if self.threads_of:
            now = thread_cpu_s(self.threads_of)
            self.threads_used = {t: now[t] - self.threads_start.get(t, 0.0) for t in now}

    def thread_percent(self) -> dict[str, float]:
        """The main thread's CPU and the three busiest others', as % of one core."""
        wall = self.used["wall"]
        main = self.threads_used.get(self.threads_of or 0, 0.0)
        others = sorted((v for t, v in self.threads_used.items() if t != self.threads_of))
        shares = {
            "main thread": main,
            **{f"thread #{i + 1}": v for i, v in enumerate(others[::-1][:3])},
        }
        shares["the rest"] = sum(others[::-1][3:])
        return {name: round(100 * seconds / wall, 1) for name, seconds in shares.items()}

    def _read(self) -> dict[str, float]:
        values = {name: sum(cpu_s(p) for p in pids) for name, pids in self.pids.items()}
        values["bench process"] = time.process_time()
        values["machine"] = machine_busy_s()
        values["wall"] = time.monotonic()
        return values

    def percent(self) -> dict[str, float]:
        """Each party's CPU as % of one core over the window; 'other' is everything else."""
        used = dict(self.used)
        wall = used.pop("wall")
        machine = used.pop("machine")
        used["other processes"] = max(0.0, machine - sum(used.values()))
        used = {name: round(100 * seconds / wall, 1) for name, seconds in used.items()}
        return {**used, "window_s": round(wall, 3)}


# -- figures -----------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Result:
    name: str
    jobs: int  # completed successfully, the figures below are over these
    wall_s: float  # first submit to last finish
    jobs_s: float
    p50_ms: float
    p99_ms: float
    submit_s: float = math.nan  # first submit to last accepted
    ratio_to_floor: float | None = None
    # Completions per second while submissions were still arriving, and after the last one.
    drain_jobs_s: dict[str, float] = field(default_factory=dict)
    server_threads_cpu_pct: dict[str, float] = field(default_factory=dict)
    cpu_pct: dict[str, float] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    part: str = ""  # floor, lensforge or celery
    round: int = 1


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
    wall = end - start
    early = sum(1 for job in done if finished[job] <= submit_end)
    drain = {"while_submitting": round(early / max(submit_end - start, 1e-9), 1)}
    if end > submit_end:
        drain["after_submitting"] = round((len(done) - early) / (end - submit_end), 1)
    return Result(
        name=name,
        jobs=len(done),
        wall_s=round(wall, 3),
        jobs_s=round(len(done) / wall, 1),
        p50_ms=round(percentile(latencies, 50), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        submit_s=round(submit_end - start, 3),
        drain_jobs_s=drain,
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
        cpu = CpuMeter({"pool workers": [p.pid for p in pool._pool if p.pid]})
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
        cpu.stop()
        if all(each.ready() for each in pending):
            pool.close()
            pool.join()  # the result handler has run every callback
        else:
            pool.terminate()  # past the time limit: the figures cover what finished
    result = figures(f"floor: Pool({workers})", sent, finished, submit_end)
    result.cpu_pct = cpu.percent()
    return result


# -- (b) LensForge -----------------------------------------------------------------------


def serve(fd: int) -> None:
    """The server process: LensForge with the ``tbench`` plugin, settings from LENSFORGE_*."""
    import uvicorn
    from throughput_plugin import TBench  # bench/ is sys.path[0] when this runs as a script

    from lensforge.api import create_app
    from lensforge.settings import Settings

    settings = Settings()
    app = create_app(settings, extra_plugins=[TBench])
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"response without Content-Length: {head[:200]!r}")


@dataclass
class Submission:
    """What the client saw: job id -> submit time, job id -> accepted time, and failures."""

    sent: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    end: float = math.nan
    thread_cpu_s: float = 0.0


async def _submitter(port: int, todo: list[int], out: Submission) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        out.errors.append(f"connect: {exc!r}")
        return
    try:
        while todo:
            todo.pop()
            sent = time.time()
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head))
            accepted = time.time()
            if head[9:12] != b"202":
                out.errors.append(f"{head[9:12].decode()} {body[:200].decode(errors='replace')}")
                continue
            job_id = json.loads(body)["job_id"]
            out.sent[job_id] = sent
            out.accepted[job_id] = accepted
    except (OSError, asyncio.IncompleteReadError) as exc:
        out.errors.append(f"connection lost: {exc!r}")  # this submitter stops; others go on
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _submit_all(port: int, jobs: int, concurrency: int, limit_s: float) -> Submission:
    out = Submission()
    todo = list(range(jobs))
    try:
        async with asyncio.timeout(limit_s):
            await asyncio.gather(*(_submitter(port, todo, out) for _ in range(concurrency)))
    except TimeoutError:
        out.errors.append(f"submission ran past {limit_s:g} s")
    out.end = time.time()
    return out


def submit(port: int, jobs: int, concurrency: int, limit_s: float) -> Submission:
    """Submit ``jobs`` no-op jobs over ``concurrency`` keep-alive connections (uvloop)."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    cpu0 = time.thread_time()
    with asyncio.Runner(loop_factory=factory) as runner:
        out = runner.run(_submit_all(port, jobs, concurrency, limit_s))
    out.thread_cpu_s = time.thread_time() - cpu0
    return out


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


def wait_for(
    done: Callable[[], bool], limit_s: float, alive: Callable[[], None] | None = None
) -> float | None:
    """Poll ``done`` every 50 ms; the time it became true, or None past ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        if done():
            return time.time()
        time.sleep(POLL_S)
    return None


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None, duration_s: int) -> Iterator[None]:
    """Profile ``pid`` (the server, not its workers) with py-spy while the block runs."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if output is None:
        yield
        return
    if not Path(exe).exists():
        print("  py-spy not found (.venv/bin/pip install py-spy): not profiling")
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


def run_lensforge(args: argparse.Namespace, workdir: Path, profile: Path | None = None) -> Result:
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    db = workdir / "lensforge.db"
    env = {
        **os.environ,
        "LENSFORGE_HOST": "127.0.0.1",
        "LENSFORGE_PORT": str(port),
        "LENSFORGE_DATABASE_URL": f"sqlite:///{db}",
        "LENSFORGE_DATA_DIR": str(workdir / "lensforge-data"),
        "LENSFORGE_EXECUTOR": "local",
        "LENSFORGE_WORKERS": str(args.workers),
        "LENSFORGE_LOG_LEVEL": "warning",
    }
    log = workdir / "lensforge.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-fd", str(sock.fileno())]
    proc = spawn(argv, log, env=env, pass_fds=(sock.fileno(),))
    sock.close()

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log_tail(log)}")

    def ready() -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return http_get(port, "/readyz")[0] == 200
        return False

    if wait_for(ready, READY_TIMEOUT_S, alive) is None:
        raise RuntimeError(f"LensForge not ready after {READY_TIMEOUT_S:g} s:\n{log_tail(log)}")
    workers = children(proc.pid)
    print(f"  server pid {proc.pid} on 127.0.0.1:{port}, worker pids {workers}")
    store = Store(db)
    try:
        warm = submit(port, args.warmup, args.concurrency, args.limit)
        if (
            warm.errors
            or wait_for(lambda: store.finished() >= args.warmup, args.limit, alive) is None
            or store.counts().get("SUCCESS", 0) < args.warmup
        ):
            raise RuntimeError(f"warm-up failed: {warm.errors[:3]} {store.counts()}")
        time.sleep(1.0)
        idle = memory(proc.pid, workers)

        baseline = store.finished()
        since = time.time()
        sampler = Sampler(proc.pid, workers)
        cpu = CpuMeter({"server": [proc.pid], "workers": workers}, threads_of=proc.pid)
        client: list[Submission] = []
        thread = threading.Thread(
            target=lambda: client.append(submit(port, args.jobs, args.concurrency, args.limit)),
            name="client",
        )

        def drained() -> bool:
            if thread.is_alive():
                return False
            if not client:
                raise RuntimeError("the client failed; see the traceback above")
            return store.finished() - baseline >= len(client[0].sent)

        with py_spy(proc.pid, profile, args.py_spy_duration):
            sampler.start()
            thread.start()
            seen = wait_for(drained, args.limit, alive)
            thread.join(args.limit)
            cpu.stop()
            load = sampler.finish()
        counts = store.counts()
        times = store.times(since)
        time.sleep(1.0)
        after = memory(proc.pid, workers)
    finally:
        store.close()
        stop(proc)

    if not client:
        raise RuntimeError("the client did not finish")
    sub = client[0]
    result = figures(
        "LensForge POST /v1/jobs",
        sub.sent,
        {job: t[2] for job, t in times.items()},
        max(sub.accepted.values(), default=math.nan),
    )
    result.cpu_pct = cpu.percent()
    result.cpu_pct["client thread"] = round(100 * sub.thread_cpu_s / cpu.used["wall"], 1)
    result.server_threads_cpu_pct = cpu.thread_percent()
    result.memory = {
        "idle": asdict(idle),
        "load_peak": asdict(load),
        "after": asdict(after),
        "samples": len(sampler.samples),
    }
    in_store = sorted(1000 * (t[2] - t[0]) for job, t in times.items() if job in sub.sent)
    queued = sorted(1000 * (t[1] - t[0]) for job, t in times.items() if job in sub.sent)
    acks = sorted(1000 * (sub.accepted[job] - sub.sent[job]) for job in sub.accepted)
    # RUNNING time (claimed -> finished: IPC, the tool, the finishing write), split by
    # whether the job finished while submissions were still arriving or after.
    submit_end = max(sub.accepted.values(), default=math.nan)
    result_end = max((t[2] for job, t in times.items() if job in sub.sent), default=submit_end)
    running: dict[str, list[float]] = {"while_submitting": [], "after_submitting": []}
    first_sent = min(sub.sent.values(), default=submit_end)
    spans = {
        "while_submitting": submit_end - first_sent,
        "after_submitting": result_end - submit_end,
    }
    for job, (_, started, finished) in times.items():
        if job in sub.sent:
            phase = "while_submitting" if finished <= submit_end else "after_submitting"
            running[phase].append(1000 * (finished - started))
    result.extra = {
        "submitted": len(sub.sent),
        "client_errors": sub.errors[:10],
        "client_error_count": len(sub.errors),
        "store_counts": counts,
        "completion_seen_s": None if seen is None else round(seen - since, 3),
        "submit_jobs_s": round(len(sub.sent) / result.submit_s, 1) if result.submit_s else None,
        "ack_p50_ms": round(percentile(acks, 50), 2),
        "ack_p99_ms": round(percentile(acks, 99), 2),
        "created_to_finished_p50_ms": round(percentile(in_store, 50), 1),
        "created_to_finished_p99_ms": round(percentile(in_store, 99), 1),
        "queued_p50_ms": round(percentile(queued, 50), 1),
        "queued_p99_ms": round(percentile(queued, 99), 1),
        "running_p50_ms": {k: round(percentile(sorted(v), 50), 2) for k, v in running.items()},
        # How much of the time the worker slots held a job at all (the rest: waiting on the
        # dispatcher's claim): RUNNING time over workers x the phase's duration.
        "worker_slots_busy_pct": {
            phase: round(100 * sum(running[phase]) / 1000 / (args.workers * span), 1)
            for phase, span in spans.items()
            if span > 0
        },
    }
    return result


# -- (c) Celery + Redis ------------------------------------------------------------------


def _celery_available() -> str | None:
    """Why the Celery part cannot run, or None when it can."""
    if shutil.which("redis-server") is None:
        return "redis-server not found (apt-get install -y redis-server)"
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (.venv/bin/pip install celery redis)"
    return None


def _date_done(meta: bytes | None) -> tuple[str, float] | None:
    if meta is None:
        return None
    data = json.loads(meta)
    done = dt.datetime.fromisoformat(data["date_done"])
    if done.tzinfo is None:  # older Celery stores naive UTC
        done = done.replace(tzinfo=dt.UTC)
    return data["status"], done.timestamp()


def run_celery(args: argparse.Namespace, workdir: Path) -> Result:
    import redis

    redis_port = free_port()
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
    redis_argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    redis_log = workdir / "redis.log"
    redis_proc = spawn(redis_argv, redis_log)
    url = f"redis://127.0.0.1:{redis_port}/0"
    worker_proc: subprocess.Popen[bytes] | None = None
    client: Any = None
    try:
        rclient = redis.Redis(port=redis_port, socket_timeout=10)

        def redis_up() -> bool:
            with contextlib.suppress(redis.RedisError):
                return bool(rclient.ping())
            return False

        if wait_for(redis_up, READY_TIMEOUT_S) is None:
            raise RuntimeError(f"redis-server not ready:\n{log_tail(redis_log)}")

        from throughput_celery import make_app

        client = make_app(url)  # this run's Redis; the worker gets it via TBENCH_REDIS_URL
        noop = client.tasks["tbench.noop"]
        pythonpath = os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "TBENCH_REDIS_URL": url, "PYTHONPATH": pythonpath.rstrip(":")}
        worker_argv = [sys.executable, "-m", "celery", "-A", "throughput_celery", "worker"]
        worker_argv += ["-c", str(args.workers), "-P", "prefork", "--loglevel", "WARNING"]
        worker_argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        worker_argv += ["-n", f"tbench-{redis_port}@%h"]
        worker_log = workdir / "celery.log"
        worker_proc = spawn(worker_argv, worker_log, env=env, cwd=BENCH_DIR)
        proc = worker_proc

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"celery exited with {proc.returncode}:\n{log_tail(worker_log)}")

        first = noop.delay()  # queued until the worker is up: its result says it is ready
        if wait_for(first.ready, READY_TIMEOUT_S, alive) is None:
            raise RuntimeError(f"celery worker not ready:\n{log_tail(worker_log)}")
        warm = [noop.delay() for _ in range(args.warmup)]
        if wait_for(lambda: all(r.ready() for r in warm), args.limit, alive) is None:
            raise RuntimeError("celery warm-up did not finish")
        workers = children(proc.pid)
        print(f"  redis pid {redis_proc.pid} on port {redis_port}, celery pid {proc.pid}, ", end="")
        print(f"pool pids {workers}")
        time.sleep(1.0)
        idle = memory(proc.pid, workers)

        sent: dict[str, float] = {}
        ids: list[str] = []
        todo = list(range(args.jobs))
        submit_cpu: list[float] = []
        submit_ends: list[float] = []

        def submitter() -> None:
            cpu0 = time.thread_time()
            while True:
                try:
                    todo.pop()
                except IndexError:
                    break
                t = time.time()
                task_id = noop.delay().id
                sent[task_id] = t
                ids.append(task_id)
            submit_cpu.append(time.thread_time() - cpu0)
            submit_ends.append(time.time())

        def finished_count() -> int:
            keys = [f"celery-task-meta-{task_id}" for task_id in ids[:]]
            return sum(int(rclient.exists(*keys[i : i + 1000])) for i in range(0, len(keys), 1000))

        sampler = Sampler(proc.pid, workers)
        cpu = CpuMeter({"celery": [proc.pid], "workers": workers, "redis": [redis_proc.pid]})
        threads = [threading.Thread(target=submitter) for _ in range(args.concurrency)]
        sampler.start()
        for thread in threads:
            thread.start()
        seen = wait_for(
            lambda: not any(t.is_alive() for t in threads) and finished_count() >= len(ids),
            args.limit,
            alive,
        )
        for thread in threads:
            thread.join(args.limit)
        cpu.stop()
        load = sampler.finish()
        finished: dict[str, float] = {}
        statuses: dict[str, int] = {}
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            metas = rclient.mget([f"celery-task-meta-{task_id}" for task_id in chunk])
            for task_id, meta in zip(chunk, metas, strict=True):
                parsed = _date_done(meta)
                status = "MISSING" if parsed is None else parsed[0]
                statuses[status] = statuses.get(status, 0) + 1
                if parsed is not None and status == "SUCCESS":
                    finished[task_id] = parsed[1]
        redis_mb = rss_mb(redis_proc.pid)
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if worker_proc is not None:
            stop(worker_proc)
        stop(redis_proc)

    result = figures("Celery + Redis", sent, finished, max(submit_ends, default=math.nan))
    result.cpu_pct = cpu.percent()
    result.cpu_pct["client threads"] = round(100 * sum(submit_cpu) / cpu.used["wall"], 1)
    result.memory = {"idle": asdict(idle), "load_peak": asdict(load), "redis_mb": redis_mb}
    result.extra = {
        "submitted": len(sent),
        "statuses": statuses,
        "completion_seen": seen is not None,
        "submit_jobs_s": round(len(sent) / result.submit_s, 1) if result.submit_s else None,
    }
    return result


# -- report ------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarize(results: list[Result]) -> dict[str, dict[str, float]]:
    """Per part: the median over rounds of jobs/s, p50 and p99 (the value itself for one)."""
    summary: dict[str, dict[str, float]] = {}
    for part in PARTS:
        mine = [r for r in results if r.part == part]
        if mine:
            summary[part] = {
                "rounds": len(mine),
                "jobs_s": round(_median([r.jobs_s for r in mine]), 1),
                "p50_ms": round(_median([r.p50_ms for r in mine]), 1),
                "p99_ms": round(_median([r.p99_ms for r in mine]), 1),
            }
    floor = summary.get("floor", {}).get("jobs_s")
    for part, figures_ in summary.items():
        if floor and part != "floor":
            figures_["ratio_to_floor"] = round(figures_["jobs_s"] / floor, 4)
    for r in results:
        if floor and r.part != "floor":
            r.ratio_to_floor = round(r.jobs_s / floor, 4)
    return summary


def report(results: list[Result], skipped: str | None, args: argparse.Namespace) -> None:
    summary = summarize(results)
    print()
    print(
        f"{args.jobs:,} no-op jobs, {args.concurrency} concurrent submitters, "
        f"{args.workers} worker processes, {os.cpu_count()} CPUs"
    )
    for r in results:
        label = f"{r.name} (round {r.round})" if args.rounds > 1 else r.name
        shares = {k: v for k, v in r.cpu_pct.items() if k != "window_s"}
        cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in shares.items())
        drain = ", ".join(f"{k.replace('_', ' ')} {v:.0f}/s" for k, v in r.drain_jobs_s.items())
        print(f"\n{label}: {r.jobs_s:.1f} jobs/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms")
        print(
            f"  {r.wall_s:.2f} s first submit to last finish, submitting {r.submit_s:.2f} s; ",
            end="",
        )
        print(f"drained {drain}")
        print(f"  CPU over {r.cpu_pct.get('window_s', math.nan):.2f} s (% of one core): {cpu}")
        if r.server_threads_cpu_pct:
            threads = ", ".join(f"{k} {v:.0f}%" for k, v in r.server_threads_cpu_pct.items())
            print(f"  server by thread (#1 is the store thread under load): {threads}")
        if r.extra:
            print(f"  {json.dumps(r.extra)}")
        if r.part == "lensforge":
            for label, key in (("idle", "idle"), ("under load", "load_peak"), ("after", "after")):
                print(f"  RSS {label}: server {Memory(**r.memory[key]).text()}")
        elif r.part == "celery":
            for label, key in (("idle", "idle"), ("under load", "load_peak")):
                print(f"  RSS {label}: celery {Memory(**r.memory[key]).text()}")
            print(f"  RSS of redis-server after the run: {r.memory['redis_mb']:.0f} MiB")
        if r.part != "floor" and r.cpu_pct.get("other processes", 0) > BUSY_PCT:
            print(
                f"  WARNING: other processes used more than {BUSY_PCT:.0f}% of a core meanwhile:"
                " the machine was not quiet, so these figures are low."
            )

    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"\nSummary{rounds}:")
    print(f"{'':26}{'jobs/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'vs floor':>10}")
    names = {"floor": f"floor: Pool({args.workers})", "lensforge": "LensForge POST /v1/jobs"}
    names["celery"] = "Celery + Redis"
    for part, f in summary.items():
        ratio = f"{f['ratio_to_floor']:.4f}" if "ratio_to_floor" in f else ""
        print(
            f"{names[part]:26}{f['jobs_s']:>9.1f}{f['p50_ms']:>10.1f}{f['p99_ms']:>10.1f}", end=""
        )
        print(f"{ratio:>10}")
    if skipped:
        print(f"{names['celery']:26}skipped: {skipped}")
    lensforge, celery = summary.get("lensforge"), summary.get("celery")
    if lensforge is not None:
        verdict = "met" if lensforge["jobs_s"] >= TARGET_JOBS_S else "NOT met"
        print(f"\nTarget >= {TARGET_JOBS_S:.0f} durable jobs/s end to end: {verdict} ", end="")
        print(f"({lensforge['jobs_s']:.0f} jobs/s)")
        if celery is not None:
            ahead = "yes" if lensforge["jobs_s"] > celery["jobs_s"] else "NO"
            print(f"Ahead of Celery + Redis ({celery['jobs_s']:.0f} tasks/s): {ahead}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per system (5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="submitters (16)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up jobs (100)")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per phase (120)")
    parser.add_argument("--no-celery", action="store_true", help="skip Celery + Redis")
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="run only this part (repeatable)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every part this many times, alternating, "
        "and report medians: for a machine other work shares (1)",
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--py-spy", type=Path, help="profile the server to this speedscope file")
    parser.add_argument("--py-spy-duration", type=int, default=5, help="seconds (5)")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve_fd is not None:
        serve(args.serve_fd)
        return 0
    if not 1 <= args.jobs <= 100_000 or not 1 <= args.concurrency <= 256:
        parser.error("--jobs must be 1..100000 and --concurrency 1..256")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1..10")

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.monotonic()
    parts = args.only or list(PARTS)
    skipped: str | None = "--no-celery" if args.no_celery else None
    if "celery" in parts and skipped is None:
        skipped = _celery_available()
    if "celery" not in parts:
        skipped = skipped or "not asked for"
    results: list[Result] = []
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="lensforge-throughput-") as tmp:
        workdir = Path(tmp)
        try:
            for rnd, part in ((r, p) for r in range(1, args.rounds + 1) for p in parts):
                if args.rounds > 1 and part == parts[0]:
                    print(f"-- round {rnd} of {args.rounds}")
                if part == "floor":
                    pool = f"multiprocessing.Pool({args.workers})"
                    print(f"(a) floor: {args.jobs:,} no-op calls in {pool}")
                elif part == "lensforge":
                    print(f"(b) LensForge: {args.jobs:,} jobs via POST /v1/jobs, local executor")
                elif skipped is None:
                    print(f"(c) Celery + Redis: {args.jobs:,} tasks, worker -c {args.workers}")
                else:
                    print(f"(c) Celery + Redis skipped: {skipped}")
                    continue
                rundir = workdir / f"{part}-{rnd}"
                rundir.mkdir()
                try:
                    if part == "floor":
                        result = run_floor(args.jobs, args.workers, args.limit)
                    elif part == "lensforge":
                        profile = args.py_spy if rnd == 1 else None  # the first round only
                        result = run_lensforge(args, rundir, profile)
                    else:
                        result = run_celery(args, rundir)
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
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "skipped": skipped}
        payload["failed"] = failed
        payload["summary"] = summarize(results)
        payload["results"] = [asdict(r) for r in results]
        args.json.write_text(json.dumps(payload, indent=2))
    complete = not failed and all(r.jobs == args.jobs for r in results)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
