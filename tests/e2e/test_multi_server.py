"""Several real servers on one real PostgreSQL: one queue, every job completed exactly once.

Servers are ``python -m tests.launch`` (``lensforge serve`` with the test plugins) on loopback
ports; the execution-only node is the real ``lensforge worker`` command.
"""

# ruff: noqa: F811  (the PostgreSQL cluster fixture, imported, is a parameter here)

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from lensforge.store import JobStore, NewJob
from tests.e2e.test_recovery import Server, wait_all_terminal
from tests.integration.conftest import PostgresCluster, postgres_cluster  # noqa: F401
from tests.support import b64, png

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NOOP = {"plugin": "testing", "tool": "noop", "inputs": {}}


@pytest.fixture
def database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, migrated database URL (dropped afterwards)."""
    name = postgres_cluster.create_database()
    url = postgres_cluster.url(name)
    store = JobStore(url)
    store.migrate()
    store.close()
    yield url
    postgres_cluster.drop_database(name)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def start_server(tmp_path: Path, database: str, servers: list[Server], **env: str) -> Server:
    server = Server(
        tmp_path,
        LENSFORGE_DATABASE_URL=database,
        LENSFORGE_POLL_INTERVAL_S="0.5",
        LENSFORGE_MAX_QUEUE="100000",
        **env,
    )
    server.database_url = database
    servers.append(server)
    server.start()
    return server


def submit_round_robin(urls: list[str], count: int) -> list[str]:
    async def go() -> list[str]:
        clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
        try:
            limit = asyncio.Semaphore(16)

            async def one(i: int) -> str:
                async with limit:
                    response = await clients[i % len(clients)].post("/v1/jobs", json=NOOP)
                    assert response.status_code == 202, response.text
                    return str(response.json()["job_id"])

            return list(await asyncio.gather(*(one(i) for i in range(count))))
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(go())


def failures(database: str) -> list[tuple[object, ...]]:
    """The jobs that did not succeed, with their errors (for assertion messages)."""
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status, error FROM jobs WHERE status <> 'SUCCESS' LIMIT 5")
            ).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows]


def successes(database: str) -> tuple[Counter[str], Counter[str]]:
    """SUCCESS transitions per job, and per worker (lease owner) that made them."""
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT job_id, worker FROM job_events WHERE to_status = 'SUCCESS'")
            ).all()
    finally:
        engine.dispose()
    return Counter(job for job, _ in rows), Counter(worker for _, worker in rows)


def test_two_servers_share_one_queue_and_complete_each_job_once(
    tmp_path: Path, database: str, servers: list[Server]
) -> None:
    one = start_server(tmp_path / "one", database, servers)
    two = start_server(tmp_path / "two", database, servers)
    ids = submit_round_robin([one.url, two.url], 1000)
    store = JobStore(database)
    try:
        counts = wait_all_terminal(store, timeout=90)
    finally:
        store.close()
    assert counts["SUCCESS"] == 1000, failures(database)
    per_job, per_worker = successes(database)
    assert set(per_job) == set(ids)
    assert set(per_job.values()) == {1}
    assert len(per_worker) == 2  # both servers ran jobs
    assert same_key_on_both(one.url, two.url)


def same_key_on_both(*urls: str) -> bool:
    """One Idempotency-Key sent to every server at once makes one job, which all answer."""

    async def go() -> set[str]:
        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"{url}/v1/jobs", json=NOOP, headers={"Idempotency-Key": "k1"})
                    for url in urls * 4
                )
            )
        assert all(answer.status_code in (200, 202) for answer in answers), answers
        return {answer.json()["job_id"] for answer in answers}

    return len(asyncio.run(go())) == 1


def running_leased_to(database: str, pid: int) -> int:
    """RUNNING jobs whose lease owner is server process ``pid`` (host/boot:pid:token)."""
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM jobs WHERE status = 'RUNNING' AND lease_owner LIKE :p"),
                {"p": f"%:{pid}:%"},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


def test_kill_9_of_one_server_halfway_the_survivor_finishes_everything_once(
    tmp_path: Path, database: str, servers: list[Server]
) -> None:
    lease = {"LENSFORGE_LEASE_S": "3"}
    one = start_server(tmp_path / "one", database, servers, **lease)
    two = start_server(tmp_path / "two", database, servers, **lease)
    marker = tmp_path / "completions"
    slow = {"plugin": "chaos", "tool": "record", "inputs": {"path": str(marker), "pause": 0.01}}
    with httpx.Client(timeout=30) as client:
        ids = [
            client.post(f"{(one, two)[i % 2].url}/v1/jobs", json=slow).json()["job_id"]
            for i in range(1000)
        ]
    store = JobStore(database)
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(store.counts())["SUCCESS"] < 500:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert one.process is not None
        held = running_leased_to(database, one.process.pid)  # what the kill leaves behind
        one.stop(signal.SIGKILL)
        counts = wait_all_terminal(store, timeout=90)
        assert counts["SUCCESS"] == 1000, failures(database)
        recovered = asyncio.run(store.list(limit=1))  # the store still answers
        assert recovered is not None
    finally:
        store.close()
    per_job, _ = successes(database)
    assert set(per_job) == set(ids)
    assert set(per_job.values()) == {1}  # none completed twice
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            lost = conn.execute(
                text("SELECT count(*) FROM job_events WHERE reason = 'lease expired'")
            ).scalar_one()
    finally:
        engine.dispose()
    # The survivor took over the dead server's running jobs (when the kill found it between
    # jobs, there was nothing to take over: the other checks above still hold).
    assert lost > 0 or held == 0
    # Tool runs: at least once each (a killed run may have written its marker already).
    assert len(marker.read_text().splitlines()) >= 1000


def test_a_worker_runs_jobs_submitted_to_an_api_only_server(
    tmp_path: Path, database: str, servers: list[Server]
) -> None:
    api = start_server(tmp_path / "api", database, servers, LENSFORGE_EXECUTE="false")
    body = {"plugin": "image", "tool": "info", "inputs": {"image": b64(png())}}
    with httpx.Client(base_url=api.url, timeout=30) as client:
        job_id = client.post("/v1/jobs", json=body).json()["job_id"]
        time.sleep(0.5)
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "PENDING"  # no executor
        env = {
            **os.environ,
            "LENSFORGE_DATABASE_URL": database,
            "LENSFORGE_DATA_DIR": api.env["LENSFORGE_DATA_DIR"],  # the shared blob store
            "LENSFORGE_WORKERS": "1",
            "LENSFORGE_PLUGINS_ALLOW": "image",
        }
        worker = subprocess.Popen([sys.executable, "-m", "lensforge.cli", "worker"], env=env)
        try:
            deadline = time.monotonic() + 60
            job = client.get(f"/v1/jobs/{job_id}").json()
            while job["status"] not in ("SUCCESS", "FAILED"):
                assert time.monotonic() < deadline, job
                assert worker.poll() is None, "the worker exited"
                time.sleep(0.1)
                job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "SUCCESS", job
            # A sync call waits on the API server for a job the worker runs: a notice wakes it.
            started = time.monotonic()
            answer = client.post("/v1/analyze", json=body)
            assert answer.status_code == 200, answer.text
            assert time.monotonic() - started < 2.0
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)


def test_a_survivor_drains_a_backlog_it_did_not_create_at_its_own_pace(
    tmp_path: Path, database: str, servers: list[Server]
) -> None:
    """Issue 15 item 6: the figure in docs/deploy.md comes from this test."""
    workers, jobs, pause = 4, 400, 0.05
    start_server(tmp_path / "s", database, servers, LENSFORGE_WORKERS=str(workers))
    marker = tmp_path / "completions"
    inputs = {"path": str(marker), "pause": pause}
    store = JobStore(database)

    async def leave_backlog() -> None:  # as a server that then died would have left it
        await store.start()
        await asyncio.gather(
            *(
                store.create(NewJob(plugin="chaos", tool="record", inputs=inputs))
                for _ in range(jobs)
            )
        )
        await store.stop()

    try:
        started = time.monotonic()
        asyncio.run(leave_backlog())
        wait_all_terminal(store, timeout=90)
        elapsed = time.monotonic() - started
    finally:
        store.close()
    rate, ideal = jobs / elapsed, workers / pause
    print(
        f"backlog drain: {jobs} jobs of {pause * 1000:.0f} ms in {elapsed:.1f} s = "
        f"{rate:.0f} jobs/s, {workers} workers' ceiling {ideal:.0f} jobs/s"
    )
    assert rate > ideal / 3, (rate, ideal)  # the old poll-bound drain was ~4-8 jobs/s
