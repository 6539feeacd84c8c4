"""Reads whose edges the contract suite leaves open: a host's RUNNING jobs by lease-owner
prefix (``_`` and ``%`` are plain characters), a lease expiring exactly now, and a job
stored before retry policies were."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import update

from lensforge.store import JobStore, Status
from lensforge.store.tables import jobs
from tests.unit.store.conftest import running

pytestmark = pytest.mark.anyio


async def test_a_lease_owner_prefix_matches_literally(store: JobStore) -> None:
    ours = await running(store, worker="web_1/boot%2:11:a")
    await running(store, worker="webX1/bootX2:12:b")  # what `_` and `%` would match as LIKE
    await running(store, worker="other/boot:13:c")
    assert [j.id for j in await store.running_owned_by("web_1/boot%2:")] == [ours.id]
    assert {j.lease_owner for j in await store.running_owned_by("web")} == {
        "web_1/boot%2:11:a",
        "webX1/bootX2:12:b",
    }
    finished = await store.transition(ours.id, Status.RUNNING, Status.SUCCESS, result=1)
    assert finished.lease_owner == "web_1/boot%2:11:a"  # kept, but the job no longer RUNNING
    assert await store.running_owned_by("web_1/boot%2:") == []


async def test_a_lease_is_expired_only_after_its_expiry_time(store: JobStore) -> None:
    job = await running(store)
    assert job.lease_expires_at is not None
    assert await store.expired_leases(now=job.lease_expires_at) == []
    (expired,) = await store.expired_leases(now=job.lease_expires_at + 0.001)
    assert expired == job
    done = await store.transition(job.id, Status.RUNNING, Status.SUCCESS, result=1)
    assert done.lease_expires_at == job.lease_expires_at  # kept, but no longer RUNNING
    assert await store.expired_leases(now=job.lease_expires_at + 3600) == []


async def test_a_job_stored_before_retry_policies_reads_back_with_none(
    store: JobStore,
) -> None:
    job = await running(store, retry_on=("timeout",))
    assert job.retry_on == ["timeout"]
    with store.engine.begin() as conn:  # as the rows of schema revisions before 0003 are
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(retry_on=None))
    old = replace(job, retry_on=[])
    assert await store.get(job.id) == old
    assert await store.get_many([job.id]) == [old]
    assert await store.list() == [old]
    assert await store.running_owned_by("w1") == [old]
    assert await store.expired_leases(now=job.lease_expires_at + 1) == [old]  # type: ignore[operator]


async def test_every_read_gives_the_cancel_flag_and_retry_codes_as_stored(
    store: JobStore,
) -> None:
    """The hot path (``get``) and SQLAlchemy's (the others) build records separately."""
    job = await running(store, retry_on=("timeout", "worker_lost"))
    await store.request_cancel(job.id)
    expected = await store.get(job.id)
    assert expected is not None
    assert (expected.cancel_requested, expected.retry_on) == (True, ["timeout", "worker_lost"])
    assert await store.get_many([job.id]) == [expected]
    assert await store.list() == [expected]
    assert await store.running_owned_by("w1") == [expected]
