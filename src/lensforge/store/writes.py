"""The store's write operations, each a function of one transaction (:class:`Tx`).

Every status change goes through :func:`_transition`, a guarded update
(``... WHERE id = ? AND status = ?``) that appends an event row in the same transaction;
zero rows updated is :class:`~lensforge.errors.IllegalTransition`, never a silent overwrite.
:func:`create` inserts new jobs (PENDING, or already claimed). Private to the store package:
:class:`~lensforge.store.JobStore` runs these inside its group-committed transactions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from lensforge.errors import Conflict, IllegalTransition
from lensforge.store import readback
from lensforge.store.dbapi import Tx
from lensforge.store.readback import NEXT_ATTEMPT
from lensforge.store.records import JobRecord, NewJob, new_job_id
from lensforge.store.tables import TERMINAL, Status, blob_owners, job_events, jobs


def create(
    tx: Tx,
    new: NewJob,
    claim_for: str | None,
    lease_s: float,
    blobs: Sequence[str] = (),
) -> tuple[JobRecord, bool]:
    """Insert a PENDING job; with an idempotency key, return the existing job instead.

    With ``claim_for``, the job is inserted already claimed by that worker (RUNNING, leased,
    its first attempt counted) and both events are written: a server with idle capacity
    saves a round trip and nobody ever sees the job unclaimed. ``blobs`` (digests) are
    recorded as readable by the job's owner in the same transaction.
    """
    if blobs:
        add_blob_owners(tx, [(digest, new.owner) for digest in blobs])
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
        "retry_on": list(new.retry_on),
    }
    if new.idempotency_key is None:
        tx.run(_INSERT_JOB, row)
    else:
        existing = _by_idempotency_key(tx, new.owner, new.idempotency_key)
        if existing is not None:
            return _check_same_request(existing, new), False
        try:
            with tx.savepoint():  # PostgreSQL aborts a transaction on error
                tx.run(_INSERT_JOB, row)
        except IntegrityError:  # a concurrent twin with the same key won the race
            existing = _by_idempotency_key(tx, new.owner, new.idempotency_key)
            if existing is None:
                raise
            return _check_same_request(existing, new), False
    pending = _VALUES[Status.PENDING]
    tx.later(_INSERT_EVENT, _EVENT, (job_id, None, pending, now, None, None))
    if not claimed:
        tx.pending += 1
    if claimed:
        tx.later(_INSERT_EVENT, _EVENT, (job_id, pending, row["status"], now, claim_for, None))
    return JobRecord.from_mapping(row), True


def _by_idempotency_key(tx: Tx, owner: str, key: str) -> JobRecord | None:
    # Inside the write transaction: a batch sees its own uncommitted jobs too.
    found = tx.records(_BY_IDEMPOTENCY_KEY, {"owner": owner, "key": key})
    return found[0] if found else None


def _check_same_request(existing: JobRecord, new: NewJob) -> JobRecord:
    if existing.request_hash != new.request_hash:
        raise Conflict(
            "This Idempotency-Key was used with a different request; use a new key.",
            job_id=existing.id,
            details={"idempotency_key": new.idempotency_key},
        )
    return existing


def finish(
    tx: Tx,
    job: JobRecord,
    to_status: Status,
    values: dict[str, Any],
    *,
    worker: str | None,
    reason: str | None,
    owned_by: str | None,
    artifacts: Sequence[str],
    claim_next: int,
    lease_s: float,
    per_owner: int = 0,
) -> tuple[JobRecord, list[JobRecord]]:
    """Move ``job`` (as the caller knows it) on, let its owner read the blobs its tool
    produced, and claim up to ``claim_next`` more jobs for ``worker``: one transaction."""
    updated = _transition(tx, job.id, job.status, to_status, worker, reason, owned_by, values, job)
    if artifacts:
        add_blob_owners(tx, [(digest, updated.owner) for digest in artifacts])
    claimed = (
        claim(tx, worker, lease_s, claim_next, per_owner=per_owner)
        if claim_next > 0 and worker
        else []
    )
    return updated, claimed


def transition(
    tx: Tx,
    job_id: str,
    from_status: Status,
    to_status: Status,
    values: dict[str, Any],
    *,
    worker: str | None = None,
    reason: str | None = None,
    owned_by: str | None = None,
    known: JobRecord | None = None,
) -> JobRecord:
    return _transition(tx, job_id, from_status, to_status, worker, reason, owned_by, values, known)


def claim(
    tx: Tx,
    worker: str,
    lease_s: float,
    limit: int,
    job_ids: Sequence[str] = (),
    per_owner: int = 0,
) -> list[JobRecord]:
    """Move up to ``limit`` due PENDING jobs (of ``job_ids`` if given) to RUNNING.

    Without ``job_ids`` the claim is fair (see :data:`_FAIR`): callers' jobs interleave, and
    with ``per_owner`` > 0 no owner gets more than that many jobs RUNNING. What other claimers
    took meanwhile is made up from the oldest unlocked jobs (``SKIP LOCKED`` on PostgreSQL).
    """
    now = time.time()
    cap = per_owner if per_owner > 0 else NO_CAP
    if job_ids:
        names = [f"id_{i}" for i in range(len(job_ids))]
        query = _CLAIMABLE.where(jobs.c.id.in_([bindparam(name) for name in names]))
        if not tx.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        params = {"now": now, "limit": limit, "cap": cap, **dict(zip(names, job_ids, strict=True))}
        candidates = ranked = [row[0] for row in tx.rows(query, params, cache=False)]
    else:
        low, per_job, high = FAIR_WINDOW
        window = min(high, max(low, per_job * limit))
        if per_owner > 0:
            params = {"now": now, "limit": limit, "cap": cap, "window": window}
            ranked = [row[0] for row in tx.rows(_FAIR, params)]
        else:
            ranked = _fair_uncapped(tx, now, limit, window)
        candidates = ranked
        if ranked and not tx.is_sqlite:  # SQLite: the write lock keeps other claimers out
            free = {row[0] for row in tx.rows(_LOCK_PENDING, {"ids": ranked})}
            candidates = [job_id for job_id in ranked if job_id in free]
    claimed = _claim_ids(tx, worker, lease_s, now, candidates)
    if not job_ids and len(ranked) == limit and len(claimed) < limit:
        # Lost races to other servers: top up from the oldest rows nobody holds.
        query = _CLAIMABLE if tx.is_sqlite else _CLAIMABLE_SKIP_LOCKED
        params = {"now": now, "limit": limit - len(claimed), "cap": cap}
        rows = tx.rows(query, params)
        claimed += _claim_ids(tx, worker, lease_s, now, [row[0] for row in rows])
    return claimed


def _fair_uncapped(tx: Tx, now: float, limit: int, window: int) -> list[str]:
    """:data:`_FAIR`'s order with no per-owner cap, ranked here: the oldest ``window`` due jobs
    and, only when they are several owners', each owner's RUNNING count (most claims find
    one owner's backlog, where the order is the queue's and no count is needed)."""
    rows = tx.rows(_WINDOW, {"now": now, "window": window})
    if len({owner for _, owner in rows}) <= 1:
        return [job_id for job_id, _ in rows[:limit]]
    running: dict[str, int] = dict(tx.rows(_RUNNING_COUNTS, {}))
    seen: dict[str, int] = {}
    ranked = []
    for job_id, owner in rows:  # an owner's k-th job ranks (jobs it has RUNNING) + k
        seen[owner] = seen.get(owner, 0) + 1
        ranked.append((running.get(owner, 0) + seen[owner], job_id))
    ranked.sort()  # the lowest ranks first, the oldest first among equals
    return [job_id for _, job_id in ranked[:limit]]


def _claim_ids(
    tx: Tx, worker: str, lease_s: float, now: float, job_ids: Sequence[str]
) -> list[JobRecord]:
    claimed = []
    for job_id in job_ids:
        values = {
            "lease_owner": worker,
            "lease_expires_at": now + lease_s,
            "started_at": now,
            "attempts": NEXT_ATTEMPT,
        }
        try:
            claimed.append(
                _transition(tx, job_id, Status.PENDING, Status.RUNNING, worker, None, None, values)
            )
        except IllegalTransition:
            continue  # taken by another claimer between the select and the update
    return claimed


def renew_leases(tx: Tx, lease_owner: str, job_ids: Sequence[str], lease_s: float) -> int:
    """Heartbeat: extend the leases ``lease_owner`` still holds; returns how many."""
    renewed = 0
    for job_id in job_ids:
        params = {"job_id": job_id, "owner": lease_owner, "until": time.time() + lease_s}
        tx.run(_RENEW_LEASE, params)
        renewed += max(tx.cursor.rowcount, 0)
    return renewed


def set_progress(
    tx: Tx, job_id: str, fraction: float, message: str | None, lease_owner: str | None
) -> bool:
    statement = _SET_PROGRESS if lease_owner is None else _SET_PROGRESS_OWNED
    params = {"job_id": job_id, "fraction": fraction, "message": message}
    params |= {"now": time.time(), "owner": lease_owner}
    tx.run(statement, params)
    return bool(tx.cursor.rowcount)


def request_cancel(tx: Tx, job_id: str) -> None:
    tx.run(_REQUEST_CANCEL, {"job_id": job_id, "now": time.time()})


def add_blob_owners(tx: Tx, pairs: Sequence[tuple[str, str]]) -> None:
    """Record that ``owner`` may read blob ``digest`` (hex), for each pair."""
    for digest, owner in sorted(set(pairs)):
        params = {"digest": digest, "owner": owner}
        if not tx.rows(_BLOB_OWNED, params):
            tx.run(_INSERT_BLOB_OWNER, params)


# Statements built once: constructing SQLAlchemy statements per call costs more than SQLite.
_INSERT_JOB = insert(jobs)
_EVENT = ("job_id", "from_status", "to_status", "at", "worker", "reason")
_INSERT_EVENT = insert(job_events).values({name: bindparam(name) for name in _EVENT})
_SELECT_STATUS = select(jobs.c.status).where(jobs.c.id == bindparam("job_id"))
_BY_IDEMPOTENCY_KEY = select(jobs).where(
    jobs.c.owner == bindparam("owner"), jobs.c.idempotency_key == bindparam("key")
)
NO_CAP = 2**31 - 1  # ``per_owner`` 0: no cap
# The fair claim orders the oldest due PENDING jobs of owners under their cap: 8 per job
# claimed, at least 32, at most 256. Each costs a row read (SQLite, 5,000 pending: ~0.2 ms
# a claim at 32, ~0.8 ms at 256, against ~0.03 ms for a plain FIFO claim).
FAIR_WINDOW = (32, 8, 256)
_DUE = (jobs.c.status == Status.PENDING.value) & (
    jobs.c.not_before.is_(None) | (jobs.c.not_before <= bindparam("now"))
)
_RUNNING_BY_OWNER = (
    select(jobs.c.owner, func.count().label("n"))
    .where(jobs.c.status == Status.RUNNING.value)
    .group_by(jobs.c.owner)
    .cte("running_by_owner")
)
_CAPPED_OWNERS = select(_RUNNING_BY_OWNER.c.owner).where(_RUNNING_BY_OWNER.c.n >= bindparam("cap"))
_CLAIMABLE = (
    select(jobs.c.id)
    .where(_DUE)
    .where(jobs.c.owner.not_in(_CAPPED_OWNERS))
    .order_by(jobs.c.id)
    .limit(bindparam("limit"))
)
# PostgreSQL: concurrent claimers skip each other's rows instead of queueing on them.
_CLAIMABLE_SKIP_LOCKED = _CLAIMABLE.with_for_update(skip_locked=True, of=jobs)
# The fair claim. Among the oldest due jobs of owners under their cap (FAIR_WINDOW), an
# owner's k-th job ranks (jobs it has RUNNING) + k, and the lowest ranks win, oldest first
# among equals: each caller's jobs interleave, and one with fewer jobs running goes first.
# The window bounds the cost on any backlog (one index range scan of ix_jobs_status_id,
# plus the RUNNING rows, which are at most the servers' capacity); fairness reaches as far
# into the queue as the window (capped owners' jobs are left out before it).
_CANDIDATES = (
    select(jobs.c.id, jobs.c.owner)
    .where(_DUE)
    .where(jobs.c.owner.not_in(_CAPPED_OWNERS))
    .order_by(jobs.c.id)
    .limit(bindparam("window"))
    .subquery("candidates")
)
_RANK = (
    func.row_number().over(partition_by=_CANDIDATES.c.owner, order_by=_CANDIDATES.c.id)
    + func.coalesce(_RUNNING_BY_OWNER.c.n, 0)
).label("rank")
_RANKED = (
    select(_CANDIDATES.c.id, _RANK)
    .select_from(
        _CANDIDATES.outerjoin(_RUNNING_BY_OWNER, _RUNNING_BY_OWNER.c.owner == _CANDIDATES.c.owner)
    )
    .subquery("ranked")
)
# The same without a cap, ranked in Python (see _fair_uncapped): two plain reads.
_WINDOW = select(jobs.c.id, jobs.c.owner).where(_DUE).order_by(jobs.c.id).limit(bindparam("window"))
_RUNNING_COUNTS = (
    select(jobs.c.owner, func.count())
    .where(jobs.c.status == Status.RUNNING.value)
    .group_by(jobs.c.owner)
)
_FAIR = (
    select(_RANKED.c.id)
    .where(_RANKED.c.rank <= bindparam("cap"))
    .order_by(_RANKED.c.rank, _RANKED.c.id)
    .limit(bindparam("limit"))
)
# PostgreSQL: then lock those of the chosen rows no other claimer holds, by key, checking the
# status again on the row as locked. (One statement joining the two was planned as a scan
# of every PENDING job when the table's statistics were stale: 150 ms at 5,000 pending.)
_LOCK_PENDING = text(
    "SELECT id FROM jobs WHERE id = ANY(:ids) AND status = 'PENDING' FOR UPDATE SKIP LOCKED"
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
_UPDATES: dict[tuple[Any, ...], tuple[Any, tuple[str, ...]]] = {}


def _update_statement(
    values: dict[str, Any], fenced: bool, narrow: bool
) -> tuple[Any, tuple[str, ...]]:
    """The guarded UPDATE for this set of columns, built once and cached, and the columns it
    returns when ``narrow`` (see readback.columns); else it returns the whole row."""
    # Keyed in the caller's column order (each call site has one): no sort per transition.
    key = (
        fenced,
        narrow,
        tuple(values),
        tuple([k for k, v in values.items() if v is NEXT_ATTEMPT]),
    )
    cached = _UPDATES.get(key)
    if cached is None:
        returning = readback.columns(values) if narrow else None
        assignments: dict[str, Any] = {}
        for k, v in values.items():
            if isinstance(v, ColumnElement) and v is not NEXT_ATTEMPT:
                raise ValueError(f"a transition sets only values and NEXT_ATTEMPT, not {v}")
            assignments[k] = v if v is NEXT_ATTEMPT else bindparam(f"v_{k}")
        statement = (
            update(jobs)
            .where(jobs.c.id == bindparam("job_id"), jobs.c.status == bindparam("from_status"))
            .values(status=bindparam("to_status"), updated_at=bindparam("now"), **assignments)
            .returning(*([jobs.c[name] for name in returning] if returning is not None else [jobs]))
        )
        if fenced:
            statement = statement.where(jobs.c.lease_owner == bindparam("owned_by"))
        cached = _UPDATES[key] = (statement, returning or ())
    return cached


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
    fenced = owned_by is not None
    if known is not None and readback.usable(known, job_id, from_status):
        statement, read_back = _update_statement(values, fenced, narrow=True)
        rows = tx.rows(statement, params)
        updated = (
            [readback.record_after(known, to_status, now, values, read_back, rows[0])]
            if rows
            else []
        )
    else:
        statement, _ = _update_statement(values, fenced, narrow=False)
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
    if to_status in TERMINAL:
        tx.finished.append(job_id)
    elif to_status is Status.PENDING:
        tx.pending += 1
    return updated[0]
