"""``ctx.call_tool``: a tool calling another through the ToolRunner runs it for the same job
and attempt, and a cancellation of the caller reaches the tool it called."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from lensforge import Plugin, ToolContext, tool
from lensforge.blobs import BlobStore
from lensforge.execution.tool_runner import ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.registry import Registry


class Nested(Plugin):
    name = "nested"
    version = "1.0.0"

    @tool
    def inner(self, n: int, ctx: ToolContext | None = None) -> dict[str, Any]:
        """What the called tool sees of its call."""
        assert ctx is not None
        return {"n": n, "job_id": ctx.job_id, "attempt": ctx.attempt, "cancelled": ctx.cancelled}

    @tool
    def outer(self, ctx: ToolContext | None = None) -> dict[str, Any]:
        """Call ``inner`` and return what it saw."""
        assert ctx is not None
        outcome = ctx.call_tool("nested.inner", {"n": 3})
        assert outcome.ok, outcome.error
        return dict(outcome.result)


@pytest.fixture
def runner(tmp_path: Path) -> ToolRunner:
    registry = Registry()
    registry.register(Nested)
    return ToolRunner(registry, BlobStore(tmp_path / "blobs"), MediaLimits())


def test_a_called_tool_runs_for_the_callers_job_and_attempt(runner: ToolRunner) -> None:
    call = ToolCall("nested", "outer", {}, job_id="j9", attempt=3)
    outcome = runner.run(call, call.context())
    assert outcome.ok, outcome.error
    assert outcome.result == {"n": 3, "job_id": "j9", "attempt": 3, "cancelled": False}


def test_a_cancelled_callers_called_tool_sees_the_cancellation(runner: ToolRunner) -> None:
    """The called tool shares its caller's cancel signal (here set before the call)."""
    cancelled = threading.Event()
    cancelled.set()
    call = ToolCall("nested", "outer", {}, job_id="j9")
    outcome = runner.run(call, call.context(cancel_event=cancelled))
    assert outcome.ok, outcome.error
    assert outcome.result == {"n": 3, "job_id": "j9", "attempt": 1, "cancelled": True}
