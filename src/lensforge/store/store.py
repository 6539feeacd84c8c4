"""JobStore: jobs and their events in any SQLAlchemy database (SQLite by default).

Every status change goes through :func:`_transition`, a guarded update
(``... WHERE id = ? AND status = ?``) that appends an event row in the same transaction;
zero rows updated is :class:`~lensforge.errors.IllegalTransition`, never a silent overwrite.

Every write method takes an optional ``tx``: without one it is its own transaction; with one
(see :meth:`JobStore.batch`) it joins a transaction shared with other writes, so that many
jobs' changes cost one commit (group commit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Engine,
    bindparam,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from lensforge.errors import Conflict, IllegalTransition, StoreError
from lensforge.store.dbapi import Compiled, Tx, json_dumps, json_loads
from lensforge.store.engine import StoreBusy, configure_sqlite, is_busy, redact_url, store_failed
from lensforge.store.queries import JobQueries
from lensforge.store.records import Event, JobRecord, NewJob, new_job_id
from lensforge.store.tables import Status, blob_owners, job_events, jobs

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
T = TypeVar("T")


class _Joined:
    """``with store._joined(tx) as tx:`` the caller's transaction, or a new one."""

    __slots__ = ("_own", "_store", "_tx")

    def __init__(self, store: JobStore, tx: Tx | None) -> None:
        self._store, self._tx = store, tx
        self._own: Any = None

    def __enter__(self) -> Tx:
        if self._tx is not None:
            return self._tx
        self._own = self._store._hot()
        tx: Tx = self._own.__enter__()
        return tx

    def __exit__(self, *exc: Any) -> Any:
        return None if self._own is None else self._own.__exit__(*exc)


class JobStore(JobQueries):
    """Thread-safe access to the job tables; one instance per process and database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {
            "json_serializer": json_dumps,
            "json_deserializer": json_loads,
        }
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
            path = url.split("///", 1)[1] if "///" in url else ""
            if path in ("", ":memory:"):
                options["poolclass"] = StaticPool
            else:
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            options["pool_pre_ping"] = True
            options["pool_size"] = 10
        try:
            self.engine: Engine = create_engine(url, **options)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"Cannot open the job store at {redact_url(url)}: {exc}") from exc
        if self.is_sqlite:
            configure_sqlite(self.engine)
        self._compiled: dict[int, Compiled] = {}
        self._claim_query = self._lockable(_CLAIMABLE)

    # -- lifecycle -------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"Cannot migrate the job store: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def connect(self) -> Any:
        """A DBAPI connection of this store's pool, for :meth:`batch` callers that keep one."""
        try:
            return self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise store_failed(exc) from exc

    @contextmanager
    def _hot(self, raw: Any = None) -> Iterator[Tx]:
        """A write transaction on a raw DBAPI connection (the caller's, or one from the pool).

        Statements are still SQLAlchemy constructs, compiled once for this dialect; running
        them on the DBAPI cursor skips the per-execution machinery, which costs more than
        SQLite itself takes for these small statements.
        """
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
                tx = Tx(self, cursor)
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

    def _joined(self, tx: Tx | None) -> _Joined:
        """The caller's transaction, or a new one of our own."""
        return _Joined(self, tx)

    def _compile(self, statement: Any, cache: bool = True) -> Compiled:
        key = id(statement)
        compiled = self._compiled.get(key) if cache else None
        if compiled is None:
            c = statement.compile(
                dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True}
            )
            order = tuple(c.positiontup) if c.positional and c.positiontup else None
            compiled = Compiled.of(str(c), order, dict(c.params))
            if cache:
                self._compiled[key] = compiled
        return compiled

    # -- group commit ----------------------------------------------------------------------

    def batch(self, ops: Sequence[Callable[[Tx], Any]], *, raw: Any = None) -> list[Any]:
        """Run every op in one transaction: one commit for all of them (group commit).

        Returns, in order, each op's result, or the exception it raised; a failed op's writes
        are undone and the others still commit. If the transaction itself
        fails (the database is down, or with a caller's ``raw`` connection, busy: StoreBusy),
        it raises and nothing was written.
        """
        try:
            with self._hot(raw) as tx:
                return [op(tx) for op in ops]
        except StoreError:
            raise
        except Exception as exc:
            if len(ops) == 1:
                return [exc]
        # One op failed and took the batch with it: run them again, a savepoint each, so
        # that only the failing ones fail. (An op may run twice; only one run commits.)
        results: list[Any] = []
        with self._hot(raw) as tx:
            for op in ops:
                try:
                    with tx.savepoint():
                        results.append(op(tx))
                except StoreError:
                    raise  # the database failed: so does the whole batch
                except Exception as exc:
                    results.append(exc)
        return results

    # -- writes ----------------------------------------------------------------------------

    def create(
        self,
        new: NewJob,
        *,
        claim_for: str | None = None,
        lease_s: float = 30.0,
        tx: Tx | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert a PENDING job; with an idempotency key, return the existing job instead.

        Returns ``(job, created)``. The same key with a different request is a Conflict.
        With ``claim_for``, the job is inserted already claimed by that worker (RUNNING,
        leased, its first attempt counted), and both events (→ PENDING, PENDING → RUNNING)
        are written in the same transaction: a server with idle capacity saves a round trip
        and nobody ever sees the job unclaimed.
        """
        now = time.time()
        job_id = new_job_id()
        claimed = claim_for is not None
        row: dict[str, Any] = {
            "id": job_id,
            "plugin": new.plugin,
            "tool": new.tool,
            "status": (Status.RUNNING if claimed else Status.PENDING).value,
            "inputs": new.inputs,
            "result": None,
            "error": None,
            "traceback": None,
            "attempts": 1 if claimed else 0,
            "max_attempts": new.max_attempts,
            "progress": 0.0,
            "progress_message": None,
            "owner": new.owner,
            "idempotency_key": new.idempotency_key,
            "request_hash": new.request_hash,
            "timeout_s": new.timeout_s,
            "cancel_requested": False,
            "lease_owner": claim_for,
            "lease_expires_at": now + lease_s if claimed else None,
            "not_before": new.not_before,
            "created_at": now,
            "updated_at": now,
            "started_at": now if claimed else None,
            "finished_at": None,
        }
        with self._joined(tx) as joined:
            if new.idempotency_key is None:
                joined.run(_INSERT_JOB, row)
            else:
                existing = self._by_idempotency_key(new.owner, new.idempotency_key, joined)
                if existing is not None:
                    return self._check_same_request(existing, new), False
                try:
                    with joined.savepoint():  # PostgreSQL aborts a transaction on error
                        joined.run(_INSERT_JOB, row)
                except IntegrityError:  # a concurrent twin with the same key won the race
                    existing = self._by_idempotency_key(new.owner, new.idempotency_key, joined)
                    if existing is None:
                        raise
                    return self._check_same_request(existing, new), False
            pending = _VALUES[Status.PENDING]
            joined.later(_INSERT_EVENT, _EVENT, (job_id, None, pending, now, None, None))
            if claimed:
                joined.later(
                    _INSERT_EVENT, _EVENT, (job_id, pending, row["status"], now, claim_for, None)
                )
        return JobRecord.from_mapping(row), True

    @staticmethod
    def _by_idempotency_key(owner: str, key: str, tx: Tx) -> JobRecord | None:
        # Inside the write transaction: a batch sees its own uncommitted jobs too.
        found = tx.records(_BY_IDEMPOTENCY_KEY, {"owner": owner, "key": key})
        return found[0] if found else None

    @staticmethod
    def _check_same_request(existing: JobRecord, new: NewJob) -> JobRecord:
        if existing.request_hash != new.request_hash:
            raise Conflict(
                "This Idempotency-Key was used with a different request; use a new key.",
                job_id=existing.id,
                details={"idempotency_key": new.idempotency_key},
            )
        return existing

    def transition(
        self,
        job_id: str,
        from_status: Status,
        to_status: Status,
        *,
        worker: str | None = None,
        reason: str | None = None,
        owned_by: str | None = None,
        known: JobRecord | None = None,
        tx: Tx | None = None,
        **values: Any,
    ) -> JobRecord:
        """Move a job from ``from_status`` to ``to_status``, setting ``values`` too.

        With ``owned_by``, the update also requires that the job is still leased to that
        owner (fencing: a worker whose lease was taken over cannot complete the job).
        ``known`` is the job as the caller last saw it in ``from_status``: then only the
        columns that can change without a transition are read back (see ``_READ_BACK``).
        """
        with self._joined(tx) as joined:
            return _transition(
                joined, job_id, from_status, to_status, worker, reason, owned_by, values, known
            )

    def claim(
        self,
        worker: str,
        lease_s: float,
        limit: int,
        job_ids: Sequence[str] = (),
        *,
        tx: Tx | None = None,
    ) -> list[JobRecord]:
        """Atomically move up to ``limit`` due PENDING jobs to RUNNING, leased to ``worker``.

        ``job_ids`` restricts the claim to those jobs (a server claiming the jobs it just
        accepted); without it the oldest due jobs are taken.
        """
        with self._joined(tx) as joined:
            return self._claim(joined, worker, lease_s, limit, job_ids)

    def transition_and_claim(
        self,
        job_id: str,
        from_status: Status,
        to_status: Status,
        *,
        worker: str,
        lease_s: float,
        limit: int,
        reason: str | None = None,
        owned_by: str | None = None,
        known: JobRecord | None = None,
        tx: Tx | None = None,
        **values: Any,
    ) -> tuple[JobRecord, list[JobRecord]]:
        """Finish one job and claim up to ``limit`` more for ``worker``, in one transaction."""
        with self._joined(tx) as joined:
            updated = _transition(
                joined, job_id, from_status, to_status, worker, reason, owned_by, values, known
            )
            claimed = self._claim(joined, worker, lease_s, limit) if limit > 0 else []
        return updated, claimed

    def _claim(
        self, tx: Tx, worker: str, lease_s: float, limit: int, job_ids: Sequence[str] = ()
    ) -> list[JobRecord]:
        now = time.time()
        if job_ids:
            names = [f"id_{i}" for i in range(len(job_ids))]
            query = _CLAIMABLE.where(jobs.c.id.in_([bindparam(name) for name in names]))
            params = {"now": now, "limit": limit, **dict(zip(names, job_ids, strict=True))}
            rows = tx.rows(self._lockable(query), params, cache=False)
        else:
            rows = tx.rows(self._claim_query, {"now": now, "limit": limit})
        claimed = []
        for (job_id,) in rows:
            try:
                claimed.append(_claim_one(tx, job_id, worker, lease_s, now))
            except IllegalTransition:
                continue  # taken by another claimer between the select and the update
        return claimed

    def _lockable(self, query: Any) -> Any:
        # PostgreSQL: concurrent claimers skip each other's rows instead of queueing on them.
        return query if self.is_sqlite else query.with_for_update(skip_locked=True)

    def renew_leases(
        self, lease_owner: str, job_ids: Sequence[str], lease_s: float, *, tx: Tx | None = None
    ) -> int:
        """Heartbeat: extend the leases ``lease_owner`` still holds; returns how many."""
        if not job_ids:
            return 0
        renewed = 0
        with self._joined(tx) as joined:
            for job_id in job_ids:
                joined.run(
                    _RENEW_LEASE,
                    {"job_id": job_id, "owner": lease_owner, "until": time.time() + lease_s},
                )
                renewed += max(joined.cursor.rowcount, 0)
        return renewed

    def set_progress(
        self,
        job_id: str,
        fraction: float,
        message: str | None,
        lease_owner: str | None = None,
        *,
        tx: Tx | None = None,
    ) -> bool:
        statement = _SET_PROGRESS if lease_owner is None else _SET_PROGRESS_OWNED
        params = {"job_id": job_id, "fraction": fraction, "message": message}
        params |= {"now": time.time(), "owner": lease_owner}
        with self._joined(tx) as joined:
            joined.run(statement, params)
            return bool(joined.cursor.rowcount)

    def request_cancel(self, job_id: str, *, tx: Tx | None = None) -> None:
        with self._joined(tx) as joined:
            joined.run(_REQUEST_CANCEL, {"job_id": job_id, "now": time.time()})

    def add_blob_owners(self, pairs: Sequence[tuple[str, str]], *, tx: Tx | None = None) -> None:
        """Record that ``owner`` may read blob ``digest`` (hex), for each pair."""
        if not pairs:
            return
        with self._joined(tx) as joined:
            for digest, owner in sorted(set(pairs)):
                params = {"digest": digest, "owner": owner}
                if not joined.rows(_BLOB_OWNED, params):
                    joined.run(_INSERT_BLOB_OWNER, params)


# Statements built once: constructing SQLAlchemy statements per call costs more than SQLite.
_INSERT_JOB = insert(jobs)
_EVENT = ("job_id", "from_status", "to_status", "at", "worker", "reason")
_INSERT_EVENT = insert(job_events).values({name: bindparam(name) for name in _EVENT})
_SELECT_STATUS = select(jobs.c.status).where(jobs.c.id == bindparam("job_id"))
_BY_IDEMPOTENCY_KEY = select(jobs).where(
    jobs.c.owner == bindparam("owner"), jobs.c.idempotency_key == bindparam("key")
)
_CLAIMABLE = (
    select(jobs.c.id)
    .where(jobs.c.status == Status.PENDING.value)
    .where(jobs.c.not_before.is_(None) | (jobs.c.not_before <= bindparam("now")))
    .order_by(jobs.c.id)
    .limit(bindparam("limit"))
)
_RENEW_LEASE = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"), jobs.c.lease_owner == bindparam("owner"))
    .where(jobs.c.status == Status.RUNNING.value)
    .values(lease_expires_at=bindparam("until"))
)
_SET_PROGRESS = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"), jobs.c.status == Status.RUNNING.value)
    .values(
        progress=bindparam("fraction"),
        progress_message=bindparam("message"),
        updated_at=bindparam("now"),
    )
)
_SET_PROGRESS_OWNED = _SET_PROGRESS.where(jobs.c.lease_owner == bindparam("owner"))
_REQUEST_CANCEL = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"))
    .values(cancel_requested=True, updated_at=bindparam("now"))
)
_BLOB_OWNED = select(blob_owners.c.digest).where(
    blob_owners.c.digest == bindparam("digest"), blob_owners.c.owner == bindparam("owner")
)
_INSERT_BLOB_OWNER = insert(blob_owners).values(
    digest=bindparam("digest"), owner=bindparam("owner")
)
_VALUES = {status: status.value for status in Status}  # cheaper than .value on the hot path
# The one SQL expression a transition sets: claiming counts an attempt.
NEXT_ATTEMPT = jobs.c.attempts + 1

_UPDATES: dict[tuple[Any, ...], tuple[Any, tuple[str, ...]]] = {}


# Columns that change without a status transition (progress reports, lease renewals, cancel
# requests, claims counting an attempt): what a transition reads back when the caller knows
# the job as it was in ``from_status``. The others are fixed at creation or set only by
# transitions, which the guard on ``from_status`` orders.
_READ_BACK = (
    "attempts",
    "progress",
    "progress_message",
    "cancel_requested",
    "lease_owner",
    "lease_expires_at",
)


def _update_statement(
    values: dict[str, Any], fenced: bool, narrow: bool
) -> tuple[Any, tuple[str, ...]]:
    """The guarded UPDATE for this set of columns, built once and cached, and the columns it
    returns when ``narrow``: the ``_READ_BACK`` ones it does not set itself (else every one)."""
    key = (fenced, narrow, *sorted((k, v is NEXT_ATTEMPT) for k, v in values.items()))
    cached = _UPDATES.get(key)
    if cached is None:
        assignments: dict[str, Any] = {}
        for k, v in values.items():
            if isinstance(v, ColumnElement) and v is not NEXT_ATTEMPT:
                raise ValueError(f"a transition sets only values and NEXT_ATTEMPT, not {v}")
            assignments[k] = v if v is NEXT_ATTEMPT else bindparam(f"v_{k}")
        read_back = tuple(
            name for name in _READ_BACK if name not in values or values[name] is NEXT_ATTEMPT
        )
        statement = (
            update(jobs)
            .where(jobs.c.id == bindparam("job_id"), jobs.c.status == bindparam("from_status"))
            .values(status=bindparam("to_status"), updated_at=bindparam("now"), **assignments)
            .returning(*([jobs.c[name] for name in read_back] if narrow else [jobs]))
        )
        if fenced:
            statement = statement.where(jobs.c.lease_owner == bindparam("owned_by"))
        cached = _UPDATES[key] = (statement, read_back)
    return cached


def _known_after(
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


def _claim_one(tx: Tx, job_id: str, worker: str, lease_s: float, now: float) -> JobRecord:
    values = {
        "lease_owner": worker,
        "lease_expires_at": now + lease_s,
        "started_at": now,
        "attempts": NEXT_ATTEMPT,
    }
    return _transition(tx, job_id, Status.PENDING, Status.RUNNING, worker, None, None, values)


def _transition(
    tx: Tx,
    job_id: str,
    from_status: Status,
    to_status: Status,
    worker: str | None,
    reason: str | None,
    owned_by: str | None,
    values: dict[str, Any],
    known: JobRecord | None = None,
) -> JobRecord:
    """The one guarded status update; every status write in LensForge comes through here."""
    now = time.time()
    params = {f"v_{k}": v for k, v in values.items() if v is not NEXT_ATTEMPT}
    before, after = _VALUES[from_status], _VALUES[to_status]
    params |= {"job_id": job_id, "from_status": before}
    params |= {"to_status": after, "now": now, "owned_by": owned_by}
    if known is not None and known.id == job_id and known.status is from_status:
        statement, read_back = _update_statement(values, owned_by is not None, narrow=True)
        rows = tx.rows(statement, params)
        updated = [_known_after(known, to_status, now, values, read_back, rows[0])] if rows else []
    else:
        statement, _ = _update_statement(values, owned_by is not None, narrow=False)
        updated = tx.records(statement, params)
    if not updated:
        found = tx.rows(_SELECT_STATUS, {"job_id": job_id})
        current = found[0][0] if found else None
        raise IllegalTransition(
            f"Job {job_id} cannot go from {from_status.value} to {to_status.value}: "
            f"it is {current or 'missing'}"
            + (" or leased to another worker" if owned_by and current == from_status else "")
            + ".",
            job_id=job_id,
            details={"from": from_status.value, "to": to_status.value, "current": current},
        )
    tx.later(_INSERT_EVENT, _EVENT, (job_id, before, after, now, worker, reason))
    return updated[0]


__all__ = ["Event", "JobRecord", "JobStore", "NewJob", "StoreBusy", "new_job_id"]
