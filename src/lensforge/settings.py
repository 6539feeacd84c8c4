"""The one typed settings tree. Every field has a ``LENSFORGE_*`` environment twin."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    executor: Literal["local", "thread", "inline"] = Field(
        "local",
        description="Where tools run: 'local' (supervised worker processes), 'thread' (a "
        "thread pool in the server) or 'inline' (the calling thread).",
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
    max_body_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes."
    )
    max_image_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Largest encoded image accepted, in bytes."
    )
    max_image_pixels: int = Field(
        50_000_000, ge=1, description="Largest decoded image accepted, in pixels (width*height)."
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
        description="FastAPI's OpenTelemetry spans and metrics for every request (needs an "
        "OpenTelemetry SDK and a configured provider).",
    )
    max_input_depth: int = Field(32, ge=1, description="Deepest nesting allowed in tool inputs.")
    max_input_string: int = Field(
        1_000_000, ge=1, description="Longest string allowed in tool inputs (images excepted)."
    )

    @field_validator("plugins_allow", "plugins_block", "cors_origins", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"
