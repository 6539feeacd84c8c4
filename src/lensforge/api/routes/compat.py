"""ForgeSyte's execution routes, same shapes, served by the same services.

Its bugs are fixed: async jobs really run, the plugin name is reported, and a failed job's
result returns its error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from lensforge.api.auth import ANALYZE, READ, requires
from lensforge.api.deps import AnalysisDep, CallerDep
from lensforge.api.models import ErrorEnvelope, JobId, documented
from lensforge.api.responses import FastJSONResponse, timestamp
from lensforge.errors import JobNotFound, LensForgeError
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.media import decode_base64
from lensforge.security.keys import Caller
from lensforge.store import JobRecord, Status

router = APIRouter(
    prefix="/v1/analyze-execution",
    tags=["forgesyte compatibility"],
    generate_unique_id_function=lambda route: f"forgesyte_{route.name}",
)

_STATUS = {
    Status.PENDING: "queued",
    Status.RUNNING: "running",
    Status.SUCCESS: "done",
    Status.FAILED: "error",
    Status.CANCELLED: "cancelled",
}
_FROM_LEGACY = {legacy: status for status, legacy in _STATUS.items()}


class ExecutionBody(BaseModel):
    plugin: str = Field("default", max_length=128)
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
    error: str | None
    created_at: str | None
    completed_at: str | None


class LegacyCancelled(BaseModel):
    job_id: str
    status: Literal["cancelled"]
    cancelled: Literal[True]


class LegacyErrorDetail(BaseModel):
    type: str = Field(examples=["execution_error"])
    message: str
    code: str | None = Field(None, description="LensForge's error code.")
    job_id: str | None = None


class LegacyError(BaseModel):
    """ForgeSyte's error shape; auth, body-size and body-validation refusals come first, in
    LensForge's ErrorEnvelope."""

    detail: str | LegacyErrorDetail


def _documented(
    ok: type[BaseModel], legacy: dict[int, str], *errors: int
) -> dict[int | str, dict[str, Any]]:
    answers = documented({200: (ok, "Successful Response")}, *errors)
    answers.update(
        {code: {"model": LegacyError, "description": why} for code, why in legacy.items()}
    )
    if 400 in answers:  # a body FastAPI cannot parse is refused before the route runs
        answers[400]["model"] = LegacyError | ErrorEnvelope
    return answers


_RUN_ERRORS = {400: "No such plugin or tool, or the tool failed (ForgeSyte's answer)."}
_NOT_FOUND = {404: "No such job (ForgeSyte's answer)."}


def _legacy_error(exc: LensForgeError) -> FastJSONResponse:
    kind = {
        "plugin_not_found": "plugin_not_found",
        "tool_not_found": "invalid_plugin",
        "plugin_unavailable": "invalid_plugin",
    }.get(exc.code, "execution_error")
    return FastJSONResponse(
        {"detail": {"type": kind, "message": exc.message, "code": exc.code}}, status_code=400
    )


def _not_found() -> FastJSONResponse:
    return FastJSONResponse({"detail": "Job not found"}, status_code=404)


async def _owned_job(
    analysis: AnalysisExecutionService, job_id: str, caller: Caller
) -> JobRecord | None:
    """The caller's job, or None (ForgeSyte answers a missing job with its own 404 body)."""
    try:
        return await analysis.get(job_id, owner=caller.owner_filter)
    except JobNotFound:
        return None


def _job(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "plugin": job.plugin,
        "status": _STATUS[job.status],
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
    }


def _request(
    analysis: AnalysisExecutionService, body: ExecutionBody, caller: Caller
) -> AnalysisRequest:
    spec = analysis.resolve(body.plugin, body.tool_name or analysis.default_tool(body.plugin))
    if not spec.media_fields:
        raise LensForgeError(f"Tool {spec.qualified_name} takes no image.")
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
    responses=_documented(ExecutionResult, _RUN_ERRORS, 413, 422),
)
async def execute(
    body: ExecutionBody, analysis: AnalysisDep, caller: CallerDep
) -> FastJSONResponse:
    try:
        job = await analysis.analyze(_request(analysis, body, caller))
    except LensForgeError as exc:
        return _legacy_error(exc)
    if job.status is not Status.SUCCESS:
        message = (job.error or {}).get("error", {}).get("message", f"job {job.status.value}")
        return FastJSONResponse(
            {"detail": {"type": "execution_error", "message": message, "job_id": job.id}},
            status_code=400,
        )
    return FastJSONResponse(
        {"plugin": job.plugin, "job_id": job.id, "status": "done", "result": job.result}
    )


@router.post(
    "/async",
    summary="Queue a plugin run on an image (ForgeSyte)",
    openapi_extra=requires(ANALYZE),
    responses=_documented(ExecutionQueued, _RUN_ERRORS, 413, 422),
)
async def execute_async(
    body: ExecutionBody, analysis: AnalysisDep, caller: CallerDep
) -> FastJSONResponse:
    try:
        job, _ = await analysis.submit(_request(analysis, body, caller))
    except LensForgeError as exc:
        return _legacy_error(exc)
    return FastJSONResponse({"job_id": job.id})


@router.get(
    "/jobs",
    summary="List jobs, newest first (ForgeSyte)",
    openapi_extra=requires(READ),
    responses=_documented(LegacyJobList, {}, 422),
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


@router.get(
    "/jobs/{job_id}",
    summary="A job's status (ForgeSyte)",
    openapi_extra=requires(READ),
    responses=_documented(LegacyJobView, _NOT_FOUND, 422),
)
async def get_job(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
    job = await _owned_job(analysis, job_id, caller)
    if job is None:
        return _not_found()
    return FastJSONResponse({"job": _job(job)})


@router.get(
    "/jobs/{job_id}/result",
    summary="A finished job's result (ForgeSyte)",
    openapi_extra=requires(READ),
    responses=_documented(LegacyResult, {**_NOT_FOUND, 409: "Not finished yet."}, 422),
)
async def get_result(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
    job = await _owned_job(analysis, job_id, caller)
    if job is None:
        return _not_found()
    if not job.status.terminal:
        return FastJSONResponse(
            {"detail": f"Job {job_id} is {_STATUS[job.status]}; the result is not ready."},
            status_code=409,
        )
    error = (job.error or {}).get("error", {}).get("message") if job.error else None
    return FastJSONResponse(
        {
            "job_id": job.id,
            "plugin": job.plugin,
            "status": _STATUS[job.status],
            "result": job.result,
            "error": error,
            "created_at": timestamp(job.created_at),
            "completed_at": timestamp(job.finished_at),
        }
    )


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job (ForgeSyte)",
    openapi_extra=requires(ANALYZE),
    responses=_documented(LegacyCancelled, {**_NOT_FOUND, 409: "Already finished."}, 422),
)
async def cancel(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> FastJSONResponse:
    job = await _owned_job(analysis, job_id, caller)
    if job is None:
        return _not_found()
    if job.status.terminal:
        return FastJSONResponse(
            {"detail": f"Job {job_id} already finished ({_STATUS[job.status]})."}, status_code=409
        )
    try:
        await analysis.cancel(job_id, owner=caller.owner_filter, wait_s=0)
    except LensForgeError as exc:
        return FastJSONResponse({"detail": exc.message}, status_code=exc.status)
    return FastJSONResponse({"job_id": job_id, "status": "cancelled", "cancelled": True})
