"""What every executor shares: the Executor protocol and a call's controls (cancel, progress)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from lensforge.execution.tool_runner import Outcome, ToolCall
from lensforge.plugin import ToolContext

ProgressCallback = Callable[[float, str | None], None]
CheckpointCallback = Callable[[dict[str, Any], list[dict[str, Any]]], None]


class CallControl:
    """The caller's handles on a running call: cancel it, hear its progress and checkpoints,
    and the state it resumes from (a retried job's last checkpoint)."""

    __slots__ = ("_event", "_listeners", "cancelled", "on_checkpoint", "on_progress", "resume")

    def __init__(
        self,
        on_progress: ProgressCallback | None = None,
        *,
        on_checkpoint: CheckpointCallback | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.on_progress = on_progress
        self.on_checkpoint = on_checkpoint
        self.resume = resume
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
    in_process: bool  # whether the ToolRunner runs in this process (and records metrics here)

    @property
    def capacity(self) -> int:
        """How many calls it can take at once (it may change as it runs)."""
        ...

    async def start(self) -> None: ...

    async def run(self, call: ToolCall, control: CallControl) -> Outcome: ...

    async def stop(self) -> None: ...


def resumed(call: ToolCall, control: CallControl) -> ToolCall:
    """The call carrying its job's resume state, if the job has one (it travels with it)."""
    return call if control.resume is None else replace(call, resume=control.resume)


def tool_context(call: ToolCall, control: CallControl) -> ToolContext:
    return resumed(call, control).context(
        on_progress=control.on_progress,
        cancel_event=control.cancel_event,
        on_checkpoint=control.on_checkpoint,
    )
