"""The one typed settings tree. Every field has a ``LENSFORGE_*`` environment twin."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from lensforge.blobs import Blobs
    from lensforge.video.probe import VideoLimits


def _default_workers() -> int:
    """One per core this process may run on (its CPU affinity: taskset, cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity on this platform
        return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """LensForge settings; read from ``LENSFORGE_*`` environment variables or passed in code."""

    model_config = SettingsConfigDict(env_prefix="LENSFORGE_", extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP server binds.")
    database_url: str = Field(
        "sqlite:///./lensforge.db",
        description="SQLAlchemy URL of the job store (SQLite file by default, or PostgreSQL).",
    )
    data_dir: Path = Field(
        Path("./lensforge-data"), description="Directory of the content-addressed blob store."
    )
    executor: Literal["local", "thread", "inline", "ray"] = Field(
        "local",
        description="Where tools run: 'local' (supervised worker processes), 'thread' (a "
        "thread pool in the server), 'inline' (the calling thread) or 'ray' (warm plugin "
        "actors on a Ray cluster: pip install 'lensforge[ray]').",
    )
    execute: bool = Field(
        True,
        description="Whether this server runs jobs itself; false makes an API-only server "
        "(jobs run on `lensforge worker` nodes or other servers sharing the store).",
    )
    ray_address: str = Field(
        "local",
        description="With executor 'ray': 'local' (a private single-node cluster on "
        "loopback), 'auto' (the cluster this host belongs to) or 'ray://host:port'.",
    )
    blob_url: str | None = Field(
        None,
        description="Where blobs live: empty for DATA_DIR/blobs, a directory, or "
        "s3://bucket/prefix (pip install 'lensforge[s3]').",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint for non-AWS stores (MinIO, SeaweedFS, R2, ...)."
    )
    s3_region: str | None = Field(None, description="S3 region (else AWS_REGION / config).")
    s3_access_key_id: str | None = Field(
        None, description="S3 access key (else AWS_ACCESS_KEY_ID / ~/.aws / instance role)."
    )
    s3_secret_access_key: str | None = Field(
        None, description="S3 secret key (else AWS_SECRET_ACCESS_KEY / ~/.aws)."
    )
    workers: int = Field(
        default_factory=_default_workers,
        ge=1,
        le=256,
        description="Worker processes (local) or threads (thread): jobs run at once.",
    )
    worker_memory_mb: int = Field(
        2048,
        ge=0,
        description="Memory a worker may allocate beyond its loaded plugins, in MiB (0: no cap).",
    )
    cancel_grace_s: float = Field(
        2.0, gt=0, description="How long a cancelled tool may run on before its worker is killed."
    )
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="On shutdown, how long running jobs may take to finish."
    )
    max_queue: int = Field(
        10_000, ge=1, description="PENDING jobs this server accepts before answering 429."
    )
    worker_lost_attempts: int = Field(
        3, ge=1, description="Attempts a job gets when its worker dies (crash, kill, lost lease)."
    )
    plugins_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated plugin names to enable; empty enables every installed one.",
    )
    plugins_block: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated plugin names never to enable."
    )
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request head (request line and headers)."
    )
    max_headers: int = Field(100, ge=8, description="Most header fields one request may send.")
    max_body_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes."
    )
    max_image_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Largest encoded image accepted, in bytes."
    )
    max_image_pixels: int = Field(
        50_000_000, ge=1, description="Largest decoded image accepted, in pixels (width*height)."
    )
    max_video_bytes: int = Field(
        4 * 1024**3, ge=1, description="Largest video upload, in bytes (checked as it streams)."
    )
    max_video_duration_s: float = Field(
        3 * 3600.0, gt=0, description="Longest video accepted, in seconds (from its header)."
    )
    max_video_pixels: int = Field(
        3840 * 2160, ge=1, description="Largest video frame accepted, in pixels (width*height)."
    )
    max_video_frames: int = Field(
        1_000_000, ge=1, description="Most frames a video may have (from its header)."
    )
    # Live frame streams (WS /v1/stream): docs/video.md "Live streams".
    stream_max_per_key: int = Field(
        4, ge=1, description="Most live frame streams one API key may hold open at once."
    )
    stream_max_frame_bytes: int = Field(
        8 * 1024 * 1024, ge=1, description="Largest frame a live stream accepts, in bytes."
    )
    stream_max_fps: float = Field(
        60.0, gt=0, description="Most frames per second a live stream accepts; more are dropped."
    )
    stream_queue: int = Field(
        2, ge=1, description="Frames a live stream holds waiting beside the one running."
    )
    default_timeout_s: float = Field(
        60.0, gt=0, description="Time limit of a tool that declares none, in seconds."
    )
    max_timeout_s: float = Field(
        600.0, gt=0, description="Largest time limit a job may ask for, in seconds."
    )
    sync_wait_s: float = Field(
        300.0, gt=0, description="How long POST /v1/analyze waits for its job before answering."
    )
    lease_s: float = Field(30.0, gt=0, description="Lease of a claimed job before recovery.")
    poll_interval_s: float = Field(
        0.5, gt=0, description="How often the dispatcher looks for jobs other processes queued."
    )
    max_running_per_key: int = Field(
        0,
        ge=0,
        description="Most jobs one caller (API key) may have RUNNING across all servers; 0 "
        "for no cap. Claims are fair across callers either way.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="Log lines as JSON objects or text; 'auto' is JSON unless stderr is a "
        "terminal.",
    )
    insecure_no_auth: bool = Field(
        False,
        description="Allow binding a non-loopback address with no API key (not recommended).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins allowed by CORS; empty turns CORS off.",
    )
    rate_limit_per_s: float = Field(
        100.0, ge=0, description="Requests a second allowed per API key on average (0: off)."
    )
    rate_limit_burst: int = Field(200, ge=1, description="Burst of requests allowed per API key.")
    otel: bool = Field(
        False,
        description="OpenTelemetry tracing: one trace per job spanning the API request, the "
        "store writes and the tool run in the worker, plus FastAPI's request metrics (needs "
        "an OpenTelemetry SDK and a configured provider; workers export per OTEL_* variables).",
    )
    mcp_task_after_s: float = Field(
        2.0,
        gt=0,
        description="How long an MCP call may run before it is answered as a task (for "
        "clients that declare the tasks extension; tools declared long become tasks at once).",
    )
    mcp_inline_image_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Images a tool returns up to this size go inline in MCP results; larger "
        "ones as resource links to the blob.",
    )
    max_input_depth: int = Field(32, ge=1, description="Deepest nesting allowed in tool inputs.")
    max_input_string: int = Field(
        1_000_000, ge=1, description="Longest string allowed in tool inputs (images excepted)."
    )

    # -- hardening: what a sick database or a hostile caller may cost (docs/security.md) ----
    max_input_keys: int = Field(
        1_000,
        ge=1,
        description="Most keys allowed in a request's inputs, all objects together; more is "
        "refused before any per-field validation.",
    )
    max_result_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest JSON result a tool may return inline; larger results fail with "
        "plugin_error (return images as ImageArtifact, stored in the blob store).",
    )
    store_connect_timeout_s: float = Field(
        5.0, gt=0, description="PostgreSQL: give up connecting after this long (503)."
    )
    store_statement_timeout_s: float = Field(
        30.0, gt=0, description="PostgreSQL: cancel any statement running longer than this."
    )
    store_busy_timeout_s: float = Field(
        5.0,
        gt=0,
        description="SQLite: how long a writer waits for another's write lock before the "
        "request is answered 503 with Retry-After.",
    )
    key_cache_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How long a verified API key is trusted without asking the database; "
        "a revocation takes effect within this time.",
    )

    # -- ForgeSyte compatibility (lensforge.forgesyte, lensforge.api.compat.forgesyte) -------
    forgesyte_plugins: bool = Field(
        True, description="Discover ForgeSyte plugins (the 'forgesyte.plugins' entry points)."
    )
    forgesyte_rename: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Comma-separated 'forgesyte_name:lensforge_name' pairs: the names ForgeSyte "
        "plugins take in LensForge instead of their own (to resolve a name collision).",
    )
    forgesyte_prefix: str = Field(
        "/forgesyte",
        pattern=r"^(/[A-Za-z0-9._~-]+)+$",
        description="Path under which ForgeSyte's job routes are served, for its clients.",
    )

    @field_validator("forgesyte_rename", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            old, sep, new = item.partition(":")
            if not sep or not old.strip() or not new.strip():
                raise ValueError(f"expected 'old:new' pairs, got {item!r}")
            pairs[old.strip()] = new.strip()
        return pairs

    @field_validator("plugins_allow", "plugins_block", "cors_origins", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def video_limits(self) -> VideoLimits:
        from lensforge.video.probe import VideoLimits

        return VideoLimits(
            max_bytes=self.max_video_bytes,
            max_duration_s=self.max_video_duration_s,
            max_pixels=self.max_video_pixels,
            max_frames=self.max_video_frames,
        )

    def open_blobs(self) -> Blobs:
        """The blob store these settings name (see ``blob_url``)."""
        from lensforge.blobs import S3Options, open_blob_store

        options = S3Options(
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            access_key_id=self.s3_access_key_id,
            secret_access_key=self.s3_secret_access_key,
        )
        if not self.blob_url:
            return open_blob_store(None, self.blob_dir)
        return open_blob_store(self.blob_url, self.data_dir, options)
