"""The store's row types: a job, one of its events, and a job to create."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, fields
from typing import Any

from lensforge.store.tables import Status


def new_job_id() -> str:
    """A UUIDv7-style id: time-ordered, so ids sort by creation for keyset paging.

    Ids are unique, not secret (access is checked by owner), so the random bits come from
    the process's Mersenne Twister (seeded from the OS, and again after a fork) rather than
    a system call per id.
    """
    ns = time.time_ns()
    ms, sub = divmod(ns, 1_000_000)
    value = (ms & (2**48 - 1)) << 80
    value |= 0x7 << 76 | (sub * 4096 // 1_000_000) << 64
    value |= 0b10 << 62 | random.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
    retry_on: list[str]  # error codes retried up to max_attempts; fixed at creation

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        """A record from a SQLAlchemy row (JSON columns already decoded)."""
        return cls.from_mapping(dict(row._mapping))

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> JobRecord:
        data["status"] = Status(data["status"])
        data["cancel_requested"] = bool(data["cancel_requested"])  # SQLite gives 0/1
        if data.get("retry_on") is None:  # jobs created before retry policies were stored
            data["retry_on"] = []
        return cls(**data)


JOB_FIELDS = tuple(f.name for f in fields(JobRecord))


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
    """A job to create: its time limit and retry policy are fixed here, once."""

    plugin: str
    tool: str
    inputs: dict[str, Any]
    owner: str = "anonymous"
    max_attempts: int = 1
    timeout_s: float | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    not_before: float | None = None
    retry_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A long job's last checkpoint: its tool's resume state and how many frame items
    were stored with it and the checkpoints before."""

    state: dict[str, Any]
    frames: int
    at: float


@dataclass(frozen=True, slots=True)
class FrameItem:
    """One per-frame result item of a job, numbered from 0 in the order it was stored."""

    seq: int
    frame: int | None
    timestamp_s: float | None
    item: dict[str, Any]
