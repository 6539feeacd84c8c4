"""Fair claiming and the per-owner cap (JobStoreProtocol.claim), on SQLite, PostgreSQL and
the in-memory store: the same test code for all three."""

# ruff: noqa: F811  (the contract suite's fixtures, imported, are this module's parameters)

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from lensforge.store import JobStoreProtocol, NewJob, Status
from tests.integration.test_store_contract import (  # noqa: F401  (fixtures)
    anyio_backend,
    backend,
    open_store,
    store,
)

Store = JobStoreProtocol
pytestmark = pytest.mark.anyio


def new(owner: str) -> NewJob:
    return NewJob(plugin="p", tool="t", inputs={"n": 1}, owner=owner)


async def test_pending_jobs_of_several_owners_interleave(store: Store) -> None:
    for _ in range(6):
        await store.create(new("a"))
    for _ in range(3):
        await store.create(new("b"))  # queued after all of a's
    claimed = await store.claim("w", 30.0, 4)
    assert [job.owner for job in claimed].count("b") == 2
    assert {job.owner for job in claimed} == {"a", "b"}


async def test_an_owner_with_jobs_running_goes_after_one_with_none(store: Store) -> None:
    for _ in range(4):
        await store.create(new("a"))
    assert len(await store.claim("w", 30.0, 2)) == 2  # a has 2 running, 2 pending
    await store.create(new("b"))
    (first,) = await store.claim("w", 30.0, 1)
    assert first.owner == "b"


async def test_per_owner_cap_holds_and_leaves_room_for_others(store: Store) -> None:
    for _ in range(10):
        await store.create(new("slow"))
    await store.create(new("quick"))
    claimed = await store.claim("w", 30.0, 10, per_owner=3)
    assert Counter(job.owner for job in claimed) == {"slow": 3, "quick": 1}
    assert await store.claim("w", 30.0, 10, per_owner=3) == []  # slow is at its cap
    done = next(job for job in claimed if job.owner == "slow")
    _, more = await store.finish(
        done, Status.SUCCESS, {"result": 1}, worker="w", claim_next=5, per_owner=3
    )
    assert [job.owner for job in more] == ["slow"]  # its freed slot, and only that one


async def test_the_cap_applies_across_claimers(open_store: Callable[[], Awaitable[Store]]) -> None:
    one, two = await open_store(), await open_store()
    for _ in range(6):
        await one.create(new("a"))
    got = await one.claim("w1", 30.0, 2, per_owner=3)
    got += await two.claim("w2", 30.0, 5, per_owner=3)
    assert len(got) == 3
    assert await one.count(Status.PENDING) == 3


async def test_claims_follow_the_fair_ranking_exactly(store: Store) -> None:
    """A seeded mix of owners, some with jobs RUNNING: each claim takes the lowest ranks (an
    owner's k-th pending job ranks its RUNNING count + k), the oldest first among equals."""
    import random

    rng = random.Random(7)
    created = [(await store.create(new(rng.choice("abcd"))))[0] for _ in range(24)]
    running: Counter[str] = Counter()
    pending = list(created)  # oldest first
    for limit in (3, 1, 4, 2, 5):
        seen: Counter[str] = Counter()
        ranked = []
        for job in pending:
            seen[job.owner] += 1
            ranked.append((running[job.owner] + seen[job.owner], job.id))
        expected = sorted(job_id for _, job_id in sorted(ranked)[:limit])
        claimed = await store.claim("w", 30.0, limit)
        assert sorted(job.id for job in claimed) == expected
        running.update(job.owner for job in claimed)
        pending = [job for job in pending if job.id not in set(expected)]
