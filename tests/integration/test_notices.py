"""Job notices on PostgreSQL: what one server commits wakes another's waiters and dispatcher
at once, with polling set far too slow to explain it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.registry import Registry
from lensforge.store import JobStore, NewJob, Notice, Status
from tests.integration.conftest import PostgresCluster
from tests.unit.execution.support import ScriptedExecutor

pytestmark = pytest.mark.anyio
SLOW_POLL_S = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster, postgres_database: str) -> str:
    postgres_cluster.truncate(postgres_database)
    url = postgres_cluster.url(postgres_database)
    store = JobStore(url)
    store.migrate()
    store.close()
    return url


def new() -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={"n": 1}, owner="a")


async def _service(url: str, *, dispatch: bool) -> JobExecutionService:
    plugins = PluginExecutionService(Registry(), ScriptedExecutor(capacity=4), default_timeout_s=5)
    jobs = JobExecutionService(JobStore(url), plugins, poll_interval_s=SLOW_POLL_S)
    await jobs.start(dispatch=dispatch)
    return jobs


@pytest.fixture
async def two_servers(pg_url: str) -> AsyncIterator[tuple[JobExecutionService, ...]]:
    api = await _service(pg_url, dispatch=False)  # takes jobs, runs none
    worker = await _service(pg_url, dispatch=True)
    try:
        yield api, worker
    finally:
        for jobs in (api, worker):
            await jobs.stop()
            jobs.store.close()  # type: ignore[attr-defined]


async def test_notices_carry_ended_and_pending_jobs(pg_url: str) -> None:
    listening, writing = JobStore(pg_url), JobStore(pg_url)
    got: list[Notice] = []
    finished = asyncio.Event()

    def deliver(notice: Notice) -> None:
        got.append(notice)
        if notice.finished:
            finished.set()

    try:
        assert listening.listen(deliver)
        job, _ = await writing.create(new())
        (running,) = await writing.claim("w", 30.0, 1)
        await writing.finish(running, Status.SUCCESS, {"result": 1}, worker="w")
        await asyncio.wait_for(finished.wait(), 5)
        assert any(n.pending == 1 for n in got)
        assert any(job.id in n.finished for n in got)
    finally:
        for store in (listening, writing):
            await store.stop()
            store.close()


async def test_a_job_submitted_to_an_api_server_runs_on_another_promptly(
    two_servers: tuple[JobExecutionService, JobExecutionService],
) -> None:
    api, worker = two_servers
    started = time.monotonic()
    done = await api.submit_and_wait(new(), timeout_s=10)
    elapsed = time.monotonic() - started
    assert done.status is Status.SUCCESS
    assert done.lease_owner == worker.worker_id
    assert elapsed < 2.0, elapsed  # a poll would take SLOW_POLL_S


async def test_a_worker_drains_a_backlog_it_did_not_see_arrive(
    two_servers: tuple[JobExecutionService, JobExecutionService],
) -> None:
    api, _ = two_servers
    ids = [(await api.submit(new()))[0].id for _ in range(40)]
    finished = [await api.wait(job_id, 10) for job_id in ids]
    assert {job.status for job in finished} == {Status.SUCCESS}
