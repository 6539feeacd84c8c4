"""The guarded transition: its refusals' messages (part of the error envelope), the default
lease of a job claimed at creation, and the UPDATE statements built afresh.

The store caches each UPDATE it builds (``writes._UPDATES``); mutmut forks its mutant runs
from a process that has run the tests once, so only a test that empties the cache makes
the builder run under a mutant."""

from __future__ import annotations

import time

import pytest

from lensforge.errors import IllegalTransition
from lensforge.store import JobStore, Status, writes
from tests.unit.store.conftest import new, running

pytestmark = pytest.mark.anyio


async def test_a_refused_transition_says_what_the_job_is(store: JobStore) -> None:
    job = await running(store, worker="w1")
    cases = [
        (job.id, Status.PENDING, "owner", "it is RUNNING.", "RUNNING"),
        (job.id, Status.RUNNING, "w2", "it is RUNNING or leased to another worker.", "RUNNING"),
        ("missing", Status.RUNNING, "w1", "it is missing.", None),
    ]
    for job_id, from_status, owner, says, current in cases:
        with pytest.raises(IllegalTransition) as info:
            await store.transition(job_id, from_status, Status.SUCCESS, owned_by=owner, result=1)
        assert info.value.message == (
            f"Job {job_id} cannot go from {from_status.value} to SUCCESS: {says}"
        )
        assert info.value.details == {
            "from": from_status.value,
            "to": "SUCCESS",
            "current": current,
        }
        assert info.value.job_id == job_id


async def test_a_job_claimed_at_creation_is_leased_for_30_s_by_default(store: JobStore) -> None:
    job, _ = await store.create(new(), claim_for="w1")
    assert job.lease_expires_at == pytest.approx(job.created_at + 30.0, abs=1e-3)


async def test_every_kind_of_transition_with_its_statements_built_afresh(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes, "_UPDATES", {})
    first, _ = await store.create(new(max_attempts=2))
    (claimed,) = await store.claim("w1", 30.0, 1)  # counts an attempt in SQL
    assert (claimed.id, claimed.attempts, claimed.lease_owner) == (first.id, 1, "w1")
    back = await store.transition(  # lease recovery: whole row read back, not fenced
        first.id, Status.RUNNING, Status.PENDING, lease_owner=None, lease_expires_at=None
    )
    assert (back.status, back.lease_owner, back.attempts) == (Status.PENDING, None, 1)
    (again,) = await store.claim("w2", 30.0, 1)
    assert again.attempts == 2
    with pytest.raises(IllegalTransition):  # fenced: leased to w2 now
        await store.transition(first.id, Status.RUNNING, Status.SUCCESS, owned_by="w1", known=again)
    done = await store.transition(  # fenced, narrow read-back
        first.id,
        Status.RUNNING,
        Status.SUCCESS,
        owned_by="w2",
        known=again,
        result={"ok": True},
        finished_at=time.time(),
    )
    assert done == await store.get(first.id)
    assert (done.status, done.result, done.attempts) == (Status.SUCCESS, {"ok": True}, 2)
    with pytest.raises(IllegalTransition):  # the guard on from_status
        await store.transition(first.id, Status.RUNNING, Status.FAILED, error={"e": 1})
    assert [e.to_status for e in await store.events(first.id)] == [
        "PENDING",
        "RUNNING",
        "PENDING",
        "RUNNING",
        "SUCCESS",
    ]
    assert writes._UPDATES  # built here, and cached again
