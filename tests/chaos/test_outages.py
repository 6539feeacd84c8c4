"""The chaos suite (issue 15): faults under load, with bounded counts and time.

Each scenario runs a real server (or two on one store) under a steady stream of submitted
jobs, breaks something mid-load, repairs it, then asserts:

- **0 lost**: every job the API accepted exists and finished SUCCESS;
- **0 double completions**: no job has two transitions into SUCCESS;
- **no 500s**: every refusal during the outage was a 503 (or 507), never ``internal_error``;
- **liveness**: ``/healthz`` of a server that was not killed answered 200 throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lensforge.store import JobStore
from tests.chaos.support import Load, Postgres, Server, probe
from tests.support import b64

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(300)]
SHORT = {"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 0.05}}
FAST_RECOVERY = {"LENSFORGE_LEASE_S": "3"}


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def _watch_liveness(server: Server, seconds: float) -> None:
    """Probe ``/healthz`` every 0.2 s for ``seconds``; each must be 200 within 2 s."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, took = probe(server.url)
        assert status == 200, f"/healthz answered {status} after {took:.1f} s mid-outage"
        time.sleep(0.2)


def _assert_none_lost(database_url: str, job_ids: list[str], timeout_s: float = 120) -> None:
    """Every accepted job finishes SUCCESS exactly once."""
    assert job_ids, "the load got no job accepted"
    store = JobStore(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = asyncio.run(store.get_many(job_ids))
            done = [job for job in jobs if job.status.terminal]
            if len(done) == len(job_ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(jobs) == len(set(job_ids)), "accepted jobs are missing from the store"
        unfinished = [(job.id, job.status.value) for job in jobs if not job.status.terminal]
        assert not unfinished, unfinished[:5]
        failed = [(job.id, job.error) for job in jobs if job.status.value != "SUCCESS"]
        assert not failed, failed[:3]
        for job_id in job_ids[:: max(1, len(job_ids) // 50)]:  # a sample of the event logs
            events = asyncio.run(store.events(job_id))
            assert sum(event.to_status == "SUCCESS" for event in events) == 1, events
    finally:
        store.close()


def _under_load(
    servers: list[Server], database_url: str, outage: Callable[[], None], load_on: Server
) -> Load:
    load = Load(load_on.url, SHORT)
    load.start()
    time.sleep(2)
    try:
        outage()
        time.sleep(2)
    finally:
        load.stop()
    assert load.statuses[500] == 0, load.statuses
    assert set(load.statuses) <= {0, 200, 201, 202, 503}, load.statuses
    _assert_none_lost(database_url, load.job_ids)
    return load


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_mid_load(
    backend: str, tmp_path: Path, servers: list[Server], request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        database_url = request.getfixturevalue("postgres").url
    else:
        database_url = f"sqlite:///{tmp_path / 'lensforge.db'}"
    victim = Server(tmp_path / "a", database_url, **FAST_RECOVERY)
    survivor = Server(tmp_path / "b", database_url, **FAST_RECOVERY)
    servers += [victim, survivor]
    victim.start()
    survivor.start()
    victim_load = Load(victim.url, SHORT)
    victim_load.start()

    def kill() -> None:
        time.sleep(1)
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(timeout=10)
        _watch_liveness(survivor, 3)

    try:
        _under_load(servers, database_url, kill, survivor)
    finally:
        victim_load.stop()
    assert victim_load.statuses[500] == 0, victim_load.statuses
    _assert_none_lost(database_url, victim_load.job_ids)  # the survivor recovers them


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_postgres_outage_mid_load(
    fault: str, tmp_path: Path, postgres: Postgres, servers: list[Server]
) -> None:
    server = Server(tmp_path, postgres.url)
    servers.append(server)
    server.start()

    def outage() -> None:
        if fault == "stopped":
            postgres.stop()
        else:
            postgres.signal(signal.SIGSTOP)
        try:
            _watch_liveness(server, 10)
        finally:
            if fault == "stopped":
                postgres.start()
            else:
                postgres.signal(signal.SIGCONT)

    load = _under_load(servers, postgres.url, outage, server)
    if fault == "stopped":
        assert load.statuses[503] > 0, load.statuses  # the outage was seen, and answered 503


def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace')}")


def _noise_png(side: int = 256) -> bytes:
    """A PNG of random pixels (~200 KB: noise does not compress), different every call."""
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_blob_disk_full_mid_load(tmp_path: Path, servers: list[Server]) -> None:
    import httpx

    blobs = tmp_path / "data" / "blobs"
    _mount_tmpfs(blobs, "2m")
    try:
        database_url = f"sqlite:///{tmp_path / 'lensforge.db'}"
        server = Server(tmp_path, database_url)
        servers.append(server)
        server.start()
        load = Load(server.url, SHORT)
        load.start()
        statuses: list[int] = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(40):  # distinct 200 KB images: the 2 MB disk fills up
                image = b64(_noise_png())
                response = client.post(
                    "/v1/jobs",
                    json={"plugin": "testing", "tool": "size", "inputs": {"image": image}},
                )
                statuses.append(response.status_code)
                assert response.status_code != 500, response.text
                assert probe(server.url)[0] == 200
        load.stop()
        assert 507 in statuses, statuses
        assert load.statuses[500] == 0, load.statuses
        _assert_none_lost(database_url, load.job_ids)
    finally:
        with contextlib.suppress(Exception):
            for server in servers:
                server.kill()
        subprocess.run(["umount", "-l", str(blobs)], capture_output=True, check=False)
