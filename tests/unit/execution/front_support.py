"""Helpers for the front-door tests (``test_front_*.py``): a small plugin with a video input
and a progress-reporting tool, tiny media made in code, and the analysis service built on
the in-memory store with a real blob directory and the inline executor."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lensforge import Image, Plugin, ToolContext, tool
from lensforge.blobs import BlobStore
from lensforge.execution.analysis import AnalysisExecutionService
from lensforge.execution.executors import Executor
from lensforge.execution.executors.inline import InlineExecutor
from lensforge.execution.jobs import JobExecutionService
from lensforge.execution.plugins import PluginExecutionService
from lensforge.execution.tool_runner import ToolRunner
from lensforge.media import MediaLimits
from lensforge.registry import Registry
from lensforge.testing import InMemoryJobStore
from lensforge.video import write_mp4
from lensforge.video.media import Video


class Front(Plugin):
    """A plugin for the front-door tests."""

    name = "front"
    version = "1.0.0"

    @tool
    def clip(self, clip: Video) -> dict[str, int]:
        """A video's frame count."""
        return {"frames": clip.info.frame_count}

    @tool
    def size(self, image: Image) -> dict[str, int]:
        """An image's width and height."""
        return {"width": image.pil.width, "height": image.pil.height}

    @tool
    def steps(self, n: int = 3, ctx: ToolContext | None = None) -> dict[str, bool]:
        """Report progress ``n`` times; say whether the call was cancelled."""
        assert ctx is not None
        for i in range(n):
            ctx.progress((i + 1) / n, f"step {i + 1}")
        return {"cancelled": ctx.cancelled}

    @tool
    def linger(self, seconds: float = 1.0, ctx: ToolContext | None = None) -> dict[str, Any]:
        """Wait ``seconds`` unless cancelled first; say which thread ran it."""
        assert ctx is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not ctx.cancelled:
            time.sleep(0.005)
        return {"cancelled": ctx.cancelled, "thread": threading.current_thread().name}

    @tool
    def resumes(self, ctx: ToolContext | None = None) -> dict[str, Any]:
        """Checkpoint once; return the state the call resumed from."""
        assert ctx is not None
        ctx.checkpoint({"at": 1}, [{"index": 0}])
        return {"resume": ctx.resume}

    @tool
    def meet(self, wait_s: float = 2.0) -> dict[str, bool]:
        """Wait at MEETING for another call: passes only if two run at once."""
        MEETING.wait(wait_s)
        return {"met": True}


MEETING = threading.Barrier(2, timeout=2.0)


def registry() -> Registry:
    reg = Registry()
    reg.register(Front)
    return reg


def mp4(path: Path, frames: int = 6, width: int = 64, height: int = 48) -> bytes:
    """A tiny H.264 clip of ``frames`` grey frames; its bytes."""
    write_mp4(path, [np.full((height, width, 3), 16 * i, np.uint8) for i in range(frames)])
    return path.read_bytes()


def gif() -> bytes:
    """A 1x1 GIF: a whole image in fewer bytes than the sniffing threshold."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("P", (1, 1)).save(buffer, "GIF")
    return buffer.getvalue()


class Chunks:
    """An upload body in chunks that counts how many were pulled."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = list(chunks)
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def analysis(
    root: Path,
    *,
    limits: MediaLimits | None = None,
    executor: Executor | None = None,
    store: InMemoryJobStore | None = None,
) -> AnalysisExecutionService:
    """The front door over the in-memory store, blobs under ``root``, the inline executor
    (nothing started: :meth:`prepare` and the reads need no dispatcher)."""
    reg = registry()
    limits = limits or MediaLimits()
    blobs = BlobStore(root / "blobs")
    executor = executor or InlineExecutor(ToolRunner(reg, blobs, limits))
    plugins = PluginExecutionService(reg, executor, default_timeout_s=5.0)
    jobs = JobExecutionService(store or InMemoryJobStore(), plugins, poll_interval_s=0.02)
    return AnalysisExecutionService(
        reg, jobs, blobs, limits=limits, max_timeout_s=60.0, sync_wait_s=5.0
    )
