"""JobStore: jobs and their events in any SQLAlchemy database (SQLite by default).

Every status change goes through :meth:`JobStore.transition`, a guarded update
(``... WHERE id = ? AND status = ?``) that appends an event row in the same transaction;
zero rows updated is :class:`~lensforge.errors.IllegalTransition`, never a silent overwrite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    bindparam,
    create_engine,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from lensforge.errors import Conflict, IllegalTransition, StoreError
from lensforge.store.dbapi import Compiled, Tx, json_dumps, json_loads
from lensforge.store.engine import configure_sqlite, redact_url, store_failed
from lensforge.store.records import Event, JobRecord, NewJob, new_job_id
from lensforge.store.tables import Status, blob_owners, job_events, jobs

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class JobStore:
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

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(select(1))

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise store_failed(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(lensforge_read=True)
                yield conn
        except OperationalError as exc:
            raise store_failed(exc) from exc

    @contextmanager
    def _hot(self) -> Iterator[Tx]:
        """A write transaction on the raw DBAPI connection, for the per-job hot path.

        Statements are still SQLAlchemy constructs, compiled once for this dialect; running
        them on the DBAPI cursor skips the per-execution machinery, which costs more than
        SQLite itself takes for these small statements.
        """
        dbapi = self.engine.dialect.dbapi
        assert dbapi is not None
        try:
            raw = self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise store_failed(exc) from exc
        try:
            cursor = raw.cursor()
            if self.is_sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            yield Tx(self, cursor)
            raw.commit()
        except BaseException as exc:
            raw.rollback()
            if isinstance(exc, dbapi.IntegrityError):
                raise IntegrityError(None, None, exc) from exc
            if isinstance(exc, dbapi.OperationalError):
                raise store_failed(exc) from exc
            raise
        finally:
            raw.close()

    def _compile(self, statement: Any, cache: bool = True) -> Compiled:
        key = id(statement)
        compiled = self._compiled.get(key) if cache else None
        if compiled is None:
            c = statement.compile(
                dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True}
            )
            order = tuple(c.positiontup) if c.positional and c.positiontup else None
            compiled = Compiled(str(c), order, dict(c.params))
            if cache:
                self._compiled[key] = compiled
        return compiled

    # -- writes ----------------------------------------------------------------------------

    def create(
        self, new: NewJob, *, claim_for: str | None = None, lease_s: float = 30.0
    ) -> tuple[JobRecord, bool]:
        """Insert a PENDING job; with an idempotency key, return the existing job instead.

        Returns ``(job, created)``. The same key with a different request is a Conflict.
        With ``claim_for``, the new job is also claimed for that worker in the same
        transaction (PENDING → RUNNING, both events written): a server with idle capacity
        saves a round trip.
        """
        if new.idempotency_key is not None:
            existing = self._by_idempotency_key(new.owner, new.idempotency_key)
            if existing is not None:
                return self._check_same_request(existing, new), False
        now = time.time()
        job_id = new_job_id()
        row: dict[str, Any] = {
            "id": job_id,
            "plugin": new.plugin,
            "tool": new.tool,
            "status": Status.PENDING.value,
            "inputs": new.inputs,
            "attempts": 0,
            "max_attempts": new.max_attempts,
            "progress": 0.0,
            "owner": new.owner,
            "idempotency_key": new.idempotency_key,
            "request_hash": new.request_hash,
            "timeout_s": new.timeout_s,
            "cancel_requested": False,
            "not_before": new.not_before,
            "created_at": now,
            "updated_at": now,
        }
        event = {"job_id": row["id"], "from_status": None, "to_status": Status.PENDING.value}
        try:
            with self._hot() as tx:
                tx.run(_INSERT_JOB, row)
                tx.run(_INSERT_EVENT, {**event, "at": now, "worker": None, "reason": None})
                if claim_for is not None:
                    return _claim_one(tx, job_id, claim_for, lease_s, now), True
        except IntegrityError:
            if new.idempotency_key is None:
                raise
            existing = self._by_idempotency_key(new.owner, new.idempotency_key)
            if existing is None:
                raise
            return self._check_same_request(existing, new), False
        defaults: dict[str, Any] = {
            "result": None,
            "error": None,
            "traceback": None,
            "progress_message": None,
        }
        defaults |= {"lease_owner": None, "lease_expires_at": None}
        defaults |= {"started_at": None, "finished_at": None}
        return JobRecord(**{**row, **defaults, "status": Status.PENDING}), True

    def _by_idempotency_key(self, owner: str, key: str) -> JobRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == key)
            ).first()
        return JobRecord.from_row(row) if row else None

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
        **values: Any,
    ) -> JobRecord:
        """Move a job from ``from_status`` to ``to_status``, setting ``values`` too.

        With ``owned_by``, the update also requires that the job is still leased to that
        owner (fencing: a worker whose lease was taken over cannot complete the job).
        """
        with self._hot() as tx:
            return _transition(tx, job_id, from_status, to_status, worker, reason, owned_by, values)

    def claim(
        self, worker: str, lease_s: float, limit: int, job_ids: Sequence[str] = ()
    ) -> list[JobRecord]:
        """Atomically move up to ``limit`` due PENDING jobs to RUNNING, leased to ``worker``.

        ``job_ids`` restricts the claim to those jobs (a server claiming the jobs it just
        accepted); without it the oldest due jobs are taken.
        """
        with self._hot() as tx:
            return self._claim(tx, worker, lease_s, limit, job_ids)

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
        **values: Any,
    ) -> tuple[JobRecord, list[JobRecord]]:
        """Finish one job and claim up to ``limit`` more for ``worker``, in one transaction."""
        with self._hot() as tx:
            updated = _transition(
                tx, job_id, from_status, to_status, worker, reason, owned_by, values
            )
            claimed = self._claim(tx, worker, lease_s, limit) if limit > 0 else []
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

    def renew_leases(self, lease_owner: str, job_ids: Sequence[str], lease_s: float) -> int:
        """Heartbeat: extend the leases ``lease_owner`` still holds; returns how many."""
        if not job_ids:
            return 0
        with self._write() as conn:
            result = conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(job_ids), jobs.c.lease_owner == lease_owner)
                .where(jobs.c.status == Status.RUNNING.value)
                .values(lease_expires_at=time.time() + lease_s)
            )
        return int(result.rowcount)

    def set_progress(
        self, job_id: str, fraction: float, message: str | None, lease_owner: str | None = None
    ) -> bool:
        query = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == Status.RUNNING.value)
            .values(progress=fraction, progress_message=message, updated_at=time.time())
        )
        if lease_owner is not None:
            query = query.where(jobs.c.lease_owner == lease_owner)
        with self._write() as conn:
            return bool(conn.execute(query).rowcount)

    def request_cancel(self, job_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(cancel_requested=True, updated_at=time.time())
            )

    # -- reads -----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.engine.raw_connection()
        try:
            rows = Tx(self, raw.cursor()).records(_SELECT_JOB, {"job_id": job_id})
            raw.commit()
        finally:
            raw.close()
        return rows[0] if rows else None

    def get_many(self, job_ids: Sequence[str]) -> list[JobRecord]:
        if not job_ids:
            return []
        with self._read() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.id.in_(job_ids))).all()
        return [JobRecord.from_row(row) for row in rows]

    def list_jobs(
        self,
        *,
        status: Status | None = None,
        plugin: str | None = None,
        tool: str | None = None,
        owner: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """Jobs newest first; ``before`` is the keyset cursor (the last id of the prior page)."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(jobs.c.status == status.value)
        if plugin is not None:
            query = query.where(jobs.c.plugin == plugin)
        if tool is not None:
            query = query.where(jobs.c.tool == tool)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if before is not None:
            query = query.where(jobs.c.id < before)
        with self._read() as conn:
            return [JobRecord.from_row(row) for row in conn.execute(query)]

    def expired_leases(self, now: float | None = None, limit: int = 500) -> list[JobRecord]:
        """RUNNING jobs whose lease ran out: their worker or machine is gone."""
        now = time.time() if now is None else now
        with self._read() as conn:
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.status == Status.RUNNING.value, jobs.c.lease_expires_at < now)
                .order_by(jobs.c.id)
                .limit(limit)
            ).all()
        return [JobRecord.from_row(row) for row in rows]

    def running_owned_by(self, owner_prefix: str) -> list[JobRecord]:
        """RUNNING jobs whose lease owner starts with ``owner_prefix`` (a host's workers)."""
        with self._read() as conn:
            rows = conn.execute(
                select(jobs).where(
                    jobs.c.status == Status.RUNNING.value,
                    jobs.c.lease_owner.startswith(owner_prefix, autoescape=True),
                )
            ).all()
        return [JobRecord.from_row(row) for row in rows]

    def add_blob_owners(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Record that ``owner`` may read blob ``digest`` (hex), for each pair."""
        if not pairs:
            return
        with self._write() as conn:
            for digest, owner in set(pairs):
                exists = conn.execute(
                    select(blob_owners.c.digest).where(
                        blob_owners.c.digest == digest, blob_owners.c.owner == owner
                    )
                ).first()
                if exists is None:
                    conn.execute(insert(blob_owners).values(digest=digest, owner=owner))

    def owns_blob(self, digest: str, owner: str) -> bool:
        with self._read() as conn:
            row = conn.execute(
                select(blob_owners.c.digest).where(
                    blob_owners.c.digest == digest, blob_owners.c.owner == owner
                )
            ).first()
        return row is not None

    def count(self, status: Status) -> int:
        with self._read() as conn:
            query = select(func.count()).select_from(jobs).where(jobs.c.status == status.value)
            return int(conn.execute(query).scalar_one())

    def events(self, job_id: str) -> list[Event]:
        with self._read() as conn:
            rows = conn.execute(
                select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
            ).all()
        return [Event(**row._mapping) for row in rows]

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
        counts = {status.value: 0 for status in Status}
        counts.update({status: int(n) for status, n in rows})
        return counts


# Statements built once: constructing SQLAlchemy statements per call costs more than SQLite.
_INSERT_JOB = insert(jobs)
_INSERT_EVENT = insert(job_events).values(
    {
        name: bindparam(name)
        for name in ("job_id", "from_status", "to_status", "at", "worker", "reason")
    }
)
_SELECT_JOB = select(jobs).where(jobs.c.id == bindparam("job_id"))
_SELECT_STATUS = select(jobs.c.status).where(jobs.c.id == bindparam("job_id"))
_CLAIMABLE = (
    select(jobs.c.id)
    .where(jobs.c.status == Status.PENDING.value)
    .where(jobs.c.not_before.is_(None) | (jobs.c.not_before <= bindparam("now")))
    .order_by(jobs.c.id)
    .limit(bindparam("limit"))
)


_UPDATES: dict[tuple[Any, ...], Any] = {}


def _update_statement(values: dict[str, Any], fenced: bool) -> Any:
    """The guarded UPDATE for this set of columns, built once and cached."""
    key = (
        fenced,
        *sorted((k, str(v) if isinstance(v, ColumnElement) else None) for k, v in values.items()),
    )
    statement = _UPDATES.get(key)
    if statement is None:
        assignments = {
            k: (v if isinstance(v, ColumnElement) else bindparam(f"v_{k}"))
            for k, v in values.items()
        }
        statement = (
            update(jobs)
            .where(jobs.c.id == bindparam("job_id"), jobs.c.status == bindparam("from_status"))
            .values(status=bindparam("to_status"), updated_at=bindparam("now"), **assignments)
            .returning(jobs)
        )
        if fenced:
            statement = statement.where(jobs.c.lease_owner == bindparam("owned_by"))
        _UPDATES[key] = statement
    return statement


def _claim_one(tx: Tx, job_id: str, worker: str, lease_s: float, now: float) -> JobRecord:
    values = {
        "lease_owner": worker,
        "lease_expires_at": now + lease_s,
        "started_at": now,
        "attempts": jobs.c.attempts + 1,
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
) -> JobRecord:
    """The one guarded status update; every status write in LensForge comes through here."""
    now = time.time()
    params = {f"v_{k}": v for k, v in values.items() if not isinstance(v, ColumnElement)}
    params |= {"job_id": job_id, "from_status": from_status.value}
    params |= {"to_status": to_status.value, "now": now, "owned_by": owned_by}
    updated = tx.records(_update_statement(values, owned_by is not None), params)
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
    tx.run(
        _INSERT_EVENT,
        {
            "job_id": job_id,
            "from_status": from_status.value,
            "to_status": to_status.value,
            "at": now,
            "worker": worker,
            "reason": reason,
        },
    )
    return updated[0]


__all__ = ["Event", "JobRecord", "JobStore", "NewJob", "new_job_id"]
