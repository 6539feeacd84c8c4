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
from dataclasses import dataclass, field
from typing import Protocol

from lensforge.errors import Timeout
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner
from lensforge.plugin import ToolContext

ProgressCallback = Callable[[float, str | None], None]


@dataclass
class CallControl:
    """The caller's handles on a running call: cancel it, hear its progress."""

    cancel_event: threading.Event = field(default_factory=threading.Event)
    on_progress: ProgressCallback | None = None
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    def cancel(self) -> None:
        """Ask the call to stop (``ctx.cancelled`` turns true; executors may enforce it)."""
        if not self.cancel_event.is_set():
            self.cancel_event.set()
            for listener in self._listeners:
                listener()

    def add_cancel_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on cancel (at once if the call is already cancelled)."""
        self._listeners.append(listener)
        if self.cancel_event.is_set():
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
