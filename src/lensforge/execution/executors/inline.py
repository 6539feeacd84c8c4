"""The ``inline`` executor: runs each call in the calling thread (``lensforge run``, tests,
embedding in a script). Time limits are not enforced."""

from __future__ import annotations

from lensforge.execution.executors.base import CallControl, tool_context
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner


class InlineExecutor:
    """Runs each call in the calling thread; time limits are not enforced."""

    name = "inline"
    in_process = True
    capacity = 1

    def __init__(self, runner: ToolRunner) -> None:
        self.runner = runner

    async def start(self) -> None:
        return None

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        return self.runner.run(call, tool_context(call, control))

    async def stop(self) -> None:
        return None
