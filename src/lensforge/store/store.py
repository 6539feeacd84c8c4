"""JobStore: jobs and their events in SQLite or PostgreSQL, behind async domain operations.

What makes it fast stays inside, each in one place:

- **group commit** (:mod:`~lensforge.store.writer`): every write method queues an operation;
  those queued in one turn of the event loop share one transaction and one commit;
- **the DB-API hot path** (:mod:`~lensforge.store.dbapi`): statements compiled once per
  dialect, run on the driver's cursor;
- **the narrow read-back** (:mod:`~lensforge.store.readback`) when a transition's caller
  knows the job;
- **notices** (:mod:`~lensforge.store.notices`, PostgreSQL): one listening connection tells
  this server when jobs end or wait elsewhere, instead of polling the table;
- **claiming with creation or finishing** (``create(claim_for=...)``,
  ``finish(claim_next=...)``): one transaction instead of two;
- **reads**: on a small thread pool; on SQLite a job by id on the writer's own connection,
  since one row by key costs less than a thread hop.

The statuses and the guarded transition live in :mod:`~lensforge.store.writes`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine

from lensforge.store import checkpoints, reads, writes
from lensforge.store.database import Database
from lensforge.store.dbapi import Tx
from lensforge.store.engine import StoreBusy
from lensforge.store.notices import Notice, NoticeListener
from lensforge.store.records import Checkpoint, Event, FrameItem, JobRecord, NewJob
from lensforge.store.tables import Status
from lensforge.store.writer import StoreWriter

T = TypeVar("T")


class JobStore:
    """The SQL implementation of :class:`~lensforge.store.protocol.JobStoreProtocol`.

    ``JobStore(url)`` opens the database; :meth:`migrate` brings its schema up to date. Reads
    work at once; writes are group-committed once :meth:`start` ran on the event loop, and
    run one transaction each before that.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 30.0,
        busy_timeout_s: float = 5.0,
    ) -> None:
        """``connect_timeout_s`` and ``statement_timeout_s`` bound PostgreSQL, and
        ``busy_timeout_s`` SQLite's wait for its write lock (see :class:`Database`)."""
        self._db = Database(
            url,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=statement_timeout_s,
            busy_timeout_s=busy_timeout_s,
        )
        self.url = url
        self.is_sqlite = self._db.is_sqlite
        self.engine: Engine = self._db.engine  # for the other tables (keys, audit)
        self._pool = ThreadPoolExecutor(
            2 if self.is_sqlite else 8, thread_name_prefix="lensforge-db"
        )
        self._writer = StoreWriter(self._db)
        self._listener: NoticeListener | None = None

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic)."""
        self._db.migrate()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._db.close()

    async def start(self) -> None:
        if not self._writer.started:
            await self._writer.start()

    async def stop(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await asyncio.get_running_loop().run_in_executor(None, listener.stop)
        await self._writer.stop()
        self._writer = StoreWriter(self._db)  # ready to start again

    @property
    def write_stats(self) -> tuple[int, int]:
        return self._writer.transactions, self._writer.writes

    # -- plumbing ---------------------------------------------------------------------------

    def _write(self, op: Callable[[Tx], T]) -> Awaitable[T]:
        """Queue ``op`` for the next group commit (a future: no task, no coroutine frame);
        before :meth:`start`, a coroutine running it in a transaction of its own."""
        if self._writer.started:
            return self._writer.submit(op)
        return self._alone(op)

    async def _alone(self, op: Callable[[Tx], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._db.run, op)

    async def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, self._db, *args, **kwargs))

    # -- writes -----------------------------------------------------------------------------

    def create(
        self,
        new: NewJob,
        *,
        claim_for: str | None = None,
        lease_s: float = 30.0,
        blobs: Sequence[str] = (),
    ) -> Awaitable[tuple[JobRecord, bool]]:
        # A future rather than a coroutine: a caller may attach callbacks that run even if
        # it stops waiting (JobExecutionService starts a job it claimed at creation that way).
        return self._write(
            partial(writes.create, new=new, claim_for=claim_for, lease_s=lease_s, blobs=blobs)
        )

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
        return await self._write(
            partial(
                writes.transition,
                job_id=job_id,
                from_status=from_status,
                to_status=to_status,
                values=values,
                worker=worker,
                reason=reason,
                owned_by=owned_by,
                known=known,
            )
        )

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
        return await self._write(
            partial(
                writes.finish,
                job=job,
                to_status=to_status,
                values=values,
                worker=worker,
                reason=reason,
                owned_by=owned_by,
                artifacts=artifacts,
                claim_next=claim_next,
                lease_s=lease_s,
                per_owner=per_owner,
            )
        )

    async def claim(
        self,
        worker: str,
        lease_s: float,
        limit: int,
        job_ids: Sequence[str] = (),
        *,
        per_owner: int = 0,
    ) -> list[JobRecord]:
        return await self._write(
            partial(
                writes.claim,
                worker=worker,
                lease_s=lease_s,
                limit=limit,
                job_ids=job_ids,
                per_owner=per_owner,
            )
        )

    def listen(self, deliver: Callable[[Notice], None]) -> bool:
        """On PostgreSQL, call ``deliver`` on this event loop for every job notice any
        server's transactions send (see :mod:`~lensforge.store.notices`); False on SQLite."""
        if self.is_sqlite:
            return False
        if self._listener is None:
            self._listener = NoticeListener(self.url, asyncio.get_running_loop(), deliver)
            self._listener.start()
        return True

    async def renew_leases(self, lease_owner: str, job_ids: Sequence[str], lease_s: float) -> int:
        if not job_ids:
            return 0
        return await self._write(
            partial(writes.renew_leases, lease_owner=lease_owner, job_ids=job_ids, lease_s=lease_s)
        )

    async def set_progress(
        self, job_id: str, fraction: float, message: str | None, lease_owner: str | None = None
    ) -> bool:
        return await self._write(
            partial(
                writes.set_progress,
                job_id=job_id,
                fraction=fraction,
                message=message,
                lease_owner=lease_owner,
            )
        )

    async def request_cancel(self, job_id: str) -> None:
        await self._write(partial(writes.request_cancel, job_id=job_id))

    async def add_blob_owners(self, pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            await self._write(partial(writes.add_blob_owners, pairs=pairs))

    async def save_checkpoint(
        self,
        job_id: str,
        state: dict[str, Any],
        items: Sequence[dict[str, Any]] = (),
        lease_owner: str | None = None,
    ) -> bool:
        return await self._write(
            partial(
                checkpoints.save, job_id=job_id, state=state, items=items, lease_owner=lease_owner
            )
        )

    # -- reads ------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        raw = self._writer.connection  # SQLite: one row by key costs less than a thread hop
        if raw is not None:
            with contextlib.suppress(StoreBusy):  # that connection never waits for a lock
                return reads.get(self._db, job_id, raw)
        return await self._read(reads.get, job_id)

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord]:
        return await self._read(reads.get_many, job_ids)

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
        return await self._read(
            reads.list_jobs,
            status=status,
            plugin=plugin,
            tool=tool,
            owner=owner,
            before=before,
            limit=limit,
        )

    async def events(self, job_id: str) -> builtins.list[Event]:
        return await self._read(reads.events, job_id)

    async def count(self, status: Status) -> int:
        return await self._read(reads.count, status)

    async def counts(self) -> dict[str, int]:
        return await self._read(reads.counts)

    async def expired_leases(
        self, now: float | None = None, limit: int = 500
    ) -> builtins.list[JobRecord]:
        return await self._read(reads.expired_leases, now, limit)

    async def running_owned_by(self, owner_prefix: str) -> builtins.list[JobRecord]:
        return await self._read(reads.running_owned_by, owner_prefix)

    async def owns_blob(self, digest: str, owner: str) -> bool:
        return await self._read(reads.owns_blob, digest, owner)

    async def ping(self) -> None:
        await self._read(reads.ping)

    async def checkpoint(self, job_id: str) -> Checkpoint | None:
        return await self._read(checkpoints.last, job_id)

    async def frames(
        self, job_id: str, *, after: int = -1, limit: int = 100
    ) -> builtins.list[FrameItem]:
        return await self._read(checkpoints.frames, job_id, after, limit)


__all__ = ["JobStore"]
