"""Checkpoints and frame items as the SQLite store keeps them: the checkpoint's time, the
optional frame index and timestamp of an item, and the default page of items."""

from __future__ import annotations

import time

import pytest

from lensforge.store import JobStore
from tests.unit.store.conftest import running

pytestmark = pytest.mark.anyio


async def test_a_checkpoint_records_when_it_was_taken(store: JobStore) -> None:
    job = await running(store)
    before = time.time()
    assert await store.save_checkpoint(job.id, {"next": 1}, [], "w1")
    checkpoint = await store.checkpoint(job.id)
    assert checkpoint is not None
    assert type(checkpoint.at) is float
    assert before <= checkpoint.at <= time.time()


async def test_an_item_without_a_usable_index_or_timestamp_keeps_them_empty(
    store: JobStore,
) -> None:
    """``index`` and ``timestamp_s`` are optional in an item; only an integer index and a
    numeric timestamp fill the frame columns, the item itself is kept whole either way."""
    job = await running(store)
    items = [
        {"result": "no index, no time"},
        {"index": "7", "timestamp_s": "soon", "result": "strings"},
        {"index": 2.5, "timestamp_s": None, "result": "a float index"},
        {"index": 4, "timestamp_s": 2, "result": "an int time"},
    ]
    assert await store.save_checkpoint(job.id, {"next": 5}, items, "w1")
    stored = await store.frames(job.id)
    assert [(f.seq, f.frame, f.timestamp_s, f.item) for f in stored] == [
        (0, None, None, items[0]),
        (1, None, None, items[1]),
        (2, None, None, items[2]),
        (3, 4, 2.0, items[3]),
    ]
    assert type(stored[3].timestamp_s) is float


async def test_frames_come_in_pages_of_100_by_default(store: JobStore) -> None:
    job = await running(store)
    items = [{"index": i, "result": i} for i in range(101)]
    assert await store.save_checkpoint(job.id, {"next": 101}, items, "w1")
    first = await store.frames(job.id)
    assert [f.seq for f in first] == list(range(100))
    assert [f.seq for f in await store.frames(job.id, after=first[-1].seq)] == [100]
