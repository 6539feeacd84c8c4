"""Live frame streams in the client: :class:`FrameStream` (sync) and :class:`AsyncFrameStream`.

    with Client() as lf, lf.stream("image.info") as stream:
        for event in stream.play(jpeg_frames, fps=30):
            if event.type == "result":
                print(event.frame, event.result)
        print(stream.summary)          # frames in, dropped, results

Both speak the protocol of ``WS /v1/stream`` (docs/video.md, "Live streams") over the
``websockets`` library; :class:`StreamProtocol` holds what they share, with no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect

from lensforge.client.models import ConnectionFailed
from lensforge.errors import LensForgeError, from_envelope

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # results can be large (many boxes); frames are ours


@dataclass(frozen=True)
class StreamEvent:
    """One message from the server: a frame's ``result`` or ``error``, a ``dropped`` report,
    or the ``closed`` summary (the last)."""

    type: str
    frame: int | None = None
    result: Any = None
    error: LensForgeError | None = None
    frames: tuple[int, ...] = ()  # the frames a "dropped" report names
    raw: dict[str, Any] = field(default_factory=dict)


class StreamProtocol:
    """What both streams send and how they read answers (no I/O)."""

    def __init__(
        self, server: str, headers: dict[str, str], target: str, policy: str, inputs: dict[str, Any]
    ) -> None:
        scheme, rest = server.split("://", 1)
        self.url = ("wss://" if scheme == "https" else "ws://") + rest + "/v1/stream"
        self.server = server
        self.headers = {k: v for k, v in headers.items() if k.lower() == "authorization"}
        self.opening = json.dumps(
            {"type": "open", "tool": target, "inputs": inputs, "policy": policy}
        )
        self.info: dict[str, Any] = {}  # the server's "ready" message
        self.summary: dict[str, Any] | None = None  # the "closed" message, once received
        self.sent = 0

    def unreachable(self, exc: Exception) -> ConnectionFailed:
        return ConnectionFailed(
            f"Cannot open a stream at {self.url}: {exc.__class__.__name__}: {exc}",
            details={"server": self.server},
        )

    def ready(self, text: str | bytes) -> None:
        """Read the answer to the opening: ``ready``, or the refusal raised as its error."""
        message = json.loads(text)
        if message.get("type") != "ready":
            raise _error_of(message)
        self.info = message

    def event(self, text: str | bytes) -> StreamEvent:
        message = json.loads(text)
        kind = str(message.get("type"))
        if kind == "closed":
            self.summary = message
        error = _error_of(message) if kind == "error" else None
        if error is not None and message.get("frame") is None:
            raise error  # the stream itself was refused (a bad frame, a limit)
        return StreamEvent(
            type=kind,
            frame=message.get("frame"),
            result=message.get("result"),
            error=error,
            frames=tuple(message.get("frames", ())),
            raw=message,
        )

    @property
    def dropped(self) -> int:
        return int((self.summary or {}).get("dropped", 0))


def _error_of(message: dict[str, Any]) -> LensForgeError:
    if isinstance(message.get("error"), dict):
        return from_envelope({"error": message["error"]})
    return LensForgeError(f"Unexpected stream message: {str(message)[:200]}")


class FrameStream(StreamProtocol):
    """A live stream (sync). ``send`` frames, iterate for events, ``close`` for the summary;
    :meth:`play` does all three for an iterable of frames, paced to a frame rate."""

    _ws: ClientConnection | None = None
    _stack: contextlib.ExitStack | None = None

    def __enter__(self) -> FrameStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            self._stack.close()

    def open(self) -> FrameStream:
        self._stack = contextlib.ExitStack()
        try:
            self._ws = self._stack.enter_context(
                connect(self.url, additional_headers=self.headers, max_size=MAX_MESSAGE_BYTES)
            )
            self._ws.send(self.opening)
            self.ready(self._ws.recv())
        except (OSError, InvalidURI, WebSocketException) as exc:
            self._stack.close()
            raise self.unreachable(exc) from exc
        except BaseException:
            self._stack.close()  # refused: the error says why
            raise
        return self

    @property
    def ws(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("Open the stream first: `with client.stream(...) as stream:`.")
        return self._ws

    def send(self, frame: bytes) -> int:
        """Send one frame (JPEG or PNG bytes); returns its frame id."""
        self.ws.send(frame)
        self.sent += 1
        return self.sent - 1

    def finish(self) -> None:
        """No more frames: the server answers those it holds, then its summary."""
        self.ws.send(json.dumps({"type": "close"}))

    def __iter__(self) -> Iterator[StreamEvent]:
        """Events until the summary (``closed``), which is yielded last."""
        while self.summary is None:
            try:
                text = self.ws.recv()
            except ConnectionClosed as exc:
                raise self.unreachable(exc) from exc
            yield self.event(text)

    def close(self) -> dict[str, Any]:
        """Finish, drain the remaining events, and return the summary."""
        if self.summary is None:
            self.finish()
            for _ in self:
                pass
        assert self.summary is not None
        return self.summary

    def play(self, frames: Iterable[bytes], fps: float | None = None) -> Iterator[StreamEvent]:
        """Send ``frames`` (at ``fps`` a second, else as fast as possible) from a thread, and
        yield the events meanwhile, the summary last."""
        failure: list[BaseException] = []

        def pump() -> None:
            try:
                for index, frame in enumerate(frames):
                    if fps:
                        _pace(started, index, fps)
                    self.send(frame)
                self.finish()
            except (ConnectionClosed, LensForgeError) as exc:
                failure.append(exc)  # the reader sees the close and raises its reason

        started = time.perf_counter()
        sender = threading.Thread(target=pump, name="lensforge-stream-sender", daemon=True)
        sender.start()
        try:
            yield from self
        finally:
            sender.join(timeout=5)


def _pace(started: float, index: int, fps: float) -> None:
    delay = started + index / fps - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


class AsyncFrameStream(StreamProtocol):
    """A live stream (asyncio): the same as :class:`FrameStream`, awaited."""

    _ws: AsyncConnection | None = None
    _stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> AsyncFrameStream:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    async def open(self) -> AsyncFrameStream:
        self._stack = contextlib.AsyncExitStack()
        try:
            self._ws = await self._stack.enter_async_context(
                async_connect(self.url, additional_headers=self.headers, max_size=MAX_MESSAGE_BYTES)
            )
            await self._ws.send(self.opening)
            self.ready(await self._ws.recv())
        except (OSError, InvalidURI, WebSocketException) as exc:
            await self._stack.aclose()
            raise self.unreachable(exc) from exc
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    @property
    def ws(self) -> AsyncConnection:
        if self._ws is None:
            raise RuntimeError("Open the stream first: `async with client.stream(...) as s:`.")
        return self._ws

    async def send(self, frame: bytes) -> int:
        await self.ws.send(frame)
        self.sent += 1
        return self.sent - 1

    async def finish(self) -> None:
        await self.ws.send(json.dumps({"type": "close"}))

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        while self.summary is None:
            try:
                text = await self.ws.recv()
            except ConnectionClosed as exc:
                raise self.unreachable(exc) from exc
            yield self.event(text)

    async def close(self) -> dict[str, Any]:
        if self.summary is None:
            await self.finish()
            async for _ in self:
                pass
        assert self.summary is not None
        return self.summary

    async def play(
        self, frames: Iterable[bytes] | AsyncIterable[bytes], fps: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Send ``frames`` (paced to ``fps``) in a task, yielding the events meanwhile."""

        async def pump() -> None:
            started = time.perf_counter()
            index = 0
            async for frame in _aiter(frames):
                if fps:
                    delay = started + index / fps - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await self.send(frame)
                index += 1
            await self.finish()

        sender = asyncio.ensure_future(pump())
        try:
            async for event in self:
                yield event
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender


async def _aiter(frames: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame
