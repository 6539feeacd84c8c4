"""What the chaos tests break: a PostgreSQL cluster of their own (stopped, frozen with
SIGSTOP, restarted) and real LensForge servers in subprocesses, plus a load generator that
records every answer."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import PG_BIN, _as_postgres, _missing_postgres
from tests.support import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]


def postgres_missing() -> str | None:
    """Why no cluster can be started here, or None."""
    return _missing_postgres()


class Postgres:
    """A throwaway cluster that a test may stop, freeze and restart."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lensforge-chaos-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options]
        command += ["-l", str(self.root / "server.log"), "-w", "-t", "60", "start"]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_postgres(command), capture_output=True, timeout=60, check=False)

    def pids(self, *, postmaster_only: bool = False) -> list[int]:
        """The postmaster's pid, and (unless ``postmaster_only``) its children's."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        if postmaster_only:
            return [postmaster]
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def signal(self, sig: int, *, postmaster_only: bool = False) -> None:
        for pid in self.pids(postmaster_only=postmaster_only):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            self.signal(signal.SIGCONT)
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Server:
    """``python -m tests.launch`` on a free port with LENSFORGE_* settings."""

    def __init__(self, tmp_path: Path, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LENSFORGE_PORT": str(self.port),
            "LENSFORGE_DATABASE_URL": database_url,
            "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
            "LENSFORGE_EXECUTOR": "local",
            "LENSFORGE_WORKERS": "2",
            "LENSFORGE_POLL_INTERVAL_S": "0.05",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 40) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.launch"], cwd=ROOT, env=self.env
        )
        wait_until_serving(self.process, self.url, timeout_s=timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class Load:
    """Submits jobs from a thread until stopped, one per ``interval_s`` at most (a bounded
    rate the server's workers keep up with); records every status and every job id."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    interval_s: float = 0.05
    statuses: Counter[int] = field(default_factory=Counter)
    job_ids: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=20, headers=self.headers) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v1/jobs", json=self.body)
                except httpx.HTTPError:
                    self.statuses[0] += 1  # no answer (a killed server)
                    time.sleep(0.1)
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code in (200, 201, 202):
                    self.job_ids.append(response.json()["job_id"])
                time.sleep(self.interval_s)


def probe(url: str, path: str = "/healthz", timeout_s: float = 2.0) -> tuple[int, float]:
    """One GET: its status (0: no answer) and how long it took."""
    started = time.perf_counter()
    try:
        status = httpx.get(url + path, timeout=timeout_s).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - started
