"""The narrow read-back: what a transition reads back when the caller knows the job.

A transition's ``UPDATE ... RETURNING`` would return the whole row, JSON inputs and all,
and the driver would decode every column again. When the caller holds the job as it was in
``from_status`` (``known=``), only the columns that can change *without* a transition are
read back (progress reports, lease renewals, cancel requests, claims counting an attempt);
the others are fixed at creation or set only by transitions, which the guard on
``from_status`` orders. This replaces the full read-back on the hot path (the finish of
every job); the contract suite checks that both give the row as stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lensforge.store.records import JobRecord
from lensforge.store.tables import Status, jobs

# The one SQL expression a transition may set: claiming counts an attempt.
NEXT_ATTEMPT = jobs.c.attempts + 1

READ_BACK = (
    "attempts",
    "progress",
    "progress_message",
    "cancel_requested",
    "lease_owner",
    "lease_expires_at",
)


def usable(known: JobRecord | None, job_id: str, from_status: Status) -> bool:
    """Whether ``known`` is the job as it was in ``from_status`` (else read the whole row)."""
    return known is not None and known.id == job_id and known.status is from_status


def columns(values: dict[str, Any]) -> tuple[str, ...]:
    """The columns to read back: those of :data:`READ_BACK` the update does not set."""
    return tuple(name for name in READ_BACK if name not in values or values[name] is NEXT_ATTEMPT)


def record_after(
    known: JobRecord,
    to_status: Status,
    now: float,
    values: dict[str, Any],
    read_back: tuple[str, ...],
    row: Sequence[Any],
) -> JobRecord:
    """The job after a narrow update: as the caller knew it, with what the update set and
    the columns read back (what others may have changed since)."""
    changed = dict(zip(read_back, row, strict=True))
    if "cancel_requested" in changed:
        changed["cancel_requested"] = bool(changed["cancel_requested"])  # SQLite gives 0/1
    set_here = {k: v for k, v in values.items() if v is not NEXT_ATTEMPT}
    return replace(known, status=to_status, updated_at=now, **set_here, **changed)
