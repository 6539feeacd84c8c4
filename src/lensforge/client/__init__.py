"""The Python client of a LensForge server: :class:`Client` (sync) and :class:`AsyncClient`.

    from lensforge import Client

    with Client("http://127.0.0.1:8000") as lf:
        info = lf.analyze("image.info", image="examples/sample.png")
        job = lf.submit("image.quality", image="examples/sample.png")
        for update in job.progress():
            print(update.status, update.progress)
        print(job.result())

Failures raise the server's typed errors (:mod:`lensforge.errors`, rebuilt from the
envelope): ``ValidationError``, ``PluginError``, ``Cancelled``... An unreachable server raises
:class:`ConnectionFailed`. The API key comes from ``api_key=`` or ``LENSFORGE_API_KEY`` and
is sent as ``Authorization: Bearer <key>``; the server URL from ``server=``, or
``LENSFORGE_SERVER``, or ``http://127.0.0.1:8000``.

The logic both clients share, with no I/O, is :class:`~lensforge.client.base.BaseClient`;
``sync_client`` and ``async_client`` only send and receive.
"""

from __future__ import annotations

import warnings
from typing import Any

from lensforge.client.async_client import AsyncClient, AsyncJob
from lensforge.client.base import DEFAULT_SERVER, BaseClient, BaseJob
from lensforge.client.models import (
    TERMINAL_STATUSES,
    ConnectionFailed,
    ImageInput,
    JobInfo,
    JobResult,
    VideoInput,
)
from lensforge.client.progress import STREAM_CHUNK_S
from lensforge.client.streams import AsyncFrameStream, FrameStream, StreamEvent
from lensforge.client.sync_client import Client, Job

__all__ = [
    "DEFAULT_SERVER",
    "STREAM_CHUNK_S",
    "TERMINAL_STATUSES",
    "AsyncClient",
    "AsyncFrameStream",
    "AsyncJob",
    "BaseClient",
    "BaseJob",
    "Client",
    "ConnectionFailed",
    "FrameStream",
    "ImageInput",
    "Job",
    "JobInfo",
    "JobResult",
    "StreamEvent",
    "VideoInput",
]


def __getattr__(name: str) -> Any:
    if name == "Outcome":  # documented until the rename; the ToolRunner has its own Outcome
        warnings.warn(
            "lensforge.client.Outcome is now lensforge.client.JobResult; the old name will go.",
            DeprecationWarning,
            stacklevel=2,
        )
        return JobResult
    raise AttributeError(f"module 'lensforge.client' has no attribute {name!r}")
