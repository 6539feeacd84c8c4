"""JobStore: jobs and their events in any SQLAlchemy database (SQLite by default).

Every status change goes through :meth:`JobStore.transition`, a guarded update
(``... WHERE id = ? AND status = ?``) that appends an event row in the same transaction;
zero rows updated is :class:`~lensforge.errors.IllegalTransition`, never a silent overwrite.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from lensforge.errors import Conflict, IllegalTransition, StoreError
from lensforge.store.tables import Status, job_events, jobs

MIGRATIONS = Path(__file__).parent / "migrations"


def new_job_id() -> str:
    """A UUIDv7-style id: time-ordered, so ids sort by creation for keyset paging."""
    ns = time.time_ns()
    ms, sub = divmod(ns, 1_000_000)
    value = (ms & (2**48 - 1)) << 80
    value |= 0x7 << 76 | (sub * 4096 // 1_000_000) << 64
    value |= 0b10 << 62 | secrets.randbits(62)
    return str(uuid.UUID(int=value))


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job row."""

    id: str
    plugin: str
    tool: str
    status: Status
    inputs: dict[str, Any]
    result: Any
    error: dict[str, Any] | None
    traceback: str | None
    attempts: int
    max_attempts: int
    progress: float
    progress_message: str | None
    owner: str
    idempotency_key: str | None
    request_hash: str | None
    timeout_s: float | None
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: float | None
    not_before: float | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        data = dict(row._mapping)
        data["status"] = Status(data["status"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


_JOB_FIELDS = tuple(f.name for f in fields(JobRecord))


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    job_id: str
    from_status: str | None
    to_status: str
    at: float
    worker: str | None
    reason: str | None


@dataclass(frozen=True)
class NewJob:
    plugin: str
    tool: str
    inputs: dict[str, Any]
    owner: str = "anonymous"
    max_attempts: int = 1
    timeout_s: float | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    not_before: float | None = None


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class JobStore:
    """Thread-safe access to the job tables; one instance per process and database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
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
            raise StoreError(f"Cannot open the job store at {_redact(url)}: {exc}") from exc
        if self.is_sqlite:
            _configure_sqlite(self.engine)

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
            raise StoreError(f"The job store failed: {exc.orig}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(lensforge_read=True)
                yield conn
        except OperationalError as exc:
            raise StoreError(f"The job store failed: {exc.orig}") from exc

    # -- writes ----------------------------------------------------------------------------

    def create(self, new: NewJob) -> tuple[JobRecord, bool]:
        """Insert a PENDING job; with an idempotency key, return the existing job instead.

        Returns ``(job, created)``. The same key with a different request is a Conflict.
        """
        if new.idempotency_key is not None:
            existing = self._by_idempotency_key(new.owner, new.idempotency_key)
            if existing is not None:
                return self._check_same_request(existing, new), False
        now = time.time()
        row = {
            "id": new_job_id(),
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
        try:
            with self._write() as conn:
                created = conn.execute(insert(jobs).values(row).returning(jobs)).one()
                conn.execute(
                    insert(job_events).values(
                        job_id=row["id"], from_status=None, to_status=Status.PENDING.value, at=now
                    )
                )
        except IntegrityError:
            if new.idempotency_key is None:
                raise
            existing = self._by_idempotency_key(new.owner, new.idempotency_key)
            if existing is None:
                raise
            return self._check_same_request(existing, new), False
        return JobRecord.from_row(created), True

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
        with self._write() as conn:
            return _transition(
                conn, job_id, from_status, to_status, worker, reason, owned_by, values
            )

    def claim(
        self, worker: str, lease_s: float, limit: int, job_ids: Sequence[str] = ()
    ) -> list[JobRecord]:
        """Atomically move up to ``limit`` due PENDING jobs to RUNNING, leased to ``worker``.

        ``job_ids`` restricts the claim to those jobs (a server claiming the jobs it just
        accepted); without it the oldest due jobs are taken.
        """
        now = time.time()
        query = (
            select(jobs.c.id)
            .where(jobs.c.status == Status.PENDING.value)
            .where((jobs.c.not_before.is_(None)) | (jobs.c.not_before <= now))
            .order_by(jobs.c.id)
            .limit(limit)
        )
        if job_ids:
            query = query.where(jobs.c.id.in_(job_ids))
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        claimed = []
        with self._write() as conn:
            for job_id in conn.execute(query).scalars().all():
                try:
                    claimed.append(
                        _transition(
                            conn,
                            job_id,
                            Status.PENDING,
                            Status.RUNNING,
                            worker,
                            None,
                            None,
                            {
                                "lease_owner": worker,
                                "lease_expires_at": now + lease_s,
                                "started_at": now,
                                "attempts": jobs.c.attempts + 1,
                            },
                        )
                    )
                except IllegalTransition:
                    continue  # taken by another claimer between the select and the update
        return claimed

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
        with self._read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return JobRecord.from_row(row) if row else None

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


def _transition(
    conn: Connection,
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
    query = (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == from_status.value)
        .values(status=to_status.value, updated_at=now, **values)
        .returning(jobs)
    )
    if owned_by is not None:
        query = query.where(jobs.c.lease_owner == owned_by)
    row = conn.execute(query).first()
    if row is None:
        current = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        raise IllegalTransition(
            f"Job {job_id} cannot go from {from_status.value} to {to_status.value}: "
            f"it is {current or 'missing'}"
            + (" or leased to another worker" if owned_by and current == from_status else "")
            + ".",
            job_id=job_id,
            details={"from": from_status.value, "to": to_status.value, "current": current},
        )
    conn.execute(
        insert(job_events).values(
            job_id=job_id,
            from_status=from_status.value,
            to_status=to_status.value,
            at=now,
            worker=worker,
            reason=reason,
        )
    )
    return JobRecord.from_row(row)


def _configure_sqlite(engine: Engine) -> None:
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


def _redact(url: str) -> str:
    """A database URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


__all__ = ["Event", "JobRecord", "JobStore", "NewJob", "new_job_id"]
