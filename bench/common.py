"""What every bench script shares: ports, child processes and their readiness, /proc readings,
percentiles, CPU pinning, a raw HTTP/1.1 client, JSON output and a description of the machine.

Every child process is started in its own process group, gets SIGTERM if the benchmark dies
(``PR_SET_PDEATHSIG``, even when it is SIGKILLed) and is stopped at exit; servers listen on
127.0.0.1 only. Nothing here measures anything by itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import datetime as dt
import http.client
import importlib.metadata
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
READY_TIMEOUT_S = 60.0
PACKAGES = (
    "lensforge",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "celery",
    "kombu",
    "redis",
)
T = TypeVar("T")

# -- ports -------------------------------------------------------------------------------


def free_port() -> int:
    """A port free on 127.0.0.1 now (a short race with other programs; fine on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_socket() -> socket.socket:
    """A socket listening on 127.0.0.1, port 0, inheritable: bound here and handed to a
    server process, so there is no race for the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


# -- CPU pinning -------------------------------------------------------------------------


def pick_cpus(no_pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, client CPU): the first and last CPU this process may run on, or
    (None, None) when pinning is off, impossible (one CPU) or ``taskset`` is missing."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2 or shutil.which("taskset") is None:
        print("note: not pinning; the servers and the load generators share the cores")
        return None, None
    return cpus[0], cpus[-1]


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """``argv`` run under ``taskset -c CPU`` (as is when ``cpu`` is None)."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


# -- child processes ---------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def die_with_parent() -> None:
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
    cpu: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child (pinned to ``cpu`` when given) in its own process group, so that its
    own children are stopped with it; its output goes to ``log``."""
    if not _children:
        atexit.register(stop_all)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(argv, cpu),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            pass_fds=pass_fds,
            start_new_session=True,
            preexec_fn=die_with_parent,
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
    if proc in _children:
        with contextlib.suppress(ProcessLookupError):  # stragglers of the group
            os.killpg(proc.pid, signal.SIGKILL)
        _children.remove(proc)  # never signal that group id again: it may be reused


def stop_all() -> None:
    """Stop every child still running, the newest first."""
    for proc in reversed(_children):
        stop(proc)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so every ``finally`` and atexit handler still runs."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def log_tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_for(
    done: Callable[[], bool],
    limit_s: float,
    alive: Callable[[], None] | None = None,
    interval_s: float = 0.05,
) -> float | None:
    """Poll ``done`` every ``interval_s``; the time (``time.time()``) it became true, or
    None past ``limit_s``. ``alive`` raises when what is waited on has died."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        if done():
            return time.time()
        time.sleep(interval_s)
    return None


# -- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    """One server process on a loopback port."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> None:
        """Raise when the server has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.proc.returncode}:\n{log_tail(self.log)}"
            )

    def wait_ready(self, path: str = "/readyz", limit_s: float = READY_TIMEOUT_S) -> bytes:
        """Poll ``GET path`` until it answers 200; its body."""
        body: list[bytes] = []

        def ready() -> bool:
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, payload = http_get(self.port, path, timeout=2.0)
                body.append(payload)
                return status == 200
            return False

        if wait_for(ready, limit_s, self.alive) is None:
            raise RuntimeError(f"{self.name} not ready after {limit_s:g} s:\n{log_tail(self.log)}")
        return body[-1]

    def stop(self) -> None:
        stop(self.proc)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Stop the server when the block ends."""
    try:
        yield server
    finally:
        server.stop()


def start_bench_server(
    app: str,
    workdir: Path,
    *,
    cpu: int | None = None,
    db_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """``bench/serve.py APP`` (``floor`` or ``lensforge``, the app with the no-op ``bench``
    plugin) on a socket bound here and handed down: no port race.

    It runs under ``python -P``: bench/ is not put on sys.path, so no script there can shadow
    an installed package. The no-op plugin is reached through a private directory on
    PYTHONPATH instead, which LensForge's worker processes inherit too."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    private = workdir / "pythonpath"
    private.mkdir(exist_ok=True)
    link = private / "noop_plugin.py"
    if not link.exists():
        link.symlink_to(BENCH_DIR / "noop_plugin.py")
    base = {**os.environ, **(env or {})}
    pythonpath = [str(private), *filter(None, [base.get("PYTHONPATH")])]
    argv = [sys.executable, "-P", str(BENCH_DIR / "serve.py"), app, "--fd", str(sock.fileno())]
    if db_dir is not None:
        argv += ["--db-dir", str(db_dir)]
    log = workdir / f"{app}.log"
    child_env = {**base, "PYTHONPATH": os.pathsep.join(pythonpath)}
    proc = spawn(argv, log, env=child_env, pass_fds=(sock.fileno(),), cpu=cpu)
    sock.close()
    return Server(app, proc, port, log)


def start_lensforge_serve(
    workdir: Path, *, cpu: int | None = None, env: dict[str, str] | None = None
) -> Server:
    """The real ``lensforge serve`` (built-in plugins only) on a free loopback port, its store
    and blobs in ``workdir``; other settings from LENSFORGE_* and ``env``."""
    port = free_port()  # the CLI binds its own port: a short race, fine on loopback
    workdir.mkdir(parents=True, exist_ok=True)
    child_env = {
        **os.environ,
        "LENSFORGE_HOST": "127.0.0.1",
        "LENSFORGE_PORT": str(port),
        "LENSFORGE_DATABASE_URL": f"sqlite:///{workdir / 'lensforge.db'}",
        "LENSFORGE_DATA_DIR": str(workdir / "data"),
        "LENSFORGE_LOG_LEVEL": "warning",
        **(env or {}),
    }
    script = Path(sys.executable).with_name("lensforge")
    if script.exists():
        argv = [str(script), "serve"]
    else:
        argv = [sys.executable, "-c", "from lensforge.cli import main; main()", "serve"]
    proc = spawn(argv, workdir / "serve.log", env=child_env, cpu=cpu)
    return Server("lensforge serve", proc, port, workdir / "serve.log")


def start_settings_server(
    workdir: Path, name: str, *, cpu: int | None = None, env: dict[str, str] | None = None
) -> Server:
    """``bench/scale_serve.py``: the app of ``start_bench_server("lensforge", ...)`` (the
    no-op ``bench`` plugin, the same uvicorn options) with every setting from LENSFORGE_*
    in ``env`` (store URL, executor, workers), on a socket bound here and handed down."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    private = workdir / "pythonpath"
    private.mkdir(parents=True, exist_ok=True)
    for module in ("noop_plugin.py", "serve.py"):
        if not (private / module).exists():
            (private / module).symlink_to(BENCH_DIR / module)
    base = {**os.environ, **(env or {})}
    pythonpath = [str(private), *filter(None, [base.get("PYTHONPATH")])]
    argv = [sys.executable, "-P", str(BENCH_DIR / "scale_serve.py"), "--fd", str(sock.fileno())]
    log = workdir / f"{name}.log"
    child_env = {**base, "PYTHONPATH": os.pathsep.join(pythonpath)}
    proc = spawn(argv, log, env=child_env, pass_fds=(sock.fileno(),), cpu=cpu)
    sock.close()
    return Server(name, proc, port, log)


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- a raw HTTP/1.1 client ---------------------------------------------------------------


class HttpConnection:
    """HTTP/1.1 keep-alive on raw asyncio streams: far cheaper per request than httpx, so
    that a load generator on one core measures the server, not itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"127.0.0.1:{port}")

    def build(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """The bytes of one request (build once, send many times with :meth:`send`)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + (body or b"")

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Write a request built by :meth:`build`; the answer's status and body."""
        self.writer.write(request)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return int(raw[9:12]), await self.reader.readexactly(int(value))
        raise RuntimeError(f"a response without Content-Length: {raw[:200]!r}")

    async def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        return await self.send(self.build(method, path, body))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop (asyncio's own loop when uvloop is missing)."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


# -- /proc readings ----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (field 3 of the man page is [0])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads, not its children); 0 when
    it is gone."""
    with contextlib.suppress(OSError, IndexError):
        fields = proc_stat(pid)
        return (int(fields[11]) + int(fields[12])) / _TICK
    return 0.0


def cpu_and_faults(pid: int) -> tuple[float, float, int]:
    """User CPU seconds, system CPU seconds and minor page faults of a process so far."""
    fields = proc_stat(pid)
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK, int(fields[7])


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and every live process below it (its workers)."""
    return sum(cpu_s(each) for each in (pid, *descendants(pid)))


def children_cpu_s() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float:
    """CPU seconds every process on the machine spent busy, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK  # all but idle and iowait


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (LensForge's or Celery's worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int(proc_stat(entry.name)[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) in MiB; zeros when it is gone."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024  # kB
    return values


def rss_mb(pid: int) -> float:
    """VmRSS of one process in MiB (0 when it is gone)."""
    return memory_mb(pid)["VmRSS"]


def tree_rss_mb(pid: int) -> float:
    """VmRSS of the processes below ``pid``, in MiB (shared pages counted in each)."""
    return sum(rss_mb(child) for child in descendants(pid))


class CpuMeter:
    """CPU seconds each party used over a window (a ``with`` block), each read by its own
    function (``partial(tree_cpu_s, pid)``, ``children_cpu_s``, ``time.process_time``), and
    what every other process on the machine used meanwhile: the noise in the figures."""

    def __init__(self, parties: dict[str, Callable[[], float]]) -> None:
        self.parties = parties
        self.used: dict[str, float] = {}
        self.wall_s = self.other_s = math.nan

    def _read(self) -> dict[str, float]:
        return {name: read() for name, read in self.parties.items()}

    def __enter__(self) -> CpuMeter:
        self._start, self._busy0, self._wall0 = self._read(), machine_busy_s(), time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        end = self._read()
        self.wall_s = time.monotonic() - self._wall0
        self.used = {name: end[name] - self._start[name] for name in end}
        self.other_s = max(0.0, machine_busy_s() - self._busy0 - sum(self.used.values()))

    def percent(self) -> dict[str, float]:
        """Each party's CPU and the other processes' as % of one core over the window."""
        shares = {**self.used, "other processes": self.other_s}
        pct = {name: round(100 * seconds / self.wall_s, 1) for name, seconds in shares.items()}
        return {**pct, "window_s": round(self.wall_s, 3)}


# -- figures -----------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN for an empty one)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def median(values: Iterable[float]) -> float:
    """The median, NaNs left out (NaN when nothing is left)."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- the machine and JSON output ---------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(REPO_DIR)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{head}{' (modified)' if dirty else ''}" if head else "unknown"
    return "unknown"


def machine() -> dict[str, Any]:
    """Where a figure comes from: date, commit, CPU, cores, memory, kernel, Python, SQLite and
    the versions of the packages on the measured paths (absent ones left out)."""
    versions: dict[str, str] = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
    }


def describe(info: dict[str, Any]) -> str:
    """``machine()`` in two lines, for the head of a report."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    return (
        f"{info['date']}, commit {info['commit']}; {info['cpu']}, {info['cores']} cores "
        f"({info['cores_usable']} usable), {info['memory_gib']} GiB, Linux {info['kernel']}, "
        f"Python {info['python']}, SQLite {info['sqlite']}\n{packages}"
    )


def write_json(path: Path, payload: dict[str, Any], info: dict[str, Any]) -> None:
    """Write ``payload`` with the machine it was measured on, as indented JSON."""
    path.write_text(json.dumps({"machine": info, **payload}, indent=2, default=str))
    print(f"figures written to {path}")
