"""The ``thread`` executor: a bounded pool of threads in the server process.

A thread cannot be killed, so a call past its time limit is answered ``timeout`` and asked to
stop (``ctx.cancelled``) while its thread finishes in the background.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from lensforge.errors import Timeout
from lensforge.execution.executors.base import CallControl, tool_context
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner


class ThreadExecutor:
    """Runs calls on a bounded pool of threads in this process."""

    name = "thread"
    in_process = True

    def __init__(self, runner: ToolRunner, workers: int) -> None:
        self.runner = runner
        self.capacity = workers
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="lensforge-tool")

    async def run(self, call: ToolCall, control: CallControl) -> Outcome:
        assert self._pool is not None, "start() the executor first"
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._pool, self.runner.run, call, tool_context(call, control)
        )
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
