"""The store's reads of jobs, events and blob ownership (synchronous; private to the package)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select

from lensforge.store.database import Database
from lensforge.store.records import Event, JobRecord
from lensforge.store.tables import Status, blob_owners, job_events, jobs

_SELECT_JOB = select(jobs).where(jobs.c.id == bindparam("job_id"))


def get(db: Database, job_id: str, raw: Any = None) -> JobRecord | None:
    """One job by id; on the caller's DBAPI connection ``raw`` if given (not in a
    transaction of its own there: it reads what is committed)."""
    with db.raw_read(raw) as conn:
        rows = db.tx_on(conn).records(_SELECT_JOB, {"job_id": job_id})
    return rows[0] if rows else None


def get_many(db: Database, job_ids: Sequence[str]) -> list[JobRecord]:
    if not job_ids:
        return []
    with db.read() as conn:
        rows = conn.execute(select(jobs).where(jobs.c.id.in_(job_ids))).all()
    return [JobRecord.from_row(row) for row in rows]


def list_jobs(
    db: Database,
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
    with db.read() as conn:
        return [JobRecord.from_row(row) for row in conn.execute(query)]


def expired_leases(db: Database, now: float | None = None, limit: int = 500) -> list[JobRecord]:
    """RUNNING jobs whose lease ran out: their worker or machine is gone."""
    now = time.time() if now is None else now
    with db.read() as conn:
        rows = conn.execute(
            select(jobs)
            .where(jobs.c.status == Status.RUNNING.value, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.id)
            .limit(limit)
        ).all()
    return [JobRecord.from_row(row) for row in rows]


def running_owned_by(db: Database, owner_prefix: str) -> list[JobRecord]:
    """RUNNING jobs whose lease owner starts with ``owner_prefix`` (a host's workers)."""
    with db.read() as conn:
        rows = conn.execute(
            select(jobs).where(
                jobs.c.status == Status.RUNNING.value,
                jobs.c.lease_owner.startswith(owner_prefix, autoescape=True),
            )
        ).all()
    return [JobRecord.from_row(row) for row in rows]


def owns_blob(db: Database, digest: str, owner: str) -> bool:
    with db.read() as conn:
        row = conn.execute(
            select(blob_owners.c.digest).where(
                blob_owners.c.digest == digest, blob_owners.c.owner == owner
            )
        ).first()
    return row is not None


def count(db: Database, status: Status) -> int:
    with db.read() as conn:
        query = select(func.count()).select_from(jobs).where(jobs.c.status == status.value)
        return int(conn.execute(query).scalar_one())


def events(db: Database, job_id: str) -> list[Event]:
    with db.read() as conn:
        rows = conn.execute(
            select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
        ).all()
    return [Event(**row._mapping) for row in rows]


def counts(db: Database) -> dict[str, int]:
    with db.read() as conn:
        rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
    result = {status.value: 0 for status in Status}
    result.update({status: int(n) for status, n in rows})
    return result


def ping(db: Database) -> None:
    with db.read() as conn:
        conn.execute(select(1))
