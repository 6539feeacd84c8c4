"""The job store's domain API, as a Protocol: what the execution services may ask of a store.

Two implementations satisfy it and pass the same contract suite
(``tests/integration/test_store_contract.py``): :class:`~lensforge.store.JobStore` (SQLite or
PostgreSQL) and :class:`~lensforge.testing.InMemoryJobStore` (dicts, for tests).

Semantics every implementation keeps:

- every status change is a guarded transition (from a given status, optionally fenced by
  the lease owner ``owned_by``) that appends an event; a refused one is IllegalTransition
  and changes nothing;
- ``create`` with an idempotency key returns the owner's existing job for the same request
  hash, and raises Conflict for another;
- ``claim`` moves due PENDING jobs to RUNNING (fairly across owners, oldest first within
  one), counts an attempt and leases them;
- JSON values (inputs, results, errors) come back as they went in, number types included;
- a checkpoint (resume state + new frame items) is stored whole or not at all, only while
  the job is RUNNING (and leased to the writer when fenced); items are numbered from 0.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from lensforge.store.notices import Notice
from lensforge.store.records import Checkpoint, Event, FrameItem, JobRecord, NewJob
from lensforge.store.tables import Status


class JobStoreProtocol(Protocol):
    """Async domain operations on jobs, their events and blob ownership."""

    async def start(self) -> None:
        """Get ready to write (group commit, connections); reads work without it."""

    async def stop(self) -> None:
        """Finish queued writes and release what :meth:`start` took."""

    # -- writes -----------------------------------------------------------------------------

    def create(
        self,
        new: NewJob,
        *,
        claim_for: str | None = None,
        lease_s: float = 30.0,
        blobs: Sequence[str] = (),
    ) -> Awaitable[tuple[JobRecord, bool]]:
        """Insert a PENDING job (RUNNING and leased to ``claim_for`` if given), or find its
        idempotent twin; ``(job, created)``. ``blobs``: digests the owner may read now."""
        ...

    async def transition(
        self,
        job_id: str,
        from_status: Status,
        to_status: Status,
        *,
        worker: str | None = None,
        reason: str | None = None,
        owned_by: str | None = None,
        known: JobRecord | None = None,
        **values: Any,
    ) -> JobRecord:
        """Move a job between statuses, setting ``values``; ``owned_by`` fences on the lease
        owner; ``known`` is the job as the caller last saw it in ``from_status``."""
        ...

    async def finish(
        self,
        job: JobRecord,
        to_status: Status,
        values: dict[str, Any],
        *,
        worker: str | None = None,
        reason: str | None = None,
        owned_by: str | None = None,
        artifacts: Sequence[str] = (),
        claim_next: int = 0,
        lease_s: float = 30.0,
        per_owner: int = 0,
    ) -> tuple[JobRecord, list[JobRecord]]:
        """Transition ``job`` from its status (as known), let its owner read ``artifacts``,
        and claim up to ``claim_next`` more jobs for ``worker`` (as :meth:`claim`), all at
        once."""
        ...

    async def claim(
        self,
        worker: str,
        lease_s: float,
        limit: int,
        job_ids: Sequence[str] = (),
        *,
        per_owner: int = 0,
    ) -> list[JobRecord]:
        """Move up to ``limit`` due PENDING jobs (of ``job_ids`` if given) to RUNNING, fairly:
        an owner's k-th pending job ranks (its RUNNING jobs) + k, lowest rank first, then
        oldest; with ``per_owner`` > 0, no owner gets more than that many RUNNING."""
        ...

    def listen(self, deliver: Callable[[Notice], None]) -> bool:
        """Have ``deliver`` called (on the running event loop) with each notice of jobs that
        ended or became PENDING in any process; False when this store sends none (then
        callers poll)."""
        ...

    async def renew_leases(self, lease_owner: str, job_ids: Sequence[str], lease_s: float) -> int:
        """Extend the leases ``lease_owner`` still holds on RUNNING jobs; how many."""
        ...

    async def set_progress(
        self, job_id: str, fraction: float, message: str | None, lease_owner: str | None = None
    ) -> bool:
        """Record progress of a RUNNING job (of that lease owner if given); whether it did."""
        ...

    async def request_cancel(self, job_id: str) -> None: ...

    async def add_blob_owners(self, pairs: Sequence[tuple[str, str]]) -> None: ...

    async def save_checkpoint(
        self,
        job_id: str,
        state: dict[str, Any],
        items: Sequence[dict[str, Any]] = (),
        lease_owner: str | None = None,
    ) -> bool:
        """Store a RUNNING job's resume ``state`` and append its new per-frame ``items``, in
        one transaction, fenced on ``lease_owner`` if given; whether it did."""
        ...

    # -- reads ------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord]: ...

    async def list(
        self,
        *,
        status: Status | None = None,
        plugin: str | None = None,
        tool: str | None = None,
        owner: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[JobRecord]:
        """Jobs newest first; ``before`` is the keyset cursor (the last id of a page)."""
        ...

    async def events(self, job_id: str) -> builtins.list[Event]: ...

    async def count(self, status: Status) -> int: ...

    async def counts(self) -> dict[str, int]: ...

    async def expired_leases(
        self, now: float | None = None, limit: int = 500
    ) -> builtins.list[JobRecord]: ...

    async def running_owned_by(self, owner_prefix: str) -> builtins.list[JobRecord]: ...

    async def owns_blob(self, digest: str, owner: str) -> bool: ...

    async def ping(self) -> None: ...

    async def checkpoint(self, job_id: str) -> Checkpoint | None:
        """The job's last checkpoint, or None if it never wrote one."""
        ...

    async def frames(
        self, job_id: str, *, after: int = -1, limit: int = 100
    ) -> builtins.list[FrameItem]:
        """The job's frame items with ``seq`` above ``after``, in order (keyset paging)."""
        ...

    @property
    def write_stats(self) -> tuple[int, int]:
        """Write transactions run so far, and the writes they carried (group commit)."""
        ...
