"""Executors: where a ToolCall runs. Each one hands the call to a ToolRunner.

- ``inline``: in the calling thread (``lensforge run``, tests, embedding in a script).
- ``thread``: a bounded pool of threads in the server process. A thread cannot be killed, so
  a call past its time limit is answered ``timeout`` and asked to stop (``ctx.cancelled``)
  while its thread finishes in the background.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from lensforge.errors import Timeout
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner
from lensforge.plugin import ToolContext

ProgressCallback = Callable[[float, str | None], None]


class CallControl:
    """The caller's handles on a running call: cancel it, hear its progress."""

    __slots__ = ("_event", "_listeners", "cancelled", "on_progress")

    def __init__(self, on_progress: ProgressCallback | None = None) -> None:
        self.on_progress = on_progress
        self.cancelled = False
        self._event: threading.Event | None = None  # made when a thread needs to see it
        self._listeners: list[Callable[[], None]] = []

    @property
    def cancel_event(self) -> threading.Event:
        """An event set on cancel, for tools running on threads of this process."""
        if self._event is None:
            self._event = threading.Event()
            if self.cancelled:
                self._event.set()
        return self._event

    def cancel(self) -> None:
        """Ask the call to stop (``ctx.cancelled`` turns true; executors may enforce it)."""
        if not self.cancelled:
            self.cancelled = True
            if self._event is not None:
                self._event.set()
            for listener in self._listeners:
                listener()

    def add_cancel_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on cancel (at once if the call is already cancelled)."""
        self._listeners.append(listener)
        if self.cancelled:
            listener()


class Executor(Protocol):
    """Runs tool calls; implementations differ only in where the ToolRunner runs."""

    name: str

    @property
    def capacity(self) -> int:
        """How many calls it can take at once (it may change as it runs)."""
        ...

    async def start(self) -> None: ...

    async def run(self, call: ToolCall, control: CallControl) -> Outcome: ...

    async def stop(self) -> None: ...


def _context(call: ToolCall, control: CallControl) -> ToolContext:
    return ToolContext(
        job_id=call.job_id,
        plugin=call.plugin,
        tool=call.tool,
        attempt=call.attempt,
        on_progress=control.on_progress,
        cancel_event=control.cancel_event,
    )


class InlineExecutor:
    """Runs each call in the calling thread; time limits are not enforced."""

    name = "inline"
    capacity = 1

    def __init__(self, runner: ToolRunner) -> None:
        self.runner = runner

    async def start(self) -> None:
        return None

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        return self.runner.run(call, _context(call, control))

    async def stop(self) -> None:
        return None


class ThreadExecutor:
    """Runs calls on a bounded pool of threads in this process."""

    name = "thread"

    def __init__(self, runner: ToolRunner, workers: int) -> None:
        self.runner = runner
        self.capacity = workers
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="lensforge-tool")

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        assert self._pool is not None, "start() the executor first"
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self.runner.run, call, _context(call, control))
        try:
            return await asyncio.wait_for(future, call.timeout_s)
        except TimeoutError:
            control.cancel_event.set()
            return Outcome(
                error=Timeout(
                    f"The tool ran past its time limit of {call.timeout_s:g} s.",
                    plugin=call.plugin,
                    tool=call.tool,
                    job_id=call.job_id,
                    details={"timeout_s": call.timeout_s},
                ).envelope(),
                duration_s=call.timeout_s or 0.0,
            )

    async def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
