"""Checkpoints of long jobs: the write that stores one, and the reads of them and their frames.

A checkpoint is a running job's resume state (any JSON object its tool chooses) plus the
per-frame result items produced since the one before. :func:`save` stores both in one
transaction, fenced like every write of a running job (RUNNING, and leased to the writer),
so the state and the items always agree: after a crash the job resumes from a state whose
items are all stored, and none after it. Private to the store package.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from lensforge.store.database import Database
from lensforge.store.dbapi import Tx, json_dumps, sqlite_json
from lensforge.store.records import Checkpoint, FrameItem
from lensforge.store.tables import Status, job_checkpoints, job_frames, jobs


def save(
    tx: Tx,
    job_id: str,
    state: dict[str, Any],
    items: Sequence[dict[str, Any]],
    lease_owner: str | None,
) -> bool:
    """Store the checkpoint if the job is RUNNING (and leased to ``lease_owner`` if given);
    whether it was. Items are numbered on from the last checkpoint's."""
    now = time.time()
    fence = _FENCE if lease_owner is None else _FENCE_OWNED
    tx.run(fence, {"job_id": job_id, "now": now, "owner": lease_owner})
    if not tx.cursor.rowcount:
        return False
    encode = sqlite_json if tx.is_sqlite else json_dumps
    found = tx.rows(_FRAMES_SO_FAR, {"job_id": job_id})
    start = int(found[0][0]) if found else 0
    tx.run(_DELETE_CHECKPOINT, {"job_id": job_id})
    tx.run(
        _INSERT_CHECKPOINT,
        {"job_id": job_id, "state": encode(state), "frames": start + len(items), "at": now},
    )
    for seq, item in enumerate(items, start=start):
        frame, timestamp = item.get("index"), item.get("timestamp_s")
        tx.later(
            _INSERT_FRAME,
            _FRAME,
            (
                job_id,
                seq,
                frame if isinstance(frame, int) else None,
                float(timestamp) if isinstance(timestamp, int | float) else None,
                encode(item),
            ),
        )
    return True


def last(db: Database, job_id: str) -> Checkpoint | None:
    with db.read() as conn:
        row = conn.execute(
            select(job_checkpoints.c.state, job_checkpoints.c.frames, job_checkpoints.c.at).where(
                job_checkpoints.c.job_id == job_id
            )
        ).first()
    return None if row is None else Checkpoint(dict(row.state), int(row.frames), float(row.at))


def frames(db: Database, job_id: str, after: int, limit: int) -> list[FrameItem]:
    """Items with ``seq`` greater than ``after``, in order (``after=-1``: from the first)."""
    with db.read() as conn:
        rows = conn.execute(
            select(job_frames)
            .where(job_frames.c.job_id == job_id, job_frames.c.seq > after)
            .order_by(job_frames.c.seq)
            .limit(limit)
        ).all()
    return [FrameItem(row.seq, row.frame, row.timestamp_s, dict(row.item)) for row in rows]


_FENCE = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"), jobs.c.status == Status.RUNNING.value)
    .values(updated_at=bindparam("now"))
)
_FENCE_OWNED = _FENCE.where(jobs.c.lease_owner == bindparam("owner"))
_FRAMES_SO_FAR = select(job_checkpoints.c.frames).where(
    job_checkpoints.c.job_id == bindparam("job_id")
)
_DELETE_CHECKPOINT = delete(job_checkpoints).where(job_checkpoints.c.job_id == bindparam("job_id"))
_INSERT_CHECKPOINT = insert(job_checkpoints).values(
    {name: bindparam(name) for name in ("job_id", "state", "frames", "at")}
)
_FRAME = ("job_id", "seq", "frame", "timestamp_s", "item")
_INSERT_FRAME = insert(job_frames).values({name: bindparam(name) for name in _FRAME})
