"""ForgeSyte's execution routes (``/v1/analyze-execution...``), same shapes, served by the
same services.

Its bugs are fixed: async jobs really run, the plugin name is reported, and a failed job's
result returns its error. The routes agree with themselves (issue 16):

- every error they answer is ForgeSyte's ``{"detail": {...}}`` with LensForge's ``code``
  inside (:class:`LegacyError`), a malformed body included; only what the app refuses
  before a route runs (auth, body size, rate limit, an unknown method) is LensForge's
  ErrorEnvelope;
- ``plugin`` is required (ForgeSyte's ``"default"`` plugin never existed here) and may be
  dotted, ``"image.info"``, as on ``POST /v1/analyze``;
- ``DELETE`` answers the status the job really has, the one a GET right after shows;
- a cancelled job's ``error`` is always the same message, whenever it was cancelled.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from lensforge.api.auth import ANALYZE, READ, requires
from lensforge.api.compat.routing import ShapedRoute
from lensforge.api.deps import AnalysisDep, CallerDep
from lensforge.api.models import JobId, documented
from lensforge.api.responses import FastJSONResponse, timestamp
from lensforge.errors import (
    Cancelled,
    Conflict,
    JobNotFound,
    LensForgeError,
    ResultNotReady,
    ValidationError,
)
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.media import decode_base64
from lensforge.security.keys import Caller
from lensforge.store import JobRecord, Status

PREFIX = "/v1/analyze-execution"
_STATUS = {
    Status.PENDING: "queued",
    Status.RUNNING: "running",
    Status.SUCCESS: "done",
    Status.FAILED: "error",
    Status.CANCELLED: "cancelled",
}
_FROM_LEGACY = {legacy: status for status, legacy in _STATUS.items()}
# ForgeSyte's error ``type`` for LensForge's codes; any other code is an execution error.
_TYPES = {
    "plugin_not_found": "plugin_not_found",
    "tool_not_found": "invalid_plugin",
    "plugin_unavailable": "invalid_plugin",
    "validation_error": "validation_error",
    "job_not_found": "not_found",
    "conflict": "conflict",
    "result_not_ready": "conflict",
}
# ForgeSyte's statuses: whatever stops a run (bad base64 too) is its 400; a body that breaks
# the schema is 422 (ExecutionRoute); these keep their own.
_OWN_STATUS = {
    "job_not_found": 404,
    "conflict": 409,
    "result_not_ready": 409,
}


class ExecutionRoute(ShapedRoute):
    """A route whose errors, a malformed body's included, take ForgeSyte's shape."""

    def render(self, error: LensForgeError, request: Request, status: int | None) -> Response:
        return legacy_error(error, status=status)


router = APIRouter(
    prefix=PREFIX,
    tags=["forgesyte compatibility"],
    route_class=ExecutionRoute,
    generate_unique_id_function=lambda route: f"forgesyte_{route.name}",
)


class ExecutionBody(BaseModel):
    plugin: str = Field(
        min_length=1,
        max_length=128,
        examples=["image", "image.info"],
        description="A plugin, or 'plugin.tool'; with neither a tool here nor in tool_name, "
        "the plugin's first tool.",
    )
    image: str = Field(description="The image, base64-encoded.")
    mime_type: str = Field("image/png", max_length=100, description="Ignored: sniffed from bytes.")
    tool_name: str | None = Field(None, max_length=128)


LegacyStatus = Literal["queued", "running", "done", "error", "cancelled"]


class ExecutionResult(BaseModel):
    plugin: str
    job_id: str
    status: Literal["done"]
    result: Any


class ExecutionQueued(BaseModel):
    job_id: str


class LegacyJob(BaseModel):
    id: str
    plugin: str
    status: LegacyStatus
    created_at: str | None
    updated_at: str | None


class LegacyJobList(BaseModel):
    jobs: list[LegacyJob]
    count: int


class LegacyJobView(BaseModel):
    job: LegacyJob


class LegacyResult(BaseModel):
    job_id: str
    plugin: str
    status: LegacyStatus
    result: Any
    error: str | None = Field(description="A failed or cancelled job's error message.")
    created_at: str | None
    completed_at: str | None


class LegacyCancelled(BaseModel):
    """What DELETE did: ``status`` is the job's status now, as a GET shows it; ``cancelled``
    is true once the job is cancelled (false while a running tool is still stopping)."""

    job_id: str
    status: LegacyStatus
    cancelled: bool


class LegacyErrorDetail(BaseModel):
    type: str = Field(
        examples=["execution_error"],
        description="ForgeSyte's kind: plugin_not_found, invalid_plugin, validation_error, "
        "execution_error, not_found or conflict.",
    )
    message: str
    code: str = Field(examples=["plugin_error"], description="LensForge's error code.")
    job_id: str | None = None


class LegacyError(BaseModel):
    """ForgeSyte's error shape, every error these routes answer; what the app refuses before
    a route runs (auth, body size, rate limit, method) is LensForge's ErrorEnvelope."""

    detail: LegacyErrorDetail


def _documented(
    ok: type[BaseModel], legacy: dict[int, str], *errors: int
) -> dict[int | str, dict[str, Any]]:
    answers = documented({200: (ok, "Successful Response")}, *errors)
    legacy = {**legacy, 422: "The body or a parameter does not match this schema."}
    answers.update(
        {code: {"model": LegacyError, "description": why} for code, why in legacy.items()}
    )
    return answers


_RUN_ERRORS = {
    400: "No such plugin or tool, bad base64, a tool that takes no image, or the tool failed."
}
_NOT_FOUND = {404: "No such job."}


def legacy_error(exc: LensForgeError, *, status: int | None = None) -> FastJSONResponse:
    """``exc`` in ForgeSyte's shape, at ForgeSyte's status for it (or ``status``)."""
    detail = {
        "type": _TYPES.get(exc.code, "execution_error"),
        "message": exc.message,
        "code": exc.code,
        "job_id": exc.job_id,
    }
    status = status or _OWN_STATUS.get(exc.code, 400)
    return FastJSONResponse({"detail": detail}, status_code=status, headers=exc.headers or None)


def _job(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "plugin": job.plugin,
        "status": _STATUS[job.status],
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
    }


def error_message(job: JobRecord) -> str | None:
    """A finished job's error as ForgeSyte shows it: the same for every cancelled job."""
    if job.status is Status.CANCELLED:
        return Cancelled().message
    if job.error:
        message: str | None = job.error.get("error", {}).get("message")
        return message
    return None


def _request(
    analysis: AnalysisExecutionService, body: ExecutionBody, caller: Caller
) -> AnalysisRequest:
    tool = body.tool_name
    if not tool and "." not in body.plugin:
        tool = analysis.default_tool(body.plugin)  # ForgeSyte's rule: the first tool
    spec = analysis.resolve(body.plugin, tool or None)
    if not spec.media_fields:
        raise ValidationError(
            f"Tool {spec.qualified_name} takes no image; call it with POST /v1/analyze.",
            plugin=spec.plugin,
            tool=spec.name,
        )
    data = decode_base64(body.image, field="image")
    return AnalysisRequest(
        plugin=spec.plugin,
        tool=spec.name,
        uploads={spec.media_fields[0]: data},
        owner=caller.id,
        admin=caller.admin,
    )


@router.post(
    "",
    summary="Run a plugin on an image (ForgeSyte)",
    openapi_extra=requires(ANALYZE),
    responses=_documented(ExecutionResult, _RUN_ERRORS, 413),
)
async def execute(
    body: ExecutionBody, analysis: AnalysisDep, caller: CallerDep
) -> FastJSONResponse:
    job = await analysis.analyze(_request(analysis, body, caller))
    if job.status is not Status.SUCCESS:
        message = error_message(job) or f"job {job.status.value}"
        code = (job.error or {}).get("error", {}).get("code", "plugin_error")
        return FastJSONResponse(
            {
                "detail": {
                    "type": "execution_error",
                    "message": message,
                    "code": "cancelled" if job.status is Status.CANCELLED else code,
                    "job_id": job.id,
                }
            },
            status_code=400,
        )
    return FastJSONResponse(
        {"plugin": job.plugin, "job_id": job.id, "status": "done", "result": job.result}
    )


@router.post(
    "/async",
    summary="Queue a plugin run on an image (ForgeSyte)",
    openapi_extra=requires(ANALYZE),
    responses=_documented(ExecutionQueued, _RUN_ERRORS, 413),
)
async def execute_async(
    body: ExecutionBody, analysis: AnalysisDep, caller: CallerDep
) -> FastJSONResponse:
    job, _ = await analysis.submit(_request(analysis, body, caller))
    return FastJSONResponse({"job_id": job.id})


@router.get(
    "/jobs",
    summary="List jobs, newest first (ForgeSyte)",
    openapi_extra=requires(READ),
    responses=_documented(LegacyJobList, {}),
)
async def list_jobs(
    analysis: AnalysisDep,
    caller: CallerDep,
    plugin: Annotated[str | None, Query(max_length=128)] = None,
    status_filter: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FastJSONResponse:
    status = _FROM_LEGACY.get(status_filter or "") if status_filter else None
    if status_filter and status is None:
        return FastJSONResponse({"jobs": [], "count": 0})
    page = await analysis.list_jobs(
        plugin=plugin, status=status, owner=caller.owner_filter, limit=limit
    )
    return FastJSONResponse({"jobs": [_job(job) for job in page], "count": len(page)})


async def _owned_job(analysis: AnalysisExecutionService, job_id: str, caller: Caller) -> JobRecord:
    try:
        return await analysis.get(job_id, owner=caller.owner_filter)
    except JobNotFound:
        # The same answer for another tenant's job as for none at all: no id echoed.
        raise JobNotFound("Job not found") from None


@router.get(
    "/jobs/{job_id}",
    summary="A job's status (ForgeSyte)",
    openapi_extra=requires(READ),
    responses=_documented(LegacyJobView, _NOT_FOUND),
)
async def get_job(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
    return FastJSONResponse({"job": _job(await _owned_job(analysis, job_id, caller))})


@router.get(
    "/jobs/{job_id}/result",
    summary="A finished job's result (ForgeSyte)",
    openapi_extra=requires(READ),
    responses=_documented(LegacyResult, {**_NOT_FOUND, 409: "Not finished yet."}),
)
async def get_result(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
    job = await _owned_job(analysis, job_id, caller)
    if not job.status.terminal:
        raise ResultNotReady(
            f"Job {job_id} is {_STATUS[job.status]}; the result is not ready.", job_id=job_id
        )
    return FastJSONResponse(
        {
            "job_id": job.id,
            "plugin": job.plugin,
            "status": _STATUS[job.status],
            "result": job.result,
            "error": error_message(job),
            "created_at": timestamp(job.created_at),
            "completed_at": timestamp(job.finished_at),
        }
    )


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job (ForgeSyte)",
    openapi_extra=requires(ANALYZE),
    responses=_documented(LegacyCancelled, {**_NOT_FOUND, 409: "Already finished."}),
)
async def cancel(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
    job = await _owned_job(analysis, job_id, caller)
    if job.status.terminal:
        raise Conflict(f"Job {job_id} already finished ({_STATUS[job.status]}).", job_id=job_id)
    # Waits (briefly) for a running tool to stop, then reports the status the job has.
    job = await analysis.cancel(job_id, owner=caller.owner_filter)
    status = _STATUS[job.status]
    return FastJSONResponse(
        {"job_id": job_id, "status": status, "cancelled": job.status is Status.CANCELLED}
    )
