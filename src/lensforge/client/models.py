"""What the client hands back: :class:`JobInfo`, :class:`JobResult`, :class:`ConnectionFailed`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from lensforge.errors import LensForgeError

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED"})

ImageInput = str | os.PathLike[str] | bytes | bytearray | BinaryIO | Mapping[str, Any]
"""A path, the bytes, an open binary file, or ``{"blob": "sha256:..."}`` for a stored blob."""

VideoInput = str | os.PathLike[str] | bytes | bytearray | BinaryIO
"""A video to upload (streamed to ``POST /v1/blobs``): a path, the bytes or an open file."""


class ConnectionFailed(LensForgeError):
    """The server could not be reached (refused, unresolvable, timed out, dropped)."""

    code: ClassVar[str] = "connection_failed"
    status: ClassVar[int] = 503
    retryable: ClassVar[bool] = True
    default_message: ClassVar[str] = (
        "The LensForge server could not be reached; check --server / LENSFORGE_SERVER."
    )


@dataclass(frozen=True)
class JobInfo:
    """A job as the server reports it (``GET /v1/jobs/{id}``)."""

    id: str
    plugin: str
    tool: str
    status: str
    progress: float = 0.0
    progress_message: str | None = None
    attempts: int = 0
    max_attempts: int = 1
    cancel_requested: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        """Whether the job has finished (SUCCESS, FAILED or CANCELLED)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> JobInfo:
        """The job from the server's JSON view of it (unknown keys stay in ``raw``)."""
        known = set(cls.__dataclass_fields__) - {"raw"}
        values = {key: view[key] for key in known if key in view}
        return cls(**values, raw=dict(view))


@dataclass(frozen=True)
class JobResult:
    """A finished analysis (``Client.run``): the job's id, its status and the tool's result.

    Formerly ``lensforge.client.Outcome`` (still importable, deprecated); not the ToolRunner's
    ``Outcome``, which is what one call of a tool produced inside the server.
    """

    job_id: str
    status: str
    result: Any
