"""Group commit: the writes of many concurrent jobs share one transaction.

Coroutines hand :class:`StoreWriter` a write operation (a function of the transaction, such as
``partial(writes.create, new=...)``) and await its result. Operations queued during one turn
of the event loop run together in one :meth:`Database.batch`: one commit for all of them,
and one operation's failure is its own. Private to the store package: the JobStore's write
methods queue their operations here.

Where the batch runs depends on the database:

- **SQLite**: on the event loop itself, on a connection kept for it. A batch is a few
  hundred microseconds of local file work; a thread hop costs about as much, and a thread
  that needs the GIL back after every statement waits on a busy event loop. This connection
  never waits for the write lock: if another process holds it, the batch (and those behind
  it, in order) goes to a thread that waits. Its WAL is checkpointed by a background thread,
  so that the copying and the fsync a checkpoint makes never stall the loop; once the log
  passes ``restart_frames`` pages the loop starts it over between two batches (the few
  pages left to copy, one fsync), which passive checkpoints alone never do under steady
  writes.
- **Other databases** (PostgreSQL): on a few threads, a batch each at a time, since every
  statement is a network round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lensforge.errors import StoreError
from lensforge.store.database import Database
from lensforge.store.dbapi import Tx
from lensforge.store.engine import StoreBusy

log = logging.getLogger(__name__)
T = TypeVar("T")
Op = Callable[[Tx], Any]

MAX_BATCH = 256  # operations per transaction
CHECKPOINT_INTERVAL_S = 1.0
RESTART_FRAMES = 4096  # pages in the WAL (4 KiB each) past which it is restarted


class StoreWriter:
    """Runs write operations on a :class:`Database` in batches; see the module docstring."""

    def __init__(
        self,
        db: Database,
        *,
        threads: int = 4,
        inline: bool | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        self.db = db
        self.checkpoint_interval_s = checkpoint_interval_s
        self.restart_frames = restart_frames
        self.transactions = 0  # batches run (one transaction each)
        self.writes = 0  # operations in them
        self.inline = db.is_sqlite if inline is None else inline
        self.threads = 1 if db.is_sqlite else max(1, threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lensforge-db-write")
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._in_flight = 0  # batches running on threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pooled: Any = None  # the event loop's own SQLite connection (pool checkout)
        self._conn: Any = None  # ... and the driver's connection inside it
        self._checkpointer: asyncio.Task[None] | None = None
        self._restart_wanted = False
        self._idle = asyncio.Event()
        self.started = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.started = True
        if self.inline:
            self._pooled = self.db.connect()
            self._conn = self._pooled.dbapi_connection  # no pool proxy on the hot path
            cursor = self._conn.cursor()
            cursor.execute("PRAGMA busy_timeout = 0")  # never wait on the loop: see above
            cursor.execute("PRAGMA wal_autocheckpoint = 0")
            cursor.close()
            self._checkpointer = asyncio.create_task(
                self._checkpoint_loop(), name="lensforge-wal-checkpoint"
            )

    async def stop(self) -> None:
        """Finish what is queued, then release the connection and the threads."""
        if not self.started:
            self._pool.shutdown(wait=True)
            return
        self.started = False
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        while self._queue or self._in_flight:
            self._idle.clear()
            self._schedule()
            await self._idle.wait()
        if self._pooled is not None:
            with contextlib.suppress(Exception):
                self._pooled.invalidate()  # its pragmas are ours: not back into the pool
            self._pooled = self._conn = None
        self._pool.shutdown(wait=True)

    @property
    def connection(self) -> Any:
        """The loop's own SQLite connection (inline mode, started), for quick reads there:
        only on its own event loop, and only while no batch runs on a thread."""
        if self.inline and self._in_flight == 0 and asyncio.get_running_loop() is self._loop:
            return self._conn
        return None

    async def run(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in the next batch; its result, or the exception it raised."""
        return await self.submit(op)

    def submit(self, op: Callable[[Tx], T]) -> asyncio.Future[T]:
        """Queue ``op`` for the next batch; the future holds its result or exception."""
        assert self._loop is not None, "start() the writer first"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.append((op, future))
        self._schedule()
        return future

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _take(self) -> list[tuple[Op, asyncio.Future[Any]]]:
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        self.transactions += 1
        self.writes += len(batch)
        return batch

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue:
            if self.inline and self._in_flight == 0:
                batch = self._take()
                try:
                    results = self.db.batch([op for op, _ in batch], raw=self._conn)
                except StoreBusy:
                    self._to_thread(batch)  # another process writes: wait for it on a thread
                    continue
                except Exception as exc:
                    results = [exc] * len(batch)
                self._deliver(batch, results)
                if self._restart_wanted:
                    self._restart()
            elif self._in_flight < self.threads:
                self._to_thread(self._take())
            else:
                return  # a thread's batch finishing flushes again
        if not self._in_flight:
            self._idle.set()

    def _to_thread(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        assert self._loop is not None
        self._in_flight += 1
        ops = [op for op, _ in batch]
        done = self._loop.run_in_executor(self._pool, self.db.batch, ops)
        done.add_done_callback(lambda finished: self._thread_done(batch, finished))

    def _thread_done(
        self, batch: list[tuple[Op, asyncio.Future[Any]]], finished: asyncio.Future[list[Any]]
    ) -> None:
        self._in_flight -= 1
        try:
            results = finished.result()
        except Exception as exc:
            results = [exc] * len(batch)
        self._deliver(batch, results)
        if self._queue:
            self._schedule()
        elif not self._in_flight:
            self._idle.set()

    @staticmethod
    def _deliver(batch: list[tuple[Op, asyncio.Future[Any]]], results: list[Any]) -> None:
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller gave up waiting; the write happened all the same
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _checkpoint_loop(self) -> None:
        assert self._loop is not None
        while True:
            await asyncio.sleep(self.checkpoint_interval_s)
            try:
                await self._loop.run_in_executor(self._pool, self._checkpoint)
            except StoreError:
                pass  # logged by the store; the next round tries again
            except Exception:
                log.exception("WAL checkpoint failed", extra={"event": "checkpoint_failed"})

    def _checkpoint(self) -> None:
        raw = self.db.connect()
        try:
            _, frames, _ = raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            raw.close()
        # A passive checkpoint copies pages without stopping writers, so under steady
        # writes it never catches up and the log never starts over: it would grow for
        # ever. Past a size, the loop restarts it between two batches (see _restart).
        self._restart_wanted = frames >= self.restart_frames

    def _restart(self) -> None:
        """Copy the few pages the last passive checkpoint missed and start the log over.

        Runs on the loop, between batches, so no write of ours is in the way; it never
        waits (a reader in the way makes it give up until the next round)."""
        self._restart_wanted = False
        try:
            self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except Exception:
            log.warning("WAL restart failed", exc_info=True, extra={"event": "wal_restart_failed"})
