"""Following a job's progress stream, I/O-free: the SSE parser and the watch's clock.

``GET /v1/jobs/{id}/stream`` sends Server-Sent Events, one per change of status or progress,
the last one ``done``. Both clients feed the lines they read to :class:`EventParser` and let
:class:`ProgressWatch` say how long the next read may wait and when the job is over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from lensforge.client.models import JobInfo

STREAM_CHUNK_S = 30.0  # a quiet progress stream is reopened this often (bounds every read)

Event = tuple[str, dict[str, Any]]


class EventParser:
    """Incremental Server-Sent Events parser: feed lines, get (event, data) pairs."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """Take one line; return the event it completes, if any."""
        if line == "":
            if not self.data:
                return None
            event, data = self.event, "\n".join(self.data)
            self.event, self.data = "message", []
            return event, json.loads(data)
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None

    def events(self, lines: Iterable[str]) -> Iterator[Event]:
        """The events in a sequence of lines."""
        for line in lines:
            item = self.feed(line)
            if item is not None:
                yield item


class ProgressWatch:
    """One ``progress(timeout)`` iteration: its deadline and whether the job has finished.

    A stream is read in chunks of at most :data:`STREAM_CHUNK_S`: a chunk that times out
    (no news) is reopened, and the stream starts again with the job as it stands.
    """

    def __init__(self, job_id: str, timeout: float | None) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.done = False

    def read_timeout(self) -> float:
        """How long the next read may wait; ``TimeoutError`` once the deadline passed."""
        if self.deadline is None:
            return STREAM_CHUNK_S
        remaining = min(STREAM_CHUNK_S, self.deadline - time.monotonic())
        if remaining <= 0:
            raise TimeoutError(f"Job {self.job_id} did not finish within {self.timeout} s.")
        return remaining

    def update(self, event: Event) -> JobInfo:
        """The job as one event shows it; ``done`` is set once it has finished."""
        name, data = event
        info = JobInfo.from_view(data)
        self.done = name == "done" or info.terminal
        return info
