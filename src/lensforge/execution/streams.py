"""Live frame streams: a session that runs an image tool on each frame a client sends.

A stream names one tool (with its other inputs) once; each frame (JPEG/PNG bytes) is checked
at the door (size, then a header-only probe), stored as a blob and run through the server's
executor as a tool call, one frame at a time, so results come back in frame order and the
plugin stays warm in its worker for the stream's life. Frames are not jobs; the stream is
recorded (who, which tool, frames in, dropped, results out) by :class:`StreamHub`.

Back-pressure is a policy, never an unbounded queue: at most ``queue`` frames wait beside
the one running. ``drop_oldest`` (the default) drops the oldest waiting frame for the new
one, ``drop_newest`` drops the new one, ``block`` makes the sender wait. Frames past the
stream's frame-rate limit are dropped too. Every drop is reported to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lensforge.blobs import Blobs
from lensforge.errors import (
    InternalError,
    LensForgeError,
    PayloadTooLarge,
    RateLimited,
    ValidationError,
)
from lensforge.execution.executors import CallControl, Executor
from lensforge.execution.tool_runner import ToolCall
from lensforge.media import MediaLimits, probe
from lensforge.tools import ToolSpec

log = logging.getLogger(__name__)

Policy = Literal["drop_oldest", "drop_newest", "block"]
POLICIES: tuple[str, ...] = get_args(Policy)
_PLACEHOLDER = {"blob": "sha256:" + "0" * 64}  # stands for a frame while inputs are checked


@dataclass(frozen=True)
class StreamLimits:
    """Per-stream and per-key limits (from settings)."""

    max_per_key: int = 4
    max_frame_bytes: int = 8 * 1024 * 1024
    max_fps: float = 60.0
    queue: int = 2
    timeout_s: float = 30.0


@dataclass
class StreamStats:
    """What a stream did: the figures recorded when it closes."""

    frames_in: int = 0
    dropped: int = 0
    results: int = 0
    errors: int = 0


@dataclass
class _Frame:
    id: int
    data: bytes
    received: float = field(default_factory=time.perf_counter)


class StreamSession:
    """One open stream. Feed it with :meth:`send`, read its messages with :meth:`messages`,
    end it with :meth:`finish` (drain, then a summary) or :meth:`abort` (client gone)."""

    def __init__(
        self,
        hub: StreamHub,
        spec: ToolSpec,
        field_name: str,
        inputs: dict[str, Any],
        *,
        owner: str,
        policy: Policy,
        limits: StreamLimits,
    ) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.hub = hub
        self.spec = spec
        self.field = field_name
        self.inputs = inputs
        self.owner = owner
        self.policy = policy
        self.limits = limits
        self.stats = StreamStats()
        self.started = time.time()
        self._ids = itertools.count()
        self._waiting: deque[_Frame] = deque()
        self._changed = asyncio.Condition()
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=256)
        self._finishing = False
        self._tokens = max(1.0, limits.max_fps)
        self._refilled = time.monotonic()
        self._runner = asyncio.ensure_future(self._run())

    @property
    def tool_id(self) -> str:
        return f"{self.spec.plugin}.{self.spec.name}"

    def check(self, data: bytes) -> None:
        """Refuse a frame that is too large (PayloadTooLarge) or not an image (415/422)."""
        if len(data) > self.limits.max_frame_bytes:
            raise PayloadTooLarge(
                f"A frame of {len(data)} bytes is over this stream's limit of "
                f"{self.limits.max_frame_bytes} bytes.",
                details={"bytes": len(data), "max_frame_bytes": self.limits.max_frame_bytes},
            )
        probe(data, self.hub.media_limits)

    async def send(self, data: bytes) -> int:
        """Accept one frame (checked first: see :meth:`check`); returns its frame id.

        Frames dropped to make room, or for the rate limit, are reported on the outbox.
        """
        self.check(data)
        frame = _Frame(next(self._ids), data)
        self.stats.frames_in += 1
        self.hub.totals["frames_in"] += 1
        if not self._take_token():
            await self._report_dropped([frame.id], "rate")
            return frame.id
        dropped: list[int] = []
        async with self._changed:
            if self.policy == "block":
                await self._changed.wait_for(lambda: len(self._waiting) < self.limits.queue)
            elif len(self._waiting) >= self.limits.queue:
                if self.policy == "drop_newest":
                    dropped.append(frame.id)
                else:
                    dropped.append(self._waiting.popleft().id)
            if frame.id not in dropped:
                self._waiting.append(frame)
            self._changed.notify_all()
        if dropped:
            await self._report_dropped(dropped, "queue_full")
        return frame.id

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """Results, errors and drop reports in order, then the summary once finished."""
        while (message := await self._outbox.get()) is not None:
            yield message

    async def finish(self) -> None:
        """No more frames: run those waiting, then send the summary and end the messages."""
        async with self._changed:
            self._finishing = True
            self._changed.notify_all()
        await self._runner

    def abort(self) -> None:
        """The client is gone: stop at once (the frame running is left to its worker).
        Synchronous, so that a cancelled handler can still call it on its way out."""
        self._runner.cancel()

    def summary(self) -> dict[str, Any]:
        return {
            "type": "closed",
            "stream_id": self.id,
            "frames_in": self.stats.frames_in,
            "dropped": self.stats.dropped,
            "results": self.stats.results,
            "errors": self.stats.errors,
        }

    def _take_token(self) -> bool:
        now = time.monotonic()
        burst = max(1.0, self.limits.max_fps)
        self._tokens = min(burst, self._tokens + (now - self._refilled) * self.limits.max_fps)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def _report_dropped(self, frames: list[int], reason: str) -> None:
        self.stats.dropped += len(frames)
        self.hub.totals["dropped"] += len(frames)
        message = {"type": "dropped", "frames": frames, "reason": reason}
        await self._outbox.put({**message, "total": self.stats.dropped})

    async def _run(self) -> None:
        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda: bool(self._waiting) or self._finishing)
                    if not self._waiting:
                        break
                    frame = self._waiting.popleft()
                    self._changed.notify_all()
                try:
                    message = await self._call(frame)
                except Exception:  # the blob store or executor failed, not the tool
                    log.exception("stream %s frame %d failed", self.id, frame.id)
                    failure = InternalError("The frame could not be run; see the server log.")
                    message = self._failed(frame, failure)
                await self._outbox.put(message)
            await self._outbox.put(self.summary())
        finally:
            with contextlib.suppress(asyncio.QueueFull):  # a reader still waiting: end it
                self._outbox.put_nowait(None)
            self.hub.closed(self)

    def _failed(self, frame: _Frame, error: LensForgeError) -> dict[str, Any]:
        self.stats.errors += 1
        self.hub.totals["errors"] += 1
        envelope = error.bind(plugin=self.spec.plugin, tool=self.spec.name).envelope()
        return {"type": "error", "frame": frame.id, "error": envelope["error"]}

    async def _call(self, frame: _Frame) -> dict[str, Any]:
        ref = await asyncio.to_thread(self.hub.blobs.put, frame.data)
        call = ToolCall(
            plugin=self.spec.plugin,
            tool=self.spec.name,
            inputs={**self.inputs, self.field: {"blob": ref}},
            job_id=f"stream-{self.id}-{frame.id}",
            timeout_s=self.spec.timeout_s or self.limits.timeout_s,
        )
        outcome = await self.hub.executor.run(call, CallControl())
        latency_ms = round((time.perf_counter() - frame.received) * 1000, 3)
        if outcome.error is not None:
            self.stats.errors += 1
            self.hub.totals["errors"] += 1
            return {"type": "error", "frame": frame.id, "error": outcome.error["error"]}
        self.stats.results += 1
        self.hub.totals["results"] += 1
        return {
            "type": "result",
            "frame": frame.id,
            "result": outcome.result,
            "latency_ms": latency_ms,
        }


class StreamHub:
    """Opens streams, holds each key's count of open ones, and the running totals that
    ``/metrics`` shows; a closed stream is logged with its figures."""

    def __init__(self, executor: Executor, blobs: Blobs, media_limits: MediaLimits) -> None:
        self.executor = executor
        self.blobs = blobs
        self.media_limits = media_limits
        self.open_by_owner: dict[str, int] = {}
        self.sessions: set[StreamSession] = set()
        self.totals: dict[str, int] = dict.fromkeys(
            ("opened", "frames_in", "dropped", "results", "errors"), 0
        )

    @property
    def active(self) -> int:
        return len(self.sessions)

    def snapshot(self) -> dict[str, int]:
        """Streams open now and the running totals since start-up (for ``/metrics``)."""
        return {"open": self.active, **self.totals}

    def open(
        self,
        spec: ToolSpec,
        inputs: dict[str, Any],
        *,
        owner: str,
        policy: str = "drop_oldest",
        limits: StreamLimits | None = None,
    ) -> StreamSession:
        """A new session for ``spec``; raises ValidationError for a tool that takes no
        image or bad inputs, RateLimited when ``owner`` has its limit of open streams."""
        limits = limits or StreamLimits()
        if policy not in POLICIES:
            raise ValidationError(
                f"Unknown back-pressure policy {policy!r}; one of {', '.join(POLICIES)}.",
                details={"policy": policy},
            )
        if len(spec.media_fields) != 1:
            raise ValidationError(
                f"{spec.plugin}.{spec.name} does not take exactly one image, so it cannot "
                "run on a stream's frames; stream an image tool (e.g. image.info).",
                details={"media_fields": list(spec.media_fields)},
            )
        field_name = spec.media_fields[0]
        if field_name in inputs:
            raise ValidationError(
                f"'{field_name}' comes from each frame; do not pass it when opening the stream.",
                details={"field": field_name},
            )
        spec.validate_inputs({**inputs, field_name: _PLACEHOLDER})
        if self.open_by_owner.get(owner, 0) >= limits.max_per_key:
            raise RateLimited(
                f"This key already has {limits.max_per_key} open streams (the limit); "
                "close one first.",
                details={"max_streams_per_key": limits.max_per_key},
            )
        session = StreamSession(
            self,
            spec,
            field_name,
            dict(inputs),
            owner=owner,
            policy=policy,  # type: ignore[arg-type]  # checked against POLICIES above
            limits=limits,
        )
        self.sessions.add(session)
        self.open_by_owner[owner] = self.open_by_owner.get(owner, 0) + 1
        self.totals["opened"] += 1
        return session

    def closed(self, session: StreamSession) -> None:
        """Forget an ended session (once) and log its figures."""
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        left = self.open_by_owner.get(session.owner, 1) - 1
        if left:
            self.open_by_owner[session.owner] = left
        else:
            self.open_by_owner.pop(session.owner, None)
        stats = session.stats
        log.info(
            "stream %s closed: %s by %s, %d frames in, %d dropped, %d results",
            session.id,
            session.tool_id,
            session.owner,
            stats.frames_in,
            stats.dropped,
            stats.results,
            extra={
                "event": "stream_closed",
                "stream_id": session.id,
                "tool": session.tool_id,
                "owner": session.owner,
                "frames_in": stats.frames_in,
                "dropped": stats.dropped,
                "results": stats.results,
                "duration_s": round(time.time() - session.started, 3),
            },
        )
