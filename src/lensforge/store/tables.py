"""The job store's tables (SQLAlchemy Core). Times are UNIX epoch seconds (float)."""

from __future__ import annotations

import enum

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


class Status(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCESS, Status.FAILED, Status.CANCELLED})

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("plugin", String(128), nullable=False),
    Column("tool", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("result", JSON),
    Column("error", JSON),
    Column("traceback", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=1),
    Column("progress", Double, nullable=False, default=0.0),
    Column("progress_message", Text),
    Column("owner", String(128), nullable=False, default="anonymous"),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("timeout_s", Double),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", Double),
    Column("not_before", Double),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("retry_on", JSON),  # error codes retried up to max_attempts (0003)
    UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
    Index("ix_jobs_status_id", "status", "id"),
    Index("ix_jobs_owner_id", "owner", "id"),
    Index("ix_jobs_plugin_tool_id", "plugin", "tool", "id"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("at", Double, nullable=False),
    Column("worker", String(128)),
    Column("reason", Text),
    Index("ix_job_events_job_id", "job_id", "id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("event", String(64), nullable=False),
    Column("key_id", String(32)),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_events_at", "at"),
)

blob_owners = Table(
    "blob_owners",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("owner", String(128), primary_key=True),
)

# A long job's resume state: the last checkpoint its tool wrote (0004).
job_checkpoints = Table(
    "job_checkpoints",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("frames", Integer, nullable=False),  # items in job_frames up to this checkpoint
    Column("at", Double, nullable=False),
)

# A long job's per-frame result items, appended with each checkpoint, paged by seq (0004).
job_frames = Table(
    "job_frames",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("frame", Integer),
    Column("timestamp_s", Double),
    Column("item", JSON, nullable=False),
)
