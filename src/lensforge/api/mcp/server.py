"""LensForge as an MCP server, on the official SDK's low-level ``Server``.

Every ``tools/call`` is a job through :class:`AnalysisExecutionService`, owned by the caller
("mcp", or the API key's id once auth sets ``request.state.caller``), so it shows in
``GET /v1/jobs``. Handlers are registered on the SDK server directly (not through its
``call_tool`` decorator, which would answer bad arguments with plain text): LensForge checks
the inputs itself and answers every failure as an ``isError`` result carrying the error
envelope; an unexpected exception is logged and masked as ``internal_error``.

Progress: with a progress token, the job's progress (what the tool reports through
``ctx.progress()``) is watched in the store and forwarded as ``notifications/progress``.

Tasks (the 2025-11-25 specification's experimental tasks): a task-augmented ``tools/call``
submits the job and answers at once with a task whose id is the job id; ``tasks/get``,
``tasks/result``, ``tasks/list`` and ``tasks/cancel`` read and cancel the durable job, so a
task outlives the session and the server process that created it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import McpError

from lensforge import __version__
from lensforge.api.mcp.catalog import (
    BLOB_URI_TEMPLATE,
    TASK_STATUS,
    Catalog,
    Entry,
    error_result,
)
from lensforge.errors import (
    BlobNotFound,
    Conflict,
    InternalError,
    JobNotFound,
    LensForgeError,
)
from lensforge.execution.analysis import AnalysisRequest
from lensforge.execution.jobs import JobExecutionService
from lensforge.store import TERMINAL, JobRecord, Status
from lensforge.wiring import Services

log = logging.getLogger(__name__)

RELATED_TASK = "io.modelcontextprotocol/related-task"
POLL_INTERVAL_MS = 250
TASK_TTL_MS = 7 * 24 * 3600 * 1000
TASK_PAGE = 100
PROGRESS_POLL_S = 0.1
INSTRUCTIONS = (
    "LensForge runs vision-analysis tools as durable jobs. Pass images as "
    "{data: <base64>, mimeType} or {uri: 'lensforge://blobs/<sha256>'}. Long calls can run "
    "as tasks (tools/call with a task) and be polled with tasks/get."
)


def _now_iso(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def task_view(job: JobRecord) -> types.Task:
    """A job as an MCP task: the task id is the job id."""
    if job.status in TERMINAL:
        message = (job.error or {}).get("error", {}).get("message") if job.error else None
    elif job.cancel_requested:
        message = "cancellation requested"
    else:
        message = job.progress_message or job.status.value.lower()
    return types.Task(
        taskId=job.id,
        status=TASK_STATUS[job.status],
        statusMessage=message,
        createdAt=_now_iso(job.created_at),
        lastUpdatedAt=_now_iso(job.updated_at),
        # Jobs are kept until an operator prunes them; the SDK drops a null ttl ("unlimited")
        # from the wire and then refuses its absence, so a week is promised instead.
        ttl=TASK_TTL_MS,
        pollInterval=POLL_INTERVAL_MS,
    )


@dataclass(frozen=True)
class Identity:
    """The caller of one MCP request."""

    owner: str  # owner of the jobs it creates
    tasks_owner: str | None  # whose jobs tasks/* show it (None: everyone's)
    admin: bool  # may name and read any stored blob


def _invalid(message: str, exc: LensForgeError | None = None) -> McpError:
    data = exc.envelope() if exc is not None else None
    return McpError(types.ErrorData(code=types.INVALID_PARAMS, message=message, data=data))


class LensForgeMCP:
    """The MCP handlers over one running LensForge's services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.analysis = services.analysis
        self.jobs = services.jobs
        self.catalog = Catalog(services.registry, services.blobs)
        self.server: Server[Any, Any] = Server(
            "lensforge", version=__version__, instructions=INSTRUCTIONS
        )
        handlers = self.server.request_handlers
        handlers[types.ListToolsRequest] = self._list_tools
        handlers[types.CallToolRequest] = self._call_tool
        handlers[types.ListResourcesRequest] = self._list_resources
        handlers[types.ListResourceTemplatesRequest] = self._list_templates
        handlers[types.ReadResourceRequest] = self._read_resource
        # The SDK marks its tasks API deprecated (tasks left the spec after 2025-11-25);
        # it is still the SDK's way to serve them and to advertise the capability.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            experimental = self.server.experimental
        experimental.get_task()(self._get_task)
        experimental.get_task_result()(self._get_task_result)  # type: ignore[arg-type]
        experimental.list_tasks()(self._list_tasks)
        experimental.cancel_task()(self._cancel_task)
        if not log.isEnabledFor(logging.DEBUG):
            # The SDK logs every request at INFO; LensForge logs jobs itself.
            logging.getLogger("mcp.server.lowlevel.server").setLevel(logging.WARNING)

    def initialization_options(self) -> Any:
        return self.server.create_initialization_options()

    # -- who is calling -------------------------------------------------------------------

    def _caller(self) -> Identity:
        """Who is calling: the API key that auth put on the HTTP request, else "mcp"."""
        caller: Any = None
        with contextlib.suppress(LookupError):
            request = self.server.request_context.request
            caller = getattr(getattr(request, "state", None), "caller", None)
        ident = getattr(caller, "id", None)
        if not isinstance(ident, str) or not ident or ident == "anonymous":
            return Identity("mcp", "mcp", admin=True)  # auth off: as REST's local user
        visible = getattr(caller, "owner_filter", ident)
        return Identity(
            ident,
            visible if isinstance(visible, str) or visible is None else ident,
            admin=bool(getattr(caller, "admin", False)),
        )

    # -- tools ----------------------------------------------------------------------------

    async def _list_tools(self, req: types.ListToolsRequest) -> types.ServerResult:
        return types.ServerResult(types.ListToolsResult(tools=self.catalog.tools()))

    async def _call_tool(self, req: types.CallToolRequest) -> types.ServerResult:
        params = req.params
        job: JobRecord | None = None
        caller = self._caller()
        try:
            entry = self.catalog.resolve(params.name)
            request = AnalysisRequest(
                plugin=entry.spec.plugin,
                tool=entry.spec.name,
                inputs=self.catalog.inputs(entry, params.arguments or {}),
                owner=caller.owner,
                admin=caller.admin,
            )
            if params.task is not None:
                job, _ = await self.analysis.submit(request)
                return types.ServerResult(types.CreateTaskResult(task=task_view(job)))
            job, _ = await self.analysis.submit(request)
            job = await self._finish(job)
            return types.ServerResult(self.catalog.result(entry, job))
        except LensForgeError as exc:
            if params.task is not None:
                # No task exists yet: a task-augmented call can only fail as a request.
                raise _invalid(f"{exc.code}: {exc.message}", exc) from None
            return types.ServerResult(error_result(exc))
        except Exception:
            incident = secrets.token_hex(8)
            log.exception(
                "MCP call of %s failed (incident %s)",
                params.name[:200],
                incident,
                extra={"event": "internal_error", "request_id": incident},
            )
            masked = InternalError(
                f"An internal error occurred; quote incident {incident} to the operator.",
                details={"request_id": incident},
                job_id=job.id if job is not None else None,
            )
            if params.task is not None:
                error = types.ErrorData(
                    code=types.INTERNAL_ERROR, message=masked.message, data=masked.envelope()
                )
                raise McpError(error) from None
            return types.ServerResult(error_result(masked))

    async def _finish(self, job: JobRecord) -> JobRecord:
        """Wait for the job, forwarding its progress; a cancelled call cancels its job."""
        ctx = self.server.request_context
        token = ctx.meta.progressToken if ctx.meta is not None else None
        wait_s = self.analysis.sync_wait_s
        try:
            if token is None or job.status in TERMINAL:
                return await self.jobs.wait(job.id, wait_s, current=job)
            forwarder = _ProgressForwarder(ctx.session, token, ctx.request_id)
            async with anyio.create_task_group() as tg:
                tg.start_soon(forwarder.follow, self.jobs, job.id)
                final = await self.jobs.wait(job.id, wait_s, current=job)
                tg.cancel_scope.cancel()
            await forwarder.finish(final)
            return final
        except anyio.get_cancelled_exc_class():
            # The client cancelled the request (or went away): the work stops too.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.jobs.cancel(job.id, wait_s=0)
            raise

    # -- resources: the blob store --------------------------------------------------------

    async def _list_resources(self, req: types.ListResourcesRequest) -> types.ServerResult:
        return types.ServerResult(types.ListResourcesResult(resources=[]))

    async def _list_templates(self, req: types.ListResourceTemplatesRequest) -> types.ServerResult:
        template = types.ResourceTemplate(
            name="blob",
            title="LensForge blob",
            uriTemplate=BLOB_URI_TEMPLATE,
            description="Media stored by LensForge (images sent to tools, images tools made), "
            "addressed by the sha256 of its bytes.",
        )
        return types.ServerResult(types.ListResourceTemplatesResult(resourceTemplates=[template]))

    async def _read_resource(self, req: types.ReadResourceRequest) -> types.ServerResult:
        uri = str(req.params.uri)
        caller = self._caller()
        try:
            digest = self.catalog.blob_digest(uri)
            if not caller.admin and not await self.jobs.owns_blob(digest, caller.owner):
                raise BlobNotFound(details={"blob": f"sha256:{digest}"})  # not yours: absent
            contents = await anyio.to_thread.run_sync(self.catalog.read_blob, uri)
        except LensForgeError as exc:
            raise McpError(
                types.ErrorData(code=-32002, message=exc.message, data={"uri": uri[:200]})
            ) from None
        return types.ServerResult(types.ReadResourceResult(contents=[contents]))

    # -- tasks: durable jobs --------------------------------------------------------------

    async def _job(self, task_id: str) -> JobRecord:
        try:
            return await self.jobs.get(task_id, owner=self._caller().tasks_owner)
        except JobNotFound:
            raise _invalid(f"Task not found: {task_id[:100]}") from None

    async def _get_task(self, req: types.GetTaskRequest) -> types.GetTaskResult:
        job = await self._job(req.params.taskId)
        return types.GetTaskResult(**task_view(job).model_dump())

    async def _get_task_result(self, req: types.GetTaskPayloadRequest) -> types.CallToolResult:
        job = await self._job(req.params.taskId)
        if job.status not in TERMINAL:
            job = await self.jobs.wait(job.id, self.analysis.sync_wait_s, current=job)
        if job.status not in TERMINAL:
            raise _invalid(f"Task {job.id} is still working; poll tasks/get and ask again.")
        entry: Entry | None
        try:
            entry = self.catalog.resolve(f"{job.plugin}.{job.tool}")
        except LensForgeError:
            entry = None  # a tool no longer enabled: its stored result is still served
        result = self.catalog.result(entry, job)
        result.meta = {**(result.meta or {}), RELATED_TASK: {"taskId": job.id}}
        return result

    async def _list_tasks(self, req: types.ListTasksRequest) -> types.ListTasksResult:
        cursor = req.params.cursor if req.params is not None else None
        owner = self._caller().tasks_owner
        page = await self.jobs.list_jobs(owner=owner, before=cursor, limit=TASK_PAGE + 1)
        more = len(page) > TASK_PAGE
        page = page[:TASK_PAGE]
        return types.ListTasksResult(
            tasks=[task_view(job) for job in page],
            nextCursor=page[-1].id if more and page else None,
        )

    async def _cancel_task(self, req: types.CancelTaskRequest) -> types.CancelTaskResult:
        job = await self._job(req.params.taskId)
        try:
            # A running tool gets cancel_grace_s to stop before its worker is killed.
            wait_s = self.services.settings.cancel_grace_s + 2.0
            job = await self.jobs.cancel(job.id, owner=job.owner, wait_s=wait_s)
        except Conflict as exc:
            message = f"Cannot cancel task {job.id}: it already finished."
            raise _invalid(message, exc) from None
        return types.CancelTaskResult(**task_view(job).model_dump())


class _ProgressForwarder:
    """Sends a job's rising progress as ``notifications/progress`` for one request."""

    def __init__(self, session: Any, token: str | int, request_id: Any) -> None:
        self.session = session
        self.token = token
        self.request_id = request_id
        self.last = -1.0

    async def follow(self, jobs: JobExecutionService, job_id: str) -> None:
        updates = jobs.watch(job_id, interval_s=PROGRESS_POLL_S)
        try:
            async for job in updates:
                await self._send(job.progress, job.progress_message)
        finally:
            close = getattr(updates, "aclose", None)
            if close is not None:  # an async generator: close it now, not when collected
                with anyio.CancelScope(shield=True):
                    await close()

    async def finish(self, job: JobRecord) -> None:
        if job.status is Status.SUCCESS:
            await self._send(1.0, "done")

    async def _send(self, progress: float, message: str | None) -> None:
        if progress <= self.last:
            return
        self.last = progress
        try:
            await self.session.send_progress_notification(
                self.token,
                progress,
                total=1.0,
                message=message,
                related_request_id=str(self.request_id),
            )
        except Exception:  # the client went away: the call's own answer will say so
            log.debug("progress notification dropped", exc_info=True)
