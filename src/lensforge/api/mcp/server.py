"""LensForge as an MCP server, on the official SDK's (2.x) low-level ``Server``.

Every ``tools/call`` is a job through :class:`AnalysisExecutionService`, owned by the caller
("mcp", or the API key's id once auth sets ``request.state.caller``), so it shows in
``GET /v1/jobs``. LensForge checks the arguments itself (the SDK's ``MCPServer`` would answer
bad arguments with plain text) and answers every failure as an ``isError`` result carrying the
error envelope; an unexpected exception is logged and masked as ``internal_error``.

Progress: with a progress token, the job's progress (what the tool reports through
``ctx.progress()``) is watched in the store and forwarded as ``notifications/progress``.

Long calls: the tasks extension (``tasks.py``) answers a declaring client with a task; any
other client waits up to ``sync_wait_s`` and then gets ``result_not_ready`` with the job id.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from lensforge import __version__
from lensforge.api.mcp.apps import UI, VIEW_URI, ResultView
from lensforge.api.mcp.catalog import BLOB_URI_TEMPLATE, Catalog, Entry
from lensforge.api.mcp.results import Results, blob_digest, error_result
from lensforge.api.mcp.tasks import TasksExtension, apply_extension
from lensforge.errors import BlobNotFound, InternalError, LensForgeError
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.store import TERMINAL, JobRecord, Status
from lensforge.wiring import Services

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "LensForge runs vision-analysis tools as durable jobs. Pass images as MCP image content "
    "{type: 'image', data: <base64>, mimeType} or {uri: 'lensforge://blobs/<sha256>'}. "
    "Clients declaring the io.modelcontextprotocol/tasks extension get long calls as tasks."
)


@dataclass(frozen=True)
class Identity:
    """The caller of one MCP request."""

    owner: str  # owner of the jobs it creates
    tasks_owner: str | None  # whose jobs tasks/* show it (None: everyone's)
    admin: bool  # may name and read any stored blob


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Identity:
    """Who is calling: the API key that auth put on the HTTP request, else "mcp"."""
    request = ctx.request
    caller = getattr(getattr(request, "state", None), "caller", None)
    ident = getattr(caller, "id", None)
    if not isinstance(ident, str) or not ident or ident == "anonymous":
        return Identity("mcp", "mcp", admin=True)  # auth off, or stdio: as REST's local user
    visible = getattr(caller, "owner_filter", ident)
    return Identity(
        ident,
        visible if isinstance(visible, str) or visible is None else ident,
        admin=bool(getattr(caller, "admin", False)),
    )


class LensForgeMCP:
    """The MCP handlers over one running LensForge's services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.analysis: AnalysisExecutionService = services.analysis
        settings = services.settings
        self.view = ResultView()
        self.catalog = Catalog(services.registry, tool_meta=self.view.tool_meta())
        inline = settings.mcp_inline_image_bytes
        self.results = Results(services.blobs, inline_bytes=int(inline))
        self.server: Server[Any] = Server(
            "lensforge",
            version=__version__,
            instructions=INSTRUCTIONS,
            # Mcp-Param-* header checks look the schema up here, not by running tools/list
            get_tool_input_schema=self.catalog.input_schema,
            on_list_tools=self._list_tools,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
        )
        self.server.middleware.clear()  # no OpenTelemetry span per message: /metrics counts jobs
        task_after_s = settings.mcp_task_after_s
        self.tasks = TasksExtension(self, task_after_s=task_after_s)
        apply_extension(self.server, self.tasks, self._call_tool)
        self.server.extensions[UI] = {}  # the result view (apps.py): a resource, no methods
        if not log.isEnabledFor(logging.DEBUG):
            # The SDK logs every request at INFO; LensForge logs jobs itself.
            for name in ("mcp.server.lowlevel.server", "mcp.server.streamable_http_manager"):
                logging.getLogger(name).setLevel(logging.WARNING)

    def initialization_options(self) -> Any:
        return self.server.create_initialization_options()

    # -- tools ----------------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.catalog.tools())

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        job, refused = await self.start_call(ctx, params)
        if job is None:
            assert refused is not None
            return refused
        try:
            job = await self.wait_call(ctx, job, self.analysis.sync_wait_s)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            return self._masked(params.name, job)
        return self.render(job)

    async def start_call(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> tuple[JobRecord | None, types.CallToolResult | None]:
        """Submit the call's job: (job, None), or (None, the error result) when refused."""
        caller = caller_of(ctx)
        try:
            entry = self.catalog.resolve(params.name)
            request = AnalysisRequest(
                plugin=entry.spec.plugin,
                tool=entry.spec.name,
                inputs=self.catalog.inputs(entry, params.arguments or {}),
                owner=caller.owner,
                admin=caller.admin,
            )
            job, _ = await self.analysis.submit(request)
        except LensForgeError as exc:
            return None, error_result(exc)
        except Exception:
            return None, self._masked(params.name, None)
        return job, None

    def _masked(self, name: str, job: JobRecord | None) -> types.CallToolResult:
        incident = secrets.token_hex(8)
        log.exception(
            "MCP call of %s failed (incident %s)",
            name[:200],
            incident,
            extra={"event": "internal_error", "request_id": incident},
        )
        return error_result(
            InternalError(
                f"An internal error occurred; quote incident {incident} to the operator.",
                details={"request_id": incident},
                job_id=job.id if job is not None else None,
            )
        )

    async def wait_call(
        self, ctx: ServerRequestContext[Any, Any], job: JobRecord, wait_s: float
    ) -> JobRecord:
        """Wait for the job, forwarding its progress; a cancelled call cancels its job."""
        token = progress_token_from_params(ctx.params)
        try:
            if token is None or job.status in TERMINAL:
                return await self.analysis.wait(job.id, wait_s, current=job)
            forwarder = _ProgressForwarder(ctx)
            async with anyio.create_task_group() as tg:
                tg.start_soon(forwarder.follow, self.analysis, job.id)
                final = await self.analysis.wait(job.id, wait_s, current=job)
                tg.cancel_scope.cancel()
            await forwarder.finish(final)
            return final
        except anyio.get_cancelled_exc_class():
            # The client cancelled the request (or went away): the work stops too.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.analysis.cancel(job.id, wait_s=0)
            raise

    def is_long(self, params: types.CallToolRequestParams) -> bool:
        """Tools that always run as tasks: those declaring ``long`` (video tools, say)."""
        try:
            entry = self.catalog.resolve(params.name)
        except LensForgeError:
            return False
        return entry.spec.long

    def render(self, job: JobRecord) -> types.CallToolResult:
        """A finished job as a tool result (also for tools no longer enabled)."""
        entry: Entry | None
        try:
            entry = self.catalog.resolve(f"{job.plugin}.{job.tool}")
        except LensForgeError:
            entry = None
        return self.results.result(entry, job)

    async def task_job(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> JobRecord:
        return await self.analysis.get(task_id, owner=caller_of(ctx).tasks_owner)

    async def cancel_job(self, job: JobRecord) -> None:
        await self.analysis.cancel(job.id, owner=job.owner, wait_s=0)

    # -- resources: the blob store --------------------------------------------------------

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[self.view.resource()])

    async def _list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            name="blob",
            title="LensForge blob",
            uri_template=BLOB_URI_TEMPLATE,
            description="Media stored by LensForge (images sent to tools, images tools made), "
            "addressed by the sha256 of its bytes.",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri == VIEW_URI:
            return types.ReadResourceResult(contents=[self.view.read()])
        caller = caller_of(ctx)
        try:
            digest = blob_digest(uri)
            if not caller.admin and not await self.analysis.owns_blob(digest, caller.owner):
                raise BlobNotFound(details={"blob": f"sha256:{digest}"})  # not yours: absent
            contents = await anyio.to_thread.run_sync(self.results.read_blob, uri)
        except LensForgeError as exc:
            raise MCPError(-32002, exc.message, {"uri": uri[:200]}) from None
        return types.ReadResourceResult(contents=[contents])


class _ProgressForwarder:
    """Sends a job's rising progress as ``notifications/progress`` for one request."""

    def __init__(self, ctx: ServerRequestContext[Any, Any]) -> None:
        self.ctx = ctx
        self.last = -1.0

    async def follow(self, analysis: AnalysisExecutionService, job_id: str) -> None:
        updates = analysis.watch(job_id)
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
            await self.ctx.session.report_progress(progress, total=1.0, message=message)
        except Exception:  # the client went away: the call's own answer will say so
            log.debug("progress notification dropped", exc_info=True)
