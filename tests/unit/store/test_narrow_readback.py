"""The narrow read-back of a transition whose caller knows the job (``known=``): which
columns it reads back, and that the rest really come from the caller's record."""

from __future__ import annotations

import time

import pytest

from lensforge.store import JobStore, Status
from lensforge.store.readback import NEXT_ATTEMPT, READ_BACK, columns
from tests.unit.store.conftest import running

pytestmark = pytest.mark.anyio


def test_read_back_is_what_can_change_without_a_transition_and_the_update_leaves() -> None:
    assert columns({}) == READ_BACK
    assert columns({"result": 1, "finished_at": 2.0}) == READ_BACK
    assert columns({"lease_owner": None, "progress": 1.0, "error": None}) == (
        "attempts",
        "progress_message",
        "cancel_requested",
        "lease_expires_at",
    )
    # an attempt counted by SQL is read back: only the database knows the new number
    claim = {"lease_owner": "w", "lease_expires_at": 1.0, "attempts": NEXT_ATTEMPT}
    assert columns(claim) == ("attempts", "progress", "progress_message", "cancel_requested")


async def test_a_known_job_is_not_read_back_whole(store: JobStore) -> None:
    """The hot path: the columns fixed at creation (the inputs above all) are the caller's
    own objects, not read and decoded again; without ``known=`` they are read back."""
    job = await running(store, inputs={"image": {"blob": "sha256:" + "b" * 64}})
    done = await store.transition(
        job.id,
        Status.RUNNING,
        Status.SUCCESS,
        owned_by="w1",
        known=job,
        result={"n": 1},
        finished_at=time.time(),
    )
    assert done.inputs is job.inputs and done.retry_on is job.retry_on
    assert done == await store.get(done.id)
    other = await running(store)
    failed = await store.transition(other.id, Status.RUNNING, Status.FAILED, error={"e": 1})
    assert failed.inputs == other.inputs and failed.inputs is not other.inputs


async def test_a_cancel_request_made_meanwhile_reads_back_as_a_bool(store: JobStore) -> None:
    """SQLite stores the flag as 0/1; the record (and the JSON made of it) says true/false."""
    asked, left = await running(store), await running(store)
    await store.request_cancel(asked.id)
    for job, flag in ((asked, True), (left, False)):
        done = await store.transition(
            job.id, Status.RUNNING, Status.CANCELLED, owned_by="w1", known=job
        )
        assert done.cancel_requested is flag
