"""The store's connection to its database: engine, migrations, transactions, batches.

Synchronous and private to the store package. A write transaction runs compiled statements
on a raw DBAPI connection (:class:`~lensforge.store.dbapi.Tx`); :meth:`Database.batch` runs
many operations in one of them (the unit of group commit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from lensforge.errors import StoreError
from lensforge.store.dbapi import StatementCache, Tx, json_dumps, json_loads
from lensforge.store.engine import (
    StoreBusy,
    configure_sqlite,
    is_busy,
    postgres_timeouts,
    redact_url,
    store_failed,
)

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x4C46_4D49  # PostgreSQL advisory lock key held while migrating ("LFMI")
log = logging.getLogger(__name__)
Op = Callable[[Tx], Any]


class Database:
    """One database (SQLite or PostgreSQL) and its pool; thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 30.0,
        busy_timeout_s: float = 5.0,
    ) -> None:
        """``connect_timeout_s`` and ``statement_timeout_s`` bound PostgreSQL (a hung server
        costs a request that long, then 503); ``busy_timeout_s`` bounds how long a SQLite
        writer waits for another's write lock (then 503 with Retry-After)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {
            "json_serializer": json_dumps,
            "json_deserializer": json_loads,
        }
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_s}
            path = url.split("///", 1)[1] if "///" in url else ""
            if path in ("", ":memory:"):
                options["poolclass"] = StaticPool
            else:
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            options["pool_pre_ping"] = True
            options["pool_size"] = 10
            options["pool_timeout"] = connect_timeout_s
            options["connect_args"] = postgres_timeouts(connect_timeout_s, statement_timeout_s)
        try:
            self.engine: Engine = create_engine(url, **options)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"Cannot open the job store at {redact_url(url)}: {exc}") from exc
        if self.is_sqlite:
            configure_sqlite(self.engine)
        self.statements = StatementCache(self.engine.dialect)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic), one process at a time.

        Servers starting together on one fresh database would each create ``alembic_version``
        and all but one fail; so the upgrade runs under a lock: on PostgreSQL a transaction
        advisory lock (released at commit), on SQLite the write lock (``BEGIN IMMEDIATE``,
        see :func:`~lensforge.store.engine.configure_sqlite`). Whoever waited then finds the
        schema at head and has nothing to do.
        """
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"Cannot migrate the job store: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def connect(self) -> Any:
        """A DBAPI connection of the pool (for callers that keep one: see StoreWriter)."""
        dbapi: Any = self.engine.dialect.dbapi
        try:
            return self.engine.raw_connection()
        except (SQLAlchemyError, dbapi.Error) as exc:  # the pool hands on the driver's own
            raise store_failed(exc) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only SQLAlchemy connection (no write lock on SQLite)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(lensforge_read=True)
                yield conn
        except SQLAlchemyError as exc:  # every database error, not only "operational" ones
            raise store_failed(exc) from exc

    @contextmanager
    def raw_read(self, raw: Any = None) -> Iterator[Any]:
        """A DBAPI connection for reads (the caller's ``raw``, or one from the pool, returned
        after a commit); any driver error becomes a StoreError."""
        dbapi: Any = self.engine.dialect.dbapi
        own = raw is None
        try:
            if own:
                raw = self.connect()
            try:
                yield raw
                if own:
                    raw.commit()
            finally:
                if own:
                    raw.close()
        except dbapi.Error as exc:
            raise store_failed(exc) from exc

    def tx_on(self, raw: Any) -> Tx:
        """A Tx on ``raw`` outside any transaction of ours (reads of what is committed)."""
        return Tx(self.statements, raw.cursor(), is_sqlite=self.is_sqlite)

    @contextmanager
    def transaction(self, raw: Any = None) -> Iterator[Tx]:
        """A write transaction on a raw DBAPI connection (the caller's, or one from the pool)."""
        dbapi: Any = self.engine.dialect.dbapi
        own = raw is None
        if own:
            raw = self.connect()
        try:
            cursor = raw.cursor()
            if self.is_sqlite:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                except dbapi.OperationalError as exc:
                    if is_busy(exc):
                        raise StoreBusy("Another process holds the store's write lock.") from exc
                    raise
            try:
                tx = Tx(self.statements, cursor, is_sqlite=self.is_sqlite)
                yield tx
                tx.flush()
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
        except dbapi.Error as exc:
            raise store_failed(exc) from exc  # BEGIN, COMMIT or ROLLBACK itself failed
        finally:
            if own:
                raw.close()

    def batch(self, ops: Sequence[Op], *, raw: Any = None) -> list[Any]:
        """Run every op in one transaction: one commit for all of them (group commit).

        Returns, in order, each op's result, or the exception it raised; a failed op's writes
        are undone and the others still commit. If the transaction itself fails (the
        database is down, or with a caller's ``raw`` connection, busy: StoreBusy), it raises
        and nothing was written.
        """
        try:
            with self.transaction(raw) as tx:
                return [op(tx) for op in ops]
        except StoreError:
            raise
        except Exception as exc:
            if len(ops) == 1:
                return [exc]
        # One op failed and took the batch with it: run them again, a savepoint each, so
        # that only the failing ones fail. (An op may run twice; only one run commits.)
        results: list[Any] = []
        with self.transaction(raw) as tx:
            for op in ops:
                try:
                    with tx.savepoint():
                        results.append(op(tx))
                except StoreError:
                    raise  # the database failed: so does the whole batch
                except Exception as exc:
                    results.append(exc)
        return results

    def run(self, op: Op) -> Any:
        """One op in a transaction of its own; its result, or the exception it raised."""
        (result,) = self.batch([op])
        if isinstance(result, BaseException):
            raise result
        return result
