"""The tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663) on LensForge's durable jobs.

The ``mcp`` SDK 2.x ships the extension interface (``mcp.server.extension``) but no tasks
extension; this is one, backed by the job store:

- ``tools/call`` from a client that declares the extension in the request's
  ``_meta["io.modelcontextprotocol/clientCapabilities"]`` (protocol 2026-07-28) submits the job
  and waits ``task_after_s`` (zero for long tools). A job finished by then is answered as a plain
  ``CallToolResult``; otherwise the answer is a ``CreateTaskResult`` (``resultType: "task"``)
  whose ``taskId`` is the job id. The job row is committed before the answer, so ``tasks/get``
  resolves at once (the SEP's strong-consistency rule).
- ``tasks/get``: the job, read from the store. ``working`` (PENDING, RUNNING) with the tool's
  progress message, ``completed`` with ``result`` (the ``CallToolResult`` a plain call returns,
  ``isError`` included: a tool failure is a completed task, not a JSON-RPC error) or
  ``cancelled``. ``failed`` is never produced: a LensForge call never ends in a JSON-RPC error.
- ``tasks/cancel``: asks the job to stop and acknowledges at once (cooperative, eventually
  consistent, as specified); ``tasks/update``: acknowledged (no LensForge tool asks for input).
- ``ttlMs`` is ``null`` (jobs are kept until an operator prunes them), ``pollIntervalMs`` 250.

A task is a job owned by the caller that created it; another caller's task id answers
"Task not found" as an unknown one does. Tasks outlive the request, the session and a server
restart. The methods are served at 2026-07-28 only: the SEP leaves the extension undefined
under the session-based revisions, whose clients get plain synchronous calls.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import (
    Extension,
    MethodBinding,
    RequestHandler,
    compose_tool_call_handler,
)
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from lensforge.errors import Conflict, JobNotFound
from lensforge.store import TERMINAL, JobRecord, Status

TASKS = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 250
PROGRESS_META = "lensforge/progress"
_MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)


class TaskParams(types.RequestParams):
    """``tasks/get`` and ``tasks/cancel`` params."""

    task_id: str = Field(max_length=200)


class UpdateTaskParams(TaskParams):
    """``tasks/update`` params."""

    input_responses: dict[str, Any] = Field(default_factory=dict)


class GetTask(types.Request[TaskParams, Literal["tasks/get"]]):
    """A client's ``tasks/get`` (for the SDK's ``ClientSession.send_request``)."""

    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"  # mirrored into the Mcp-Name header, as the SEP requires


class CancelTask(types.Request[TaskParams, Literal["tasks/cancel"]]):
    """A client's ``tasks/cancel``."""

    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


class TaskHost(Protocol):
    """What the extension needs from the MCP server it extends."""

    async def start_call(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> tuple[JobRecord | None, types.CallToolResult | None]:
        """Submit the call's job: (job, None), or (None, the error result) when refused."""

    async def wait_call(
        self, ctx: ServerRequestContext[Any, Any], job: JobRecord, wait_s: float
    ) -> JobRecord:
        """Wait up to ``wait_s`` for the job (a cancelled request cancels it)."""

    def is_long(self, params: types.CallToolRequestParams) -> bool:
        """Whether the named tool always runs as a task."""

    def render(self, job: JobRecord) -> types.CallToolResult:
        """A finished job as the tool result a plain call returns."""

    async def task_job(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> JobRecord:
        """The caller's job ``task_id`` (JobNotFound when absent or someone else's)."""

    async def cancel_job(self, job: JobRecord) -> None:
        """Ask the job to stop (Conflict when it already finished)."""


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request may be answered with a task (2026-07-28 and the capability)."""
    if ctx.protocol_version not in _MODERN:
        return False
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and TASKS in capabilities.extensions)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def task_status(job: JobRecord) -> str:
    """The task status of a job (a failed job is a completed task with an ``isError`` result)."""
    if job.status is Status.CANCELLED:
        return "cancelled"
    return "completed" if job.status in TERMINAL else "working"


def task_view(job: JobRecord) -> dict[str, Any]:
    """A job as a ``Task`` (wire names): the task id is the job id."""
    if job.status is Status.CANCELLED:
        message = "cancelled"
    elif job.status in TERMINAL:
        message = "failed" if job.status is Status.FAILED else "done"
    elif job.cancel_requested:
        message = "cancellation requested"
    else:
        message = job.progress_message or job.status.value.lower()
    return {
        "taskId": job.id,
        "status": task_status(job),
        "statusMessage": message,
        "createdAt": _iso(job.created_at),
        "lastUpdatedAt": _iso(job.updated_at),
        "ttlMs": None,
        "pollIntervalMs": POLL_INTERVAL_MS,
        "_meta": {PROGRESS_META: job.progress},
    }


class TasksExtension(Extension):
    """``io.modelcontextprotocol/tasks`` over LensForge jobs (see the module docstring)."""

    identifier = TASKS

    def __init__(self, host: TaskHost, task_after_s: float) -> None:
        self.host = host
        self.task_after_s = task_after_s

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", TaskParams, self._get, _MODERN),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, _MODERN),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, _MODERN),
        ]

    async def intercept_tool_call(
        self,
        params: types.CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        if not declares_tasks(ctx):
            return await call_next(ctx)  # a plain synchronous call
        job, refused = await self.host.start_call(ctx, params)
        if job is None:
            return refused
        wait_s = 0.0 if self.host.is_long(params) else self.task_after_s
        if job.status not in TERMINAL and wait_s > 0:
            job = await self.host.wait_call(ctx, job, wait_s)
        if job.status in TERMINAL:
            return self.host.render(job)
        return {**task_view(job), "resultType": "task"}

    async def _job(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> JobRecord:
        try:
            return await self.host.task_job(ctx, task_id)
        except JobNotFound:
            raise MCPError(types.INVALID_PARAMS, f"Task not found: {task_id[:100]}") from None

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        job = await self._job(ctx, params.task_id)
        view = task_view(job)
        if view["status"] == "completed":
            rendered = self.host.render(job)
            view["result"] = rendered.model_dump(by_alias=True, mode="json", exclude_none=True)
        return view

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams
    ) -> dict[str, Any]:
        await self._job(ctx, params.task_id)  # no input is ever outstanding: nothing to apply
        return {}

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: TaskParams
    ) -> dict[str, Any]:
        job = await self._job(ctx, params.task_id)
        if job.status not in TERMINAL:
            # Finished meanwhile (Conflict): acknowledged all the same, as the SEP allows.
            with contextlib.suppress(Conflict):
                await self.host.cancel_job(job)
        return {}


def apply_extension(server: Server[Any], extension: Extension, call_tool: RequestHandler) -> None:
    """Apply ``extension`` to a low-level SDK ``Server`` as ``MCPServer`` does for its own.

    The low-level server (which LensForge uses, to keep its own argument checks and error
    envelopes) has no ``extensions=`` parameter: the methods are registered, the capability
    advertised and ``tools/call`` wrapped by the SDK's ``compose_tool_call_handler``.
    """
    for binding in extension.methods():
        handler = binding.handler
        if binding.protocol_versions is not None:
            handler = _version_gated(binding)  # as MCPServer applies a MethodBinding
        server.add_request_handler(binding.method, binding.params_type, handler)
    server.extensions[extension.identifier] = extension.settings()
    server.add_request_handler(
        "tools/call",
        types.CallToolRequestParams,
        compose_tool_call_handler([extension], call_tool),
    )


def _version_gated(binding: MethodBinding) -> RequestHandler:
    versions = binding.protocol_versions or frozenset()

    async def gated(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        if ctx.protocol_version not in versions:
            raise MCPError(types.METHOD_NOT_FOUND, "Method not found", binding.method)
        return await binding.handler(ctx, params)

    return gated
