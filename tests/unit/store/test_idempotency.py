"""An Idempotency-Key reused with another request: the conflict's envelope, which says what
went wrong and which key, and names the job the key already belongs to."""

from __future__ import annotations

import asyncio

import pytest

from lensforge.errors import Conflict
from lensforge.store import JobStore
from tests.unit.store.conftest import new

pytestmark = pytest.mark.anyio

MESSAGE = "This Idempotency-Key was used with a different request; use a new key."


async def test_a_key_reused_with_another_request_is_a_conflict_naming_key_and_job(
    store: JobStore,
) -> None:
    first, _ = await store.create(new(owner="a", idempotency_key="k-1", request_hash="h1"))
    with pytest.raises(Conflict) as info:
        await store.create(new(owner="a", idempotency_key="k-1", request_hash="h2"))
    error = info.value.envelope()["error"]
    assert (error["code"], error["message"]) == ("conflict", MESSAGE)
    assert error["details"] == {"idempotency_key": "k-1"}
    assert error["job_id"] == first.id
    assert info.value.status == 409


async def test_the_conflict_is_the_same_within_one_group_commit(store: JobStore) -> None:
    """Two creates queued in one turn share a transaction: the second finds the first's
    uncommitted job by its key."""
    results = await asyncio.gather(
        store.create(new(owner="a", idempotency_key="k-2", request_hash="h1")),
        store.create(new(owner="a", idempotency_key="k-2", request_hash="h2")),
        return_exceptions=True,
    )
    created, refused = results
    assert isinstance(created, tuple) and created[1] is True
    assert isinstance(refused, Conflict)
    assert refused.message == MESSAGE
    assert (refused.details, refused.job_id) == ({"idempotency_key": "k-2"}, created[0].id)
    assert await store.list() == [created[0]]
