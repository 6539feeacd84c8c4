"""The job store contract (JobStoreProtocol), run against a real SQLite file, a real PostgreSQL
database and the in-memory store of ``lensforge.testing``: the same test code for all three."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lensforge.errors import Conflict, IllegalTransition
from lensforge.store import JobRecord, JobStore, JobStoreProtocol, NewJob, Status
from lensforge.testing import InMemoryJobStore
from tests.integration.conftest import PostgresCluster

Store = JobStoreProtocol

BACKENDS = ["sqlite", "postgres", "memory"]
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of each SQL backend (PostgreSQL's may hold the schema
    already), or "memory" for the in-memory store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/x.db"
    elif request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        database: str = request.getfixturevalue("postgres_database")
        cluster.truncate(database)  # a fresh database per test costs ~0.5 s; emptying it ~10 ms
        yield cluster.url(database)
    else:
        yield "memory"


@pytest.fixture
async def open_store(backend: str) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
    """Open (and start) stores on the database: the first one, then more as other
    processes would open the same database."""
    opened: list[Store] = []

    async def make() -> Store:
        store: Store
        if backend == "memory":
            store = InMemoryJobStore(opened[0] if opened else None)  # type: ignore[arg-type]
        else:
            store = JobStore(backend)
            if not opened:
                store.migrate()
        await store.start()
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.stop()
            if isinstance(store, JobStore):
                store.close()


@pytest.fixture
async def store(open_store: Callable[[], Awaitable[Store]]) -> Store:
    return await open_store()


def new(plugin: str = "p", tool: str = "t", **kwargs: Any) -> NewJob:
    return NewJob(plugin=plugin, tool=tool, inputs=kwargs.pop("inputs", {"n": 1}), **kwargs)


async def make_job(store: Store, **kwargs: Any) -> JobRecord:
    job, created = await store.create(new(**kwargs))
    assert created
    return job


async def run_job(store: Store, job: JobRecord, worker: str = "w1") -> JobRecord:
    """Claim ``job``, which must be the oldest PENDING job (claims go oldest first)."""
    (claimed,) = await store.claim(worker, 30.0, 1)
    assert claimed.id == job.id
    return claimed


# -- create and transition -----------------------------------------------------------------


async def test_create_makes_a_pending_job_with_one_event(store: Store) -> None:
    job, created = await store.create(new(inputs={"a": 1}, owner="alice", max_attempts=3))
    assert created is True
    assert job.status is Status.PENDING
    assert job.attempts == 0
    assert job.max_attempts == 3
    assert job.owner == "alice"
    assert job.cancel_requested is False
    assert job.created_at == pytest.approx(time.time(), abs=60)
    assert await store.get(job.id) == job
    (event,) = await store.events(job.id)
    assert (event.job_id, event.from_status, event.to_status) == (job.id, None, "PENDING")


async def test_get_unknown_job_is_none(store: Store) -> None:
    assert await store.get("00000000-0000-7000-8000-000000000000") is None


async def test_transition_from_the_wrong_status_is_refused_and_changes_nothing(
    store: Store,
) -> None:
    job = await make_job(store)
    with pytest.raises(IllegalTransition) as info:
        await store.transition(job.id, Status.RUNNING, Status.SUCCESS, result={"x": 1})
    assert info.value.details["current"] == "PENDING"
    assert info.value.job_id == job.id
    after = await store.get(job.id)
    assert after == job  # status, result and updated_at untouched
    assert len(await store.events(job.id)) == 1


async def test_transition_of_a_missing_job_is_refused(store: Store) -> None:
    with pytest.raises(IllegalTransition) as info:
        await store.transition("no-such-job", Status.PENDING, Status.CANCELLED)
    assert info.value.details["current"] is None


async def test_a_terminal_job_cannot_move_again(store: Store) -> None:
    job = await make_job(store)
    await store.transition(job.id, Status.PENDING, Status.CANCELLED, reason="cancelled")
    with pytest.raises(IllegalTransition):
        await store.transition(job.id, Status.PENDING, Status.RUNNING)
    assert (await store.get(job.id)).status is Status.CANCELLED  # type: ignore[union-attr]
    assert [e.to_status for e in await store.events(job.id)] == ["PENDING", "CANCELLED"]


async def test_each_transition_appends_an_event(store: Store) -> None:
    job = await make_job(store)
    await run_job(store, job, worker="w1")
    done = await store.transition(
        job.id,
        Status.RUNNING,
        Status.SUCCESS,
        worker="w1",
        reason="finished",
        owned_by="w1",
        result={"ok": True},
        finished_at=123.5,
    )
    assert done.status is Status.SUCCESS
    assert done.result == {"ok": True}
    assert done.finished_at == 123.5
    events = await store.events(job.id)
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUCCESS"),
    ]
    assert events[1].worker == "w1"
    assert (events[2].worker, events[2].reason) == ("w1", "finished")
    assert all(e.job_id == job.id for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)


async def test_recovery_back_to_pending_then_reclaim_counts_attempts(store: Store) -> None:
    job = await make_job(store, max_attempts=2)
    first = await run_job(store, job, worker="w1")
    assert first.attempts == 1
    await store.transition(
        job.id, Status.RUNNING, Status.PENDING, reason="lease expired", lease_owner=None
    )
    second = await run_job(store, job, worker="w2")
    assert second.attempts == 2
    assert second.lease_owner == "w2"


async def test_create_can_claim_in_the_same_transaction(store: Store) -> None:
    job, created = await store.create(new(), claim_for="w1", lease_s=60.0)
    assert created is True
    assert job.status is Status.RUNNING
    assert (job.lease_owner, job.attempts) == ("w1", 1)
    assert await store.get(job.id) == job
    assert [(e.from_status, e.to_status) for e in await store.events(job.id)] == [
        (None, "PENDING"),
        ("PENDING", "RUNNING"),
    ]
    assert await store.claim("w2", 30.0, 10) == []


# -- claim -------------------------------------------------------------------------------------


async def test_claim_takes_the_oldest_due_jobs_up_to_the_limit(store: Store) -> None:
    jobs = [await make_job(store) for _ in range(5)]
    claimed = await store.claim("w1", 30.0, 3)
    assert [j.id for j in claimed] == [j.id for j in jobs[:3]]
    for job in claimed:
        assert job.status is Status.RUNNING
        assert job.lease_owner == "w1"
        assert job.lease_expires_at == pytest.approx(time.time() + 30.0, abs=10)
        assert job.started_at is not None
        assert job.attempts == 1
    assert (await store.counts())["PENDING"] == 2
    assert await store.claim("w1", 30.0, 10) != []
    assert await store.claim("w1", 30.0, 10) == []


async def test_claim_respects_not_before(store: Store) -> None:
    later = await make_job(store, not_before=time.time() + 3600)
    due = await make_job(store, not_before=time.time() - 1)
    claimed = await store.claim("w1", 30.0, 10)
    assert [j.id for j in claimed] == [due.id]
    assert (await store.get(later.id)).status is Status.PENDING  # type: ignore[union-attr]


async def test_claim_restricted_to_job_ids(store: Store) -> None:
    a, b, c = [await make_job(store) for _ in range(3)]
    claimed = await store.claim("w1", 30.0, 10, job_ids=[b.id])
    assert [j.id for j in claimed] == [b.id]
    assert (await store.get(a.id)).status is Status.PENDING  # type: ignore[union-attr]
    assert (await store.get(c.id)).status is Status.PENDING  # type: ignore[union-attr]
    assert await store.claim("w1", 30.0, 10, job_ids=[b.id]) == []  # already RUNNING


@pytest.mark.parametrize("workers", [2, 4])
async def test_concurrent_claims_never_share_a_job(
    store: Store, open_store: Callable[[], Awaitable[Store]], workers: int
) -> None:
    total = 200
    for _ in range(total):
        await make_job(store)
    stores = [await open_store() for _ in range(workers)]
    claimed: dict[int, list[str]] = {i: [] for i in range(workers)}

    async def claimer(index: int) -> None:
        for _ in range(total):  # bounded: each round claims at least one job or stops
            got = await stores[index].claim(f"w{index}", 30.0, 7)
            if not got:
                return
            claimed[index].extend(job.id for job in got)
            assert all(job.lease_owner == f"w{index}" for job in got)

    await asyncio.wait_for(asyncio.gather(*(claimer(i) for i in range(workers))), 90)
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert len(every) == total
    assert len(set(every)) == total  # no job claimed twice
    counts = await store.counts()
    assert counts["RUNNING"] == total
    assert counts["PENDING"] == 0
    for index, ids in claimed.items():
        for job in await store.get_many(ids):
            assert job.lease_owner == f"w{index}"
            assert job.attempts == 1
    for job_id in every[:20]:
        assert [e.to_status for e in await store.events(job_id)] == ["PENDING", "RUNNING"]


async def test_finish_and_claim_is_one_transaction(store: Store) -> None:
    first = await run_job(store, await make_job(store), worker="w1")
    waiting = await make_job(store)
    done, claimed = await store.finish(
        first,
        Status.SUCCESS,
        {"result": {"ok": True}},
        worker="w1",
        owned_by="w1",
        artifacts=["c" * 64],
        claim_next=5,
        lease_s=30.0,
    )
    assert (done.status, done.result) == (Status.SUCCESS, {"ok": True})
    assert await store.owns_blob("c" * 64, first.owner)
    assert [(j.id, j.status, j.lease_owner) for j in claimed] == [
        (waiting.id, Status.RUNNING, "w1")
    ]
    assert [e.to_status for e in await store.events(waiting.id)] == ["PENDING", "RUNNING"]
    # a refused transition claims nothing and owns nothing either
    third = await make_job(store)
    with pytest.raises(IllegalTransition):
        await store.finish(
            first, Status.FAILED, {}, worker="w1", artifacts=["d" * 64], claim_next=5
        )
    assert (await store.get(third.id)).status is Status.PENDING  # type: ignore[union-attr]
    assert not await store.owns_blob("d" * 64, first.owner)
    _, none = await store.finish(claimed[0], Status.SUCCESS, {}, worker="w1", claim_next=0)
    assert none == []
    assert (await store.get(third.id)).status is Status.PENDING  # type: ignore[union-attr]


async def test_finish_is_fenced_by_the_lease_owner(store: Store) -> None:
    job = await run_job(store, await make_job(store), worker="w1")
    with pytest.raises(IllegalTransition):
        await store.finish(job, Status.SUCCESS, {"result": 1}, worker="w2", owned_by="w2")
    assert (await store.get(job.id)).status is Status.RUNNING  # type: ignore[union-attr]


async def test_a_transition_from_a_known_job_returns_the_row_as_stored(store: Store) -> None:
    """``known=`` reads back only what can change without a transition; the record it returns
    must still be the row as stored, changes made meanwhile by others included."""
    job = await run_job(
        store, await make_job(store, inputs={"image": {"blob": "sha256:" + "a" * 64}})
    )
    await store.set_progress(job.id, 0.5, "half way", "w1")
    await store.request_cancel(job.id)
    await store.renew_leases("w1", [job.id], 1000.0)
    done = await store.transition(
        job.id,
        Status.RUNNING,
        Status.SUCCESS,
        owned_by="w1",
        known=job,  # as claimed: before the progress, the cancel request and the renewal
        result={"words": [{"text": "x", "box": [1, 2, 3, 4]}]},
        finished_at=time.time(),
    )
    assert done == await store.get(job.id)
    assert (done.progress, done.progress_message, done.cancel_requested) == (0.5, "half way", True)
    # a known record in another status than from_status is not trusted: the whole row is read
    stale = await make_job(store)
    claimed = await run_job(store, stale)
    failed = await store.transition(
        stale.id, Status.RUNNING, Status.FAILED, owned_by="w1", known=stale, error={"e": 1}
    )
    assert failed == await store.get(stale.id)
    assert failed.attempts == claimed.attempts == 1
    # and a refused transition is refused as ever
    with pytest.raises(IllegalTransition):
        await store.transition(job.id, Status.RUNNING, Status.FAILED, owned_by="w1", known=job)


# -- leases ------------------------------------------------------------------------------------


async def test_lease_fencing_refuses_a_worker_that_lost_the_lease(store: Store) -> None:
    job = await make_job(store)
    await run_job(store, job, worker="w1")
    with pytest.raises(IllegalTransition):
        await store.transition(
            job.id, Status.RUNNING, Status.SUCCESS, worker="w2", owned_by="w2", result={"v": 2}
        )
    current = await store.get(job.id)
    assert current is not None
    assert current.status is Status.RUNNING
    assert current.result is None
    assert len(await store.events(job.id)) == 2
    done = await store.transition(
        job.id, Status.RUNNING, Status.SUCCESS, owned_by="w1", result={"v": 1}
    )
    assert done.status is Status.SUCCESS
    assert done.result == {"v": 1}


async def test_renew_leases_extends_only_the_owners_running_jobs(store: Store) -> None:
    mine = await run_job(store, await make_job(store), worker="w1")
    theirs = await run_job(store, await make_job(store), worker="w2")
    pending = await make_job(store)
    assert await store.renew_leases("w1", [mine.id, theirs.id, pending.id], 1000.0) == 1
    renewed = await store.get(mine.id)
    assert renewed is not None
    assert renewed.lease_expires_at is not None
    assert renewed.lease_expires_at == pytest.approx(time.time() + 1000.0, abs=30)
    assert (await store.get(theirs.id)).lease_expires_at == theirs.lease_expires_at  # type: ignore[union-attr]
    assert await store.renew_leases("w1", [], 1000.0) == 0
    await store.transition(mine.id, Status.RUNNING, Status.SUCCESS, owned_by="w1")
    assert await store.renew_leases("w1", [mine.id], 1000.0) == 0  # finished: nothing to renew


async def test_expired_leases_lists_running_jobs_past_their_lease(store: Store) -> None:
    short = await make_job(store)
    long = await make_job(store)
    (expired,) = await store.claim("w1", -1.0, 1)
    assert expired.id == short.id
    assert [j.id for j in await store.claim("w2", 3600.0, 1)] == [long.id]
    await make_job(store)  # PENDING jobs never count
    assert [j.id for j in await store.expired_leases()] == [expired.id]
    later = await store.expired_leases(now=time.time() + 7200)
    assert sorted(j.id for j in later) == sorted([short.id, long.id])
    assert len(await store.expired_leases(now=time.time() + 7200, limit=1)) == 1
    assert await store.expired_leases(now=0) == []


# -- idempotency -------------------------------------------------------------------------------


async def test_same_owner_key_and_request_returns_the_same_job(store: Store) -> None:
    first, created = await store.create(new(owner="a", idempotency_key="k", request_hash="h1"))
    again, created_again = await store.create(
        new(owner="a", idempotency_key="k", request_hash="h1")
    )
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert len(await store.list()) == 1


async def test_same_key_with_a_different_request_is_a_conflict(store: Store) -> None:
    first, _ = await store.create(new(owner="a", idempotency_key="k", request_hash="h1"))
    with pytest.raises(Conflict) as info:
        await store.create(new(owner="a", idempotency_key="k", request_hash="h2"))
    assert info.value.code == "conflict"
    assert info.value.job_id == first.id
    assert len(await store.list()) == 1


async def test_same_key_for_another_owner_is_another_job(store: Store) -> None:
    a, _ = await store.create(new(owner="a", idempotency_key="k", request_hash="h"))
    b, created = await store.create(new(owner="b", idempotency_key="k", request_hash="h"))
    assert created is True
    assert a.id != b.id


async def test_jobs_without_a_key_are_never_merged(store: Store) -> None:
    a, _ = await store.create(new(request_hash="h"))
    b, created = await store.create(new(request_hash="h"))
    assert created is True
    assert a.id != b.id


async def test_concurrent_creates_with_one_key_make_one_job(
    store: Store, open_store: Callable[[], Awaitable[Store]]
) -> None:
    stores = [await open_store() for _ in range(4)]
    twin = new(owner="a", idempotency_key="same", request_hash="h")
    results = await asyncio.wait_for(asyncio.gather(*(s.create(twin) for s in stores)), 60)
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(await store.list()) == 1


# -- reads -------------------------------------------------------------------------------------


async def test_list_jobs_filters(store: Store) -> None:
    a2 = await make_job(store, plugin="a", tool="y", owner="o2")
    await run_job(store, a2)
    a1 = await make_job(store, plugin="a", tool="x", owner="o1")
    b1 = await make_job(store, plugin="b", tool="x", owner="o1")

    async def ids(**filters: Any) -> list[str]:
        return [job.id for job in await store.list(**filters)]

    assert await ids() == [b1.id, a1.id, a2.id]
    assert await ids(plugin="a") == [a1.id, a2.id]
    assert await ids(tool="x") == [b1.id, a1.id]
    assert await ids(plugin="a", tool="x") == [a1.id]
    assert await ids(status=Status.RUNNING) == [a2.id]
    assert await ids(status=Status.PENDING) == [b1.id, a1.id]
    assert await ids(status=Status.SUCCESS) == []
    assert await ids(owner="o1") == [b1.id, a1.id]
    assert await ids(plugin="nope") == []
    assert await ids(limit=1) == [b1.id]


async def test_list_jobs_keyset_paging_has_no_gaps_or_duplicates(store: Store) -> None:
    created = [(await make_job(store, plugin="a" if i % 3 else "b")).id for i in range(23)]
    newest_first = list(reversed(created))
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):  # bounded: 23 jobs in pages of 5 is 5 pages
        page = await store.list(before=cursor, limit=5)
        if not page:
            break
        seen.extend(job.id for job in page)
        cursor = page[-1].id
    assert seen == newest_first
    # paging with a filter keeps the filter's order too
    only_a = [job_id for job_id in newest_first if (await store.get(job_id)).plugin == "a"]  # type: ignore[union-attr]
    first = await store.list(plugin="a", limit=4)
    rest = await store.list(plugin="a", before=first[-1].id, limit=100)
    assert [j.id for j in first + rest] == only_a


async def test_counts_covers_every_status(store: Store) -> None:
    assert await store.counts() == {status.value: 0 for status in Status}
    running = await run_job(store, await make_job(store))
    for _ in range(3):
        await make_job(store)
    await store.transition(
        running.id, Status.RUNNING, Status.FAILED, error={"error": {"code": "x"}}
    )
    cancelled = await make_job(store)
    await store.transition(cancelled.id, Status.PENDING, Status.CANCELLED)
    assert await store.counts() == {
        "PENDING": 3,
        "RUNNING": 0,
        "SUCCESS": 0,
        "FAILED": 1,
        "CANCELLED": 1,
    }


async def test_get_many(store: Store) -> None:
    a, b = await make_job(store), await make_job(store)
    assert {j.id for j in await store.get_many([a.id, b.id, "missing"])} == {a.id, b.id}
    assert await store.get_many([]) == []


# -- cancel and progress -----------------------------------------------------------------------


async def test_request_cancel_sets_the_flag_without_changing_status(store: Store) -> None:
    job = await run_job(store, await make_job(store))
    await store.request_cancel(job.id)
    after = await store.get(job.id)
    assert after is not None
    assert after.cancel_requested is True
    assert after.status is Status.RUNNING
    assert len(await store.events(job.id)) == 2


async def test_set_progress_only_on_running_jobs_of_the_lease_owner(store: Store) -> None:
    running = await run_job(store, await make_job(store), worker="w1")
    pending = await make_job(store)
    assert await store.set_progress(pending.id, 0.5, "half") is False
    assert (await store.get(pending.id)).progress == 0.0  # type: ignore[union-attr]
    assert await store.set_progress(running.id, 0.25, "a quarter", lease_owner="w2") is False
    assert await store.set_progress(running.id, 0.5, "half", lease_owner="w1") is True
    after = await store.get(running.id)
    assert after is not None
    assert (after.progress, after.progress_message) == (0.5, "half")
    assert after.status is Status.RUNNING
    assert await store.set_progress(running.id, 0.75, None) is True
    assert (await store.get(running.id)).progress == 0.75  # type: ignore[union-attr]


# -- checkpoints of long jobs ------------------------------------------------------------------


def frame_item(index: int, **extra: Any) -> dict[str, Any]:
    return {"index": index, "timestamp_s": index / 30, "result": {"n": index, "x": 0.5}, **extra}


async def test_checkpoints_store_state_and_number_items_on(store: Store) -> None:
    job = await run_job(store, await make_job(store), worker="w1")
    assert await store.checkpoint(job.id) is None
    assert await store.frames(job.id) == []
    first = [frame_item(0), frame_item(3)]
    assert await store.save_checkpoint(job.id, {"next": 4, "f": 1.0}, first, "w1") is True
    assert await store.save_checkpoint(job.id, {"next": 7}, [frame_item(6)], "w1") is True
    checkpoint = await store.checkpoint(job.id)
    assert checkpoint is not None
    assert (checkpoint.state, checkpoint.frames) == ({"next": 7}, 3)
    stored = await store.frames(job.id)
    assert [(f.seq, f.frame, f.item) for f in stored] == [
        (0, 0, first[0]),
        (1, 3, first[1]),
        (2, 6, frame_item(6)),
    ]
    assert stored[1].timestamp_s == pytest.approx(0.1)
    assert type(stored[0].item["result"]["x"]) is float  # JSON comes back as it went in


async def test_checkpoints_are_fenced_by_status_and_lease_owner(store: Store) -> None:
    job = await run_job(store, await make_job(store), worker="w1")
    pending = await make_job(store)
    assert await store.save_checkpoint(pending.id, {"next": 1}, [frame_item(0)]) is False
    assert await store.save_checkpoint(job.id, {"next": 1}, [frame_item(0)], "w2") is False
    assert await store.checkpoint(job.id) is None
    assert await store.frames(job.id) == []  # a refused checkpoint stores no items either
    assert await store.save_checkpoint(job.id, {"next": 1}, [frame_item(0)]) is True  # unfenced
    assert await store.save_checkpoint("missing", {"next": 1}) is False


async def test_a_checkpoint_survives_recovery_and_frames_page_by_seq(store: Store) -> None:
    job = await run_job(store, await make_job(store, max_attempts=2), worker="w1")
    items = [frame_item(i) for i in range(7)]
    assert await store.save_checkpoint(job.id, {"next": 7}, items, "w1")
    back = await store.transition(job.id, Status.RUNNING, Status.PENDING, lease_owner=None)
    assert await store.save_checkpoint(job.id, {"next": 99}, [frame_item(99)]) is False
    (again,) = await store.claim("w2", 30.0, 1, [back.id])
    assert again.attempts == 2
    checkpoint = await store.checkpoint(job.id)
    assert checkpoint is not None and checkpoint.state == {"next": 7}
    page = await store.frames(job.id, limit=3)
    assert [f.seq for f in page] == [0, 1, 2]
    page = await store.frames(job.id, after=page[-1].seq, limit=3)
    assert [f.seq for f in page] == [3, 4, 5]
    assert [f.seq for f in await store.frames(job.id, after=5, limit=3)] == [6]
    assert await store.frames(job.id, after=6) == []
    assert await store.frames("missing") == []


# -- schema and data ---------------------------------------------------------------------------


async def test_migrate_twice_is_harmless(
    store: Store, open_store: Callable[[], Awaitable[Store]]
) -> None:
    if not isinstance(store, JobStore):
        pytest.skip("the in-memory store has no schema")
    job = await make_job(store)
    store.migrate()
    other = await open_store()
    assert isinstance(other, JobStore)
    other.migrate()
    assert await other.get(job.id) == job
    assert len(await store.events(job.id)) == 1


async def test_json_inputs_results_and_errors_round_trip(store: Store) -> None:
    inputs = {
        "text": "héllo wörld ✓ 日本",
        "n": 3,
        "x": 1.5,
        "flag": True,
        "none": None,
        "nested": {"list": [1, "two", {"three": [3.25]}], "empty": {}},
        "image": {"blob": "sha256:" + "ab" * 32},
    }
    job = await make_job(store, inputs=inputs)
    assert job.inputs == inputs
    assert (await store.get(job.id)).inputs == inputs  # type: ignore[union-attr]
    await run_job(store, job)
    result = {"boxes": [{"x": 0.5, "y": 2, "label": "ç"}], "count": 1, "ok": None}
    await store.transition(job.id, Status.RUNNING, Status.SUCCESS, result=result)
    assert (await store.get(job.id)).result == result  # type: ignore[union-attr]
    failed = await run_job(store, await make_job(store))
    error = {"error": {"code": "plugin_error", "message": "bad", "details": {"k": [1]}}}
    await store.transition(failed.id, Status.RUNNING, Status.FAILED, error=error, traceback="tb")
    after = await store.get(failed.id)
    assert after is not None
    assert (after.error, after.traceback) == (error, "tb")


async def test_a_list_result_round_trips(store: Store) -> None:
    job = await run_job(store, await make_job(store))
    await store.transition(job.id, Status.RUNNING, Status.SUCCESS, result=[1, 2, {"a": None}])
    assert (await store.get(job.id)).result == [1, 2, {"a": None}]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [7, 2.5, 3.0, 2**70, "text", "123", True, [1, "a"], {"k": None}],
    ids=["int", "float", "whole-float", "big-int", "str", "numeric-str", "bool", "list", "dict"],
)
async def test_a_scalar_result_round_trips(
    store: Store, value: Any, request: pytest.FixtureRequest
) -> None:
    if isinstance(value, int) and value >= 2**64:
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                raises=AssertionError,  # it comes back, as a float: the type check fails
                reason="Known limit: stored results carry integers up to 64 bits (orjson); "
                "the ToolRunner answers plugin_error for a larger one before it is stored",
            )
        )
    job = await run_job(store, await make_job(store))
    done = await store.transition(job.id, Status.RUNNING, Status.SUCCESS, result=value)
    reads = [await store.get(job.id), (await store.list())[0], *await store.get_many([job.id])]
    for read in (done, *reads):
        assert read is not None
        assert read.result == value
        assert type(read.result) is type(value)
