"""Executors: where a ToolCall runs. Each one hands the call to a ToolRunner.

- ``inline`` (:mod:`.inline`): in the calling thread;
- ``thread`` (:mod:`.thread`): a bounded pool of threads in the server process;
- ``local`` (:mod:`.local`): supervised worker processes (the default for ``serve``).

:mod:`.base` holds the Executor protocol and :class:`CallControl`.
"""

from lensforge.execution.executors.base import CallControl, Executor, tool_context
from lensforge.execution.executors.inline import InlineExecutor
from lensforge.execution.executors.thread import ThreadExecutor

__all__ = ["CallControl", "Executor", "InlineExecutor", "ThreadExecutor", "tool_context"]
