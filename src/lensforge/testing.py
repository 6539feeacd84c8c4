"""Test helpers: an in-memory job store, and running a plugin's tool the way the server does.

:class:`InMemoryJobStore` implements :class:`~lensforge.store.JobStoreProtocol` with dicts on
the event loop: the same guarded transitions and events, idempotency keys, claims, leases,
fencing by lease owner and blob owners as the SQL store, checked by the same contract suite.
Services can be tested with it, without a database or worker processes.

:func:`run_tool` is for plugin authors::

    from lensforge.testing import run_tool

    def test_detect_finds_one_face():
        result = run_tool(Faces, "detect", image=png_bytes)
        assert len(result["faces"]) == 1

It validates the inputs, stores media, creates the job, runs it through the real ToolRunner
(inline executor) and returns the stored result, or raises the job's error
(a :class:`~lensforge.errors.LensForgeError` with the envelope's code and details).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from lensforge.blobs import BlobStore
from lensforge.errors import Conflict, IllegalTransition, LensForgeError
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.execution.executors import InlineExecutor
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.execution.tool_runner import ToolRunner
from lensforge.media import MediaLimits
from lensforge.plugin import Plugin
from lensforge.registry import Registry
from lensforge.store import Checkpoint, Event, FrameItem, JobRecord, NewJob, Notice, Status
from lensforge.store.records import new_job_id

_JSON_VALUES = ("inputs", "result", "error")


def _json_copy(value: Any) -> Any:
    """The value as it comes back from a JSON column (a copy; types as the SQL store's)."""
    if value is None:
        return None
    try:
        text = orjson.dumps(value)
    except TypeError:  # orjson stops at 64-bit integers; JSON itself does not
        text = json.dumps(value).encode()
    return orjson.loads(text)


@dataclass
class _Tables:
    """The shared state of one in-memory database (several stores may open it)."""

    jobs: dict[str, JobRecord] = field(default_factory=dict)
    events: dict[str, builtins.list[Event]] = field(default_factory=dict)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)  # (owner, key) → job id
    blob_owners: set[tuple[str, str]] = field(default_factory=set)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    frames: dict[str, builtins.list[FrameItem]] = field(default_factory=dict)
    next_event: int = 1


class InMemoryJobStore:
    """A job store in dicts; ``InMemoryJobStore(other)`` opens ``other``'s database."""

    def __init__(self, shares: InMemoryJobStore | None = None) -> None:
        self._t: _Tables = shares._t if shares is not None else _Tables()
        self._writes = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @property
    def write_stats(self) -> tuple[int, int]:
        return self._writes, self._writes

    # -- writes -----------------------------------------------------------------------------

    async def create(
        self,
        new: NewJob,
        *,
        claim_for: str | None = None,
        lease_s: float = 30.0,
        blobs: Sequence[str] = (),
    ) -> tuple[JobRecord, bool]:
        self._writes += 1
        if new.idempotency_key is not None:
            existing = self._t.keys.get((new.owner, new.idempotency_key))
            if existing is not None:
                job = self._t.jobs[existing]
                if job.request_hash != new.request_hash:
                    raise Conflict(
                        "This Idempotency-Key was used with a different request; use a new key.",
                        job_id=job.id,
                        details={"idempotency_key": new.idempotency_key},
                    )
                return job, False
        self._own([(digest, new.owner) for digest in blobs])
        now = time.time()
        job = JobRecord(
            id=new_job_id(),
            plugin=new.plugin,
            tool=new.tool,
            status=Status.PENDING,
            inputs=_json_copy(new.inputs),
            result=None,
            error=None,
            traceback=None,
            attempts=0,
            max_attempts=new.max_attempts,
            progress=0.0,
            progress_message=None,
            owner=new.owner,
            idempotency_key=new.idempotency_key,
            request_hash=new.request_hash,
            timeout_s=new.timeout_s,
            cancel_requested=False,
            lease_owner=None,
            lease_expires_at=None,
            not_before=new.not_before,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
            retry_on=list(new.retry_on),
        )
        self._t.jobs[job.id] = job
        if new.idempotency_key is not None:
            self._t.keys[(new.owner, new.idempotency_key)] = job.id
        self._event(job.id, None, Status.PENDING, now, None, None)
        if claim_for is not None:
            job = self._claim_one(job, claim_for, lease_s, now)
        return job, True

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
        self._writes += 1
        return self._transition(job_id, from_status, to_status, worker, reason, owned_by, values)

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
    ) -> tuple[JobRecord, builtins.list[JobRecord]]:
        self._writes += 1
        updated = self._transition(job.id, job.status, to_status, worker, reason, owned_by, values)
        self._own([(digest, updated.owner) for digest in artifacts])
        claimed = (
            self._claim(worker, lease_s, claim_next, per_owner=per_owner)
            if claim_next > 0 and worker
            else []
        )
        return updated, claimed

    async def claim(
        self,
        worker: str,
        lease_s: float,
        limit: int,
        job_ids: Sequence[str] = (),
        *,
        per_owner: int = 0,
    ) -> builtins.list[JobRecord]:
        self._writes += 1
        return self._claim(worker, lease_s, limit, job_ids, per_owner=per_owner)

    def listen(self, deliver: Callable[[Notice], None]) -> bool:
        return False  # one process: its services see their own transitions

    async def renew_leases(self, lease_owner: str, job_ids: Sequence[str], lease_s: float) -> int:
        renewed = 0
        for job_id in job_ids:
            job = self._t.jobs.get(job_id)
            if job and job.status is Status.RUNNING and job.lease_owner == lease_owner:
                self._t.jobs[job_id] = replace(job, lease_expires_at=time.time() + lease_s)
                renewed += 1
        return renewed

    async def set_progress(
        self, job_id: str, fraction: float, message: str | None, lease_owner: str | None = None
    ) -> bool:
        job = self._t.jobs.get(job_id)
        if job is None or job.status is not Status.RUNNING:
            return False
        if lease_owner is not None and job.lease_owner != lease_owner:
            return False
        self._t.jobs[job_id] = replace(
            job, progress=fraction, progress_message=message, updated_at=time.time()
        )
        return True

    async def request_cancel(self, job_id: str) -> None:
        job = self._t.jobs.get(job_id)
        if job is not None:
            self._t.jobs[job_id] = replace(job, cancel_requested=True, updated_at=time.time())

    async def add_blob_owners(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._own(pairs)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        return self._t.jobs.get(job_id)

    async def get_many(self, job_ids: Sequence[str]) -> builtins.list[JobRecord]:
        return [self._t.jobs[i] for i in dict.fromkeys(job_ids) if i in self._t.jobs]

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
        found = [
            job
            for job in self._t.jobs.values()
            if (status is None or job.status is status)
            and (plugin is None or job.plugin == plugin)
            and (tool is None or job.tool == tool)
            and (owner is None or job.owner == owner)
            and (before is None or job.id < before)
        ]
        return sorted(found, key=lambda job: job.id, reverse=True)[:limit]

    async def events(self, job_id: str) -> builtins.list[Event]:
        return builtins.list(self._t.events.get(job_id, []))

    async def count(self, status: Status) -> int:
        return sum(job.status is status for job in self._t.jobs.values())

    async def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for job in self._t.jobs.values():
            counts[job.status.value] += 1
        return counts

    async def expired_leases(
        self, now: float | None = None, limit: int = 500
    ) -> builtins.list[JobRecord]:
        now = time.time() if now is None else now
        expired = [
            job
            for job in self._t.jobs.values()
            if job.status is Status.RUNNING
            and job.lease_expires_at is not None
            and job.lease_expires_at < now
        ]
        return sorted(expired, key=lambda job: job.id)[:limit]

    async def running_owned_by(self, owner_prefix: str) -> builtins.list[JobRecord]:
        return [
            job
            for job in self._t.jobs.values()
            if job.status is Status.RUNNING and (job.lease_owner or "").startswith(owner_prefix)
        ]

    async def owns_blob(self, digest: str, owner: str) -> bool:
        return (digest, owner) in self._t.blob_owners

    async def ping(self) -> None:
        return None

    # -- checkpoints of long jobs -------------------------------------------------------------

    async def save_checkpoint(
        self,
        job_id: str,
        state: dict[str, Any],
        items: Sequence[dict[str, Any]] = (),
        lease_owner: str | None = None,
    ) -> bool:
        self._writes += 1
        job = self._t.jobs.get(job_id)
        if job is None or job.status is not Status.RUNNING:
            return False
        if lease_owner is not None and job.lease_owner != lease_owner:
            return False
        stored = self._t.frames.setdefault(job_id, [])
        for item in items:
            frame, timestamp = item.get("index"), item.get("timestamp_s")
            stored.append(
                FrameItem(
                    len(stored),
                    frame if isinstance(frame, int) else None,
                    float(timestamp) if isinstance(timestamp, int | float) else None,
                    _json_copy(item),
                )
            )
        self._t.checkpoints[job_id] = Checkpoint(_json_copy(state), len(stored), time.time())
        return True

    async def checkpoint(self, job_id: str) -> Checkpoint | None:
        found = self._t.checkpoints.get(job_id)
        return None if found is None else replace(found, state=_json_copy(found.state))

    async def frames(
        self, job_id: str, *, after: int = -1, limit: int = 100
    ) -> builtins.list[FrameItem]:
        stored = self._t.frames.get(job_id, [])
        return [replace(f, item=_json_copy(f.item)) for f in stored[after + 1 : after + 1 + limit]]

    # -- the guarded transition ---------------------------------------------------------------

    def _transition(
        self,
        job_id: str,
        from_status: Status,
        to_status: Status,
        worker: str | None,
        reason: str | None,
        owned_by: str | None,
        values: dict[str, Any],
    ) -> JobRecord:
        job = self._t.jobs.get(job_id)
        fenced_out = job is not None and owned_by is not None and job.lease_owner != owned_by
        if job is None or job.status is not from_status or fenced_out:
            current = None if job is None else job.status.value
            raise IllegalTransition(
                f"Job {job_id} cannot go from {from_status.value} to {to_status.value}: "
                f"it is {current or 'missing'}"
                + (" or leased to another worker" if fenced_out else "")
                + ".",
                job_id=job_id,
                details={"from": from_status.value, "to": to_status.value, "current": current},
            )
        now = time.time()
        changes = {k: _json_copy(v) if k in _JSON_VALUES else v for k, v in values.items()}
        updated = replace(job, status=to_status, updated_at=now, **changes)
        self._t.jobs[job_id] = updated
        self._event(job_id, from_status, to_status, now, worker, reason)
        return updated

    def _claim(
        self,
        worker: str,
        lease_s: float,
        limit: int,
        job_ids: Sequence[str] = (),
        *,
        per_owner: int = 0,
    ) -> builtins.list[JobRecord]:
        now = time.time()
        cap = per_owner if per_owner > 0 else 2**31 - 1
        wanted = set(job_ids)
        running = Counter(j.owner for j in self._t.jobs.values() if j.status is Status.RUNNING)
        due = sorted(
            (job.id, job.owner)
            for job in self._t.jobs.values()
            if job.status is Status.PENDING
            and (job.not_before is None or job.not_before <= now)
            and (not wanted or job.id in wanted)
            and running[job.owner] < cap
        )
        if wanted:
            chosen = [job_id for job_id, _ in due[:limit]]
        else:  # the fair order of the SQL store: an owner's k-th job ranks running + k
            seen: Counter[str] = Counter()
            ranked = []
            for job_id, owner in due:
                seen[owner] += 1
                if running[owner] + seen[owner] <= cap:
                    ranked.append((running[owner] + seen[owner], job_id))
            chosen = [job_id for _, job_id in sorted(ranked)[:limit]]
        return [self._claim_one(self._t.jobs[job_id], worker, lease_s, now) for job_id in chosen]

    def _claim_one(self, job: JobRecord, worker: str, lease_s: float, now: float) -> JobRecord:
        values = {
            "lease_owner": worker,
            "lease_expires_at": now + lease_s,
            "started_at": now,
            "attempts": job.attempts + 1,
        }
        return self._transition(job.id, Status.PENDING, Status.RUNNING, worker, None, None, values)

    def _event(
        self,
        job_id: str,
        from_status: Status | None,
        to_status: Status,
        at: float,
        worker: str | None,
        reason: str | None,
    ) -> None:
        before = None if from_status is None else from_status.value
        event = Event(self._t.next_event, job_id, before, to_status.value, at, worker, reason)
        self._t.next_event += 1
        self._t.events.setdefault(job_id, []).append(event)

    def _own(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._t.blob_owners.update(pairs)


# -- running a tool the way the server does -------------------------------------------------------


def _error_of(envelope: dict[str, Any]) -> LensForgeError:
    body = envelope["error"]
    classes: builtins.list[type[LensForgeError]] = [LensForgeError]
    for cls in classes:
        if cls.code == body.get("code"):
            error = cls(body.get("message"), details=body.get("details") or {})
            return error.bind(plugin=body.get("plugin"), tool=body.get("tool"))
        classes.extend(cls.__subclasses__())
    return LensForgeError(body.get("message"), details=body.get("details") or {})


async def run_tool_async(
    plugin_cls: type[Plugin], tool: str, /, *, timeout_s: float = 60.0, **inputs: Any
) -> Any:
    """:func:`run_tool` for tests that already run an event loop."""
    registry = Registry()
    registry.register(plugin_cls)
    with tempfile.TemporaryDirectory(prefix="lensforge-test-") as folder:
        blobs = BlobStore(Path(folder))
        limits = MediaLimits()
        executor = InlineExecutor(ToolRunner(registry, blobs, limits))
        plugins = PluginExecutionService(registry, executor, timeout_s)
        jobs = JobExecutionService(InMemoryJobStore(), plugins)
        analysis = AnalysisExecutionService(
            registry, jobs, blobs, limits=limits, max_timeout_s=timeout_s, sync_wait_s=timeout_s
        )
        await jobs.start()
        try:
            request = AnalysisRequest(plugin=plugin_cls.name, tool=tool, inputs=inputs)
            job = await analysis.analyze(request)
        finally:
            await jobs.stop()
    if job.status is Status.SUCCESS:
        return job.result
    if job.error is not None:
        raise _error_of(job.error)
    raise LensForgeError(f"The job did not finish in {timeout_s:g} s (it is {job.status.value}).")


def run_tool(plugin_cls: type[Plugin], tool: str, /, **inputs: Any) -> Any:
    """Run ``plugin_cls``'s ``tool`` with ``inputs`` as a job (see the module docstring)."""
    return asyncio.run(run_tool_async(plugin_cls, tool, **inputs))


__all__ = ["InMemoryJobStore", "run_tool", "run_tool_async"]
