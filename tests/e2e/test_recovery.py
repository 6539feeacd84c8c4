"""Crash recovery and graceful shutdown of a real server process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lensforge.store import JobStore, Status
from tests.support import free_port, wait_until_serving

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{tmp_path / 'lensforge.db'}"
        self.env = {
            **os.environ,
            "LENSFORGE_PORT": str(self.port),
            "LENSFORGE_DATABASE_URL": self.database_url,
            "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
            "LENSFORGE_EXECUTOR": "local",
            "LENSFORGE_WORKERS": "2",
            "LENSFORGE_POLL_INTERVAL_S": "0.05",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.launch"], cwd=ROOT, env=self.env
        )
        wait_until_serving(self.process, self.url)

    def children(self) -> list[int]:
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def submit_many(url: str, body: dict[str, Any], count: int) -> list[str]:
    with httpx.Client(base_url=url, timeout=10) as client:
        return [client.post("/v1/jobs", json=body).json()["job_id"] for _ in range(count)]


def wait_all_terminal(store: JobStore, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = asyncio.run(store.counts())
        if counts["PENDING"] == 0 and counts["RUNNING"] == 0:
            return counts
        time.sleep(0.2)
    raise AssertionError(f"jobs still unfinished: {asyncio.run(store.counts())}")


def gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_kill_9_server_with_500_jobs_then_restart_loses_nothing(
    tmp_path: Path, servers: list[Server]
) -> None:
    first = Server(tmp_path, LENSFORGE_LEASE_S="60")
    servers.append(first)
    first.start()
    marker = tmp_path / "completions"
    body = {"plugin": "chaos", "tool": "record", "inputs": {"path": str(marker), "pause": 0.05}}
    ids = submit_many(first.url, body, 500)
    workers = first.children()
    store = JobStore(first.database_url)
    try:
        deadline = time.monotonic() + 10
        while asyncio.run(store.counts())["RUNNING"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = asyncio.run(store.counts())
        assert before["RUNNING"] > 0 and before["PENDING"] > 0
        first.stop(signal.SIGKILL)
        assert all(gone(pid) for pid in workers), "workers must not outlive their server"

        second = Server(tmp_path, LENSFORGE_LEASE_S="60")
        servers.append(second)
        second.start()  # recovers the dead server's RUNNING jobs at once, not after 60 s
        counts = wait_all_terminal(store, timeout=90)
        assert counts["SUCCESS"] == 500
        jobs = [asyncio.run(store.get(job_id)) for job_id in ids]
        assert all(job is not None and job.status is Status.SUCCESS for job in jobs)
        recovered = [
            job
            for job in jobs
            if job is not None
            and any(e.reason == "lease expired" for e in asyncio.run(store.events(job.id)))
        ]
        assert len(recovered) == before["RUNNING"]
    finally:
        store.close()


def test_sigterm_finishes_running_jobs_within_grace_and_hands_back_the_rest(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(tmp_path, LENSFORGE_SHUTDOWN_GRACE_S="1", LENSFORGE_WORKERS="1")
    servers.append(server)
    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        long = client.post(
            "/v1/jobs", json={"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 30}}
        ).json()["job_id"]
        queued = client.post("/v1/jobs", json={"plugin": "testing", "tool": "noop"}).json()[
            "job_id"
        ]
        deadline = time.monotonic() + 10
        while client.get(f"/v1/jobs/{long}").json()["status"] != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    started = time.monotonic()
    # uvicorn shuts down gracefully, then re-raises the signal: exit status -15
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 10
    store = JobStore(server.database_url)
    try:
        job = asyncio.run(store.get(long))
        assert job is not None
        assert job.status is Status.PENDING
        assert job.attempts == 0  # no attempt charged for a shutdown
        assert asyncio.run(store.events(long))[-1].reason == "server shutdown"
        pending = asyncio.run(store.get(queued))
        assert pending is not None and pending.status is Status.PENDING
    finally:
        store.close()
