"""Engine set-up and error helpers for the job store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import SQLAlchemyError

from lensforge.errors import StoreError

log = logging.getLogger("lensforge.store.store")


def configure_sqlite(engine: Engine) -> None:
    """WAL, and BEGIN IMMEDIATE for writes so concurrent writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("lensforge_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class StoreBusy(StoreError):
    """Another connection holds a lock and this one was told not to wait for it."""


def is_busy(exc: BaseException) -> bool:
    """Whether a driver error says the database is locked (SQLite's SQLITE_BUSY)."""
    text = str(exc)
    return "database is locked" in text or "database is busy" in text


def store_failed(exc: BaseException) -> StoreError:
    """A StoreError for callers; the database's own message (it may quote SQL) goes to the log."""
    log.error("job store failure: %s", exc, extra={"event": "store_failed"})
    return StoreError("The job store failed; the server log has the details. Try again shortly.")


def postgres_timeouts(connect_timeout_s: float, statement_timeout_s: float) -> dict[str, Any]:
    """libpq options that keep a hung or unreachable PostgreSQL from holding a caller:
    a connect timeout, a server-side statement timeout, and TCP keepalives plus a TCP user
    timeout for a server that stops answering on an open connection (SIGSTOP, a dead host)."""
    user_timeout_ms = int((connect_timeout_s + statement_timeout_s) * 1000)
    return {
        "connect_timeout": max(1, round(connect_timeout_s)),
        "options": f"-c statement_timeout={int(statement_timeout_s * 1000)}",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": user_timeout_ms,
    }


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Any database error inside becomes a StoreError (503 with Retry-After) saying that
    ``what`` failed; the driver's message, which may quote SQL, goes to the log only. For
    code outside the store that uses its engine (API keys, the audit trail)."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.error("%s failed: %s", what, exc, extra={"event": "store_failed"})
        raise StoreError(
            f"{what} failed: the job store is unavailable. Try again shortly."
        ) from exc


def redact_url(url: str) -> str:
    """A database URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
