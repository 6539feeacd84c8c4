"""ForgeSyte's job routes, for its web UI and scripts, under a prefix (``/forgesyte`` by
default, so they never clash with LensForge's own ``/v1/...``).

Same request and response shapes as ForgeSyte's server (docs/forgesyte.md lists each one);
every route reaches the execution layer through ``services.analysis``, so each image or video
is a durable LensForge job with its timeouts, isolation and cancel. The submits (image and
video) are in :mod:`.forgesyte_submit`, the shapes in :mod:`.forgesyte_views`. Errors are
ForgeSyte's ``{"detail": "..."}`` with LensForge's ``code`` and error envelope beside it. A
caller sees only its own jobs (another tenant's job is 404), as on LensForge's routes.

Mount with ``app.include_router(build_router(settings.forgesyte_prefix))``; each route's
scope is in :func:`route_scopes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from lensforge import __version__
from lensforge.api.auth import authorize, requires
from lensforge.api.compat import forgesyte_submit as submit
from lensforge.api.compat import forgesyte_views as views
from lensforge.api.compat.routing import ShapedRoute
from lensforge.api.deps import AnalysisDep, CallerDep
from lensforge.api.models import ErrorEnvelope, ForgeSyteError
from lensforge.api.responses import FastJSONResponse
from lensforge.errors import (
    Conflict,
    JobNotFound,
    LensForgeError,
    NotFound,
    ValidationError,
    pydantic_problems,
)
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.registry import PluginRecord, PluginState, Registry
from lensforge.security.keys import Caller
from lensforge.store import JobRecord, Status
from lensforge.wiring import Services

MAX_SKIP = 10_000
_MEDIA_ALIASES = ("image_bytes", "image_base64", "frame_base64", "image")
_READ, _ANALYZE = "read", "analyze"
ROUTES: tuple[tuple[str, str, str], ...] = (  # (method, path below the prefix, scope)
    ("POST", "/v1/image/submit", _ANALYZE),
    ("POST", "/v1/video/submit", _ANALYZE),
    ("POST", "/v1/video/upload", _ANALYZE),
    ("POST", "/v1/video/job", _ANALYZE),
    ("GET", "/v1/jobs", _READ),
    ("GET", "/v1/jobs/{job_id}", _READ),
    ("GET", "/v1/jobs/{job_id}/result", _READ),
    ("DELETE", "/v1/jobs/{job_id}", _ANALYZE),
    ("GET", "/v1/plugins", _READ),
    ("GET", "/v1/plugins/", _READ),
    ("GET", "/v1/plugins/{plugin_id}/manifest", _READ),
    ("GET", "/v1/plugins/{plugin_id}/health", _READ),
    ("POST", "/v1/plugins/{plugin_id}/tools/{tool_name}/run", _ANALYZE),
    ("GET", "/v1/health", _READ),
    ("GET", "/v1/ws/jobs/{job_id}", _READ),  # the WebSocket, authorized as a GET
)


def route_scopes(prefix: str = "/forgesyte") -> dict[tuple[str, str], str]:
    """Each route's required scope by (method, path): declared on the routes themselves."""
    return {(method, prefix + path): scope for method, path, scope in ROUTES}


class ForgeSyteRoute(ShapedRoute):
    """A route whose errors take ForgeSyte's shape (``{"detail": ...}``, see the views), at
    ForgeSyte's status for each code."""

    def render(self, error: LensForgeError, request: Request, status: int | None) -> Response:
        status, body = views.exception_view(error, request.method)
        return FastJSONResponse(body, status_code=status, headers=error.headers or None)

    def invalid_request(self, exc: RequestValidationError) -> LensForgeError:
        return ValidationError.of_problems(
            "request", pydantic_problems(list(exc.errors()), "(body)")
        )

    def http_error(self, exc: StarletteHTTPException) -> LensForgeError | None:
        # A body FastAPI cannot even read (bad UTF-8) is ForgeSyte's 400; others pass.
        return ValidationError(f"Invalid request: {exc.detail}") if exc.status_code == 400 else None


class ToolRunBody(BaseModel):
    args: dict[str, Any] = Field(description="Tool arguments (the tool's input schema).")


def build_router(prefix: str = "/forgesyte") -> APIRouter:
    """ForgeSyte's routes under ``prefix``."""
    router = APIRouter(
        prefix=prefix,
        tags=["forgesyte"],
        route_class=ForgeSyteRoute,
        generate_unique_id_function=lambda route: f"forgesyte_api_{route.name}",
        # What the routes themselves refuse takes ForgeSyte's shape; what the app refuses
        # before any route runs (auth, body size, an unexpected error) is LensForge's envelope.
        responses={
            **{
                status: {"model": ForgeSyteError, "description": "ForgeSyte's error shape"}
                for status in (400, 404, 409, 415, 422, 502, 503, 504)
            },
            **{
                status: {"model": ErrorEnvelope, "description": "Refused before the route ran"}
                for status in (401, 403, 413, 429, 500)
            },
        },
    )

    def result_url(job_id: str) -> str:
        return f"{prefix}/v1/jobs/{job_id}/result"

    submit.add_routes(router)

    @router.get("/v1/jobs", summary="List jobs, newest first (ForgeSyte)")
    async def list_jobs(
        analysis: AnalysisDep,
        caller: CallerDep,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        skip: Annotated[int, Query(ge=0, le=MAX_SKIP)] = 0,
    ) -> FastJSONResponse:
        owner = caller.owner_filter
        wanted = skip + limit + 1  # one more tells whether another page follows
        seen: list[JobRecord] = []
        before: str | None = None
        while len(seen) < wanted:
            size = min(500, wanted - len(seen))
            page = await analysis.list_jobs(owner=owner, before=before, limit=size)
            seen.extend(page)
            if len(page) < size:
                break
            before = page[-1].id
        items = seen[skip : skip + limit]
        if owner is None:
            count = sum((await analysis.counts()).values())
        else:  # the store counts by status only: what was seen, and one more if it follows
            count = min(len(seen), skip + limit) + (len(seen) > skip + limit)
        registry = analysis.registry
        return FastJSONResponse(
            {
                "jobs": [views.list_item(j, _record(registry, j), result_url(j.id)) for j in items],
                "count": count,
            }
        )

    @router.get("/v1/jobs/{job_id}", summary="A job's status and result link (ForgeSyte)")
    async def get_job(job_id: str, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
        parts = await _parts(analysis, job_id, caller)
        record = _record(analysis.registry, parts[0])
        return FastJSONResponse(views.job_view(job_id, parts, record, result_url(job_id)))

    @router.get("/v1/jobs/{job_id}/result", summary="A completed job's result file (ForgeSyte)")
    async def get_result(job_id: str, analysis: AnalysisDep, caller: CallerDep) -> Response:
        parts = await _parts(analysis, job_id, caller)
        if any(part.status is not Status.SUCCESS for part in parts):
            raise NotFound("Result not found", job_id=job_id)
        record = _record(analysis.registry, parts[0])
        plugin = views.plugin_id(record) if record else parts[0].plugin
        return FastJSONResponse(
            views.result_file(job_id, parts, record, plugin),
            headers={"Content-Disposition": f'attachment; filename="{job_id}.json"'},
        )

    @router.delete("/v1/jobs/{job_id}", summary="Cancel a job (LensForge addition)")
    async def cancel_job(job_id: str, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
        parts = await _parts(analysis, job_id, caller)
        if all(part.status.terminal for part in parts):
            status = views.job_status(parts)
            raise Conflict(f"Job {job_id} already finished ({status}).", job_id=job_id)
        for part in parts:
            if not part.status.terminal:
                with contextlib.suppress(LensForgeError):  # it finished meanwhile
                    await analysis.cancel(part.id, owner=caller.owner_filter, wait_s=0)
        return FastJSONResponse({"job_id": job_id, "status": "cancelled"})

    @router.get("/v1/plugins", summary="Plugins and their health (ForgeSyte)")
    async def list_plugins(analysis: AnalysisDep) -> FastJSONResponse:
        registry = analysis.registry
        return FastJSONResponse([views.health(registry, r) for r in registry.records()])

    @router.get("/v1/plugins/", summary="Plugins and their health, counted (ForgeSyte)")
    async def list_plugins_counted(analysis: AnalysisDep) -> FastJSONResponse:
        registry = analysis.registry
        states = [record.current_state for record in registry.records()]
        return FastJSONResponse(
            {
                "plugins": [views.health(registry, r) for r in registry.records()],
                "total": len(states),
                "available": sum(
                    s not in (PluginState.FAILED, PluginState.UNAVAILABLE) for s in states
                ),
                "failed": states.count(PluginState.FAILED),
                "unavailable": states.count(PluginState.UNAVAILABLE),
            }
        )

    @router.get("/v1/plugins/{plugin_id}/manifest", summary="A plugin's manifest (ForgeSyte)")
    async def get_manifest(plugin_id: str, analysis: AnalysisDep) -> FastJSONResponse:
        return FastJSONResponse(views.manifest(views.find_plugin(analysis.registry, plugin_id)))

    @router.get("/v1/plugins/{plugin_id}/health", summary="A plugin's health (ForgeSyte)")
    async def get_health(plugin_id: str, analysis: AnalysisDep) -> FastJSONResponse:
        record = views.find_plugin(analysis.registry, plugin_id)
        return FastJSONResponse(views.health(analysis.registry, record))

    @router.post(
        "/v1/plugins/{plugin_id}/tools/{tool_name}/run", summary="Run a tool now (ForgeSyte)"
    )
    async def run_tool(
        plugin_id: str, tool_name: str, body: ToolRunBody, analysis: AnalysisDep, caller: CallerDep
    ) -> FastJSONResponse:
        started = time.perf_counter()
        record = views.find_plugin(analysis.registry, plugin_id)
        spec = views.find_tool(record, tool_name)
        inputs = dict(body.args)
        if spec.media_fields and spec.media_fields[0] not in inputs:
            alias = next((a for a in _MEDIA_ALIASES if a in inputs), None)
            if alias is not None and alias not in spec.input_schema.get("properties", {}):
                inputs[spec.media_fields[0]] = inputs.pop(alias)
        job = await analysis.analyze(
            AnalysisRequest(
                plugin=record.name,
                tool=spec.name,
                inputs=inputs,
                owner=caller.id,
                admin=caller.admin,
            )
        )
        if job.status is not Status.SUCCESS:
            return _job_failed(job)
        return FastJSONResponse(
            {
                "tool_name": tool_name,
                "plugin_id": plugin_id,
                "result": job.result,
                "processing_time_ms": int((time.perf_counter() - started) * 1000),
            }
        )

    @router.get("/v1/health", summary="Service health (ForgeSyte)")
    async def get_service_health(analysis: AnalysisDep) -> FastJSONResponse:
        await analysis.ping()
        return FastJSONResponse(
            {
                "status": "healthy",
                "plugins_loaded": len(analysis.registry.names()),
                "version": __version__,
            }
        )

    @router.websocket("/v1/ws/jobs/{job_id}")
    async def job_progress(websocket: WebSocket, job_id: str) -> None:
        await _progress_socket(websocket, job_id, prefix + "/v1/ws/jobs/{job_id}")

    # Each route declares its scope where the app's auth middleware reads it.
    scopes = route_scopes(prefix)
    for route in router.routes:
        if isinstance(route, APIRoute):
            (method,) = route.methods or {"GET"}
            scope = requires(scopes[(method, route.path)])
            route.openapi_extra = {**(route.openapi_extra or {}), **scope}
    return router


def _record(registry: Registry, job: JobRecord) -> PluginRecord | None:
    try:
        return registry.get(job.plugin)
    except LensForgeError:
        return None


async def _parts(
    analysis: AnalysisExecutionService, job_id: str, caller: Caller
) -> list[JobRecord]:
    """The LensForge jobs of ForgeSyte job ``job_id`` that ``caller`` may see; 404 otherwise."""
    ids = job_id.split(views.JOB_ID_SEPARATOR)
    if len(ids) > views.MAX_TOOLS_PER_JOB or not all(0 < len(part) <= 64 for part in ids):
        raise JobNotFound("Job not found", job_id=job_id[:200])
    try:
        return [await analysis.get(part, owner=caller.owner_filter) for part in ids]
    except JobNotFound:
        raise JobNotFound("Job not found", job_id=job_id[:200]) from None


def _job_failed(job: JobRecord) -> FastJSONResponse:
    error = (job.error or {}).get("error") or {}
    code = str(
        error.get("code") or ("result_not_ready" if not job.status.terminal else "cancelled")
    )
    message = str(error.get("message") or f"The job is {job.status.value.lower()}.")
    status = views.error_status(code, 408 if code == "result_not_ready" else 500, "POST")
    return FastJSONResponse(views.error_body(code, message, error or None), status_code=status)


# -- the progress WebSocket -------------------------------------------------------------------


async def _socket_caller(websocket: WebSocket, route: str) -> Caller:
    """Who is on the socket: the API key from its headers, else from its first message
    ``{"type": "auth", "api_key": "..."}`` (never from the query string)."""
    services: Services = websocket.app.state.services
    headers = websocket.headers
    if services.keys.enabled() and not (headers.get("authorization") or headers.get("x-api-key")):
        try:
            first = json.loads(await asyncio.wait_for(websocket.receive_text(), timeout=10))
        except (TimeoutError, ValueError):
            first = {}
        key = (
            first.get("api_key")
            if isinstance(first, dict) and first.get("type") == "auth"
            else None
        )
        headers = Headers({"x-api-key": str(key)} if key else {})
    return authorize(services, _READ, "GET", route, headers)


async def _progress_socket(websocket: WebSocket, job_id: str, route: str) -> None:
    await websocket.accept()
    services: Services = websocket.app.state.services
    analysis = services.analysis
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(message)

    try:
        caller = await _socket_caller(websocket, route)
        parts = await _parts(analysis, job_id, caller)
    except LensForgeError as exc:
        await send({"job_id": job_id, "status": "error", "message": exc.message, "code": exc.code})
        await websocket.close(code=1008 if exc.status in (401, 403, 429) else 1000)
        return
    record = _record(analysis.registry, parts[0])
    tools = [views.tool_id(record, part.tool) for part in parts]

    async def pump() -> None:
        for index, part in enumerate(parts):
            async for job in analysis.watch(part.id, owner=caller.owner_filter):
                if job.status is Status.RUNNING:
                    await send(views.progress_event(job_id, job, tools, index))
                elif job.status is not Status.PENDING and job.status is not Status.SUCCESS:
                    message = views.error_message([job]) or "Job failed"
                    await send({"job_id": job_id, "status": "error", "message": message})
                    return
        await send({"job_id": job_id, "status": "completed"})

    async def listen() -> None:
        while True:
            text = await websocket.receive_text()
            with contextlib.suppress(ValueError):
                message = json.loads(text)
                if isinstance(message, dict) and message.get("type") == "ping":
                    await send({"type": "pong"})

    pumping = asyncio.ensure_future(pump())
    listening = asyncio.ensure_future(listen())
    try:
        await asyncio.wait({pumping, listening}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, listening):
            task.cancel()
        for task in (pumping, listening):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
    if pumping.done() and not pumping.cancelled() and pumping.exception() is None:
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=1000)


router = build_router()
