"""POST /v1/analyze (sync) and POST /v1/jobs (async): JSON with base64 images, or multipart."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError as PydanticValidationError

from lensforge.api.auth import ANALYZE, requires
from lensforge.api.fastpath import (
    ANALYSIS_REQUEST_DOC,
    RequestRoute,
    analysis_of,
    caller_of,
    idempotency_key_of,
)
from lensforge.api.models import (
    AnalyzeRequest,
    AnalyzeResponse,
    JobAccepted,
    documented,
    operation_id,
)
from lensforge.api.multipart import read_form
from lensforge.api.responses import FastJSONResponse, error_response, result_response
from lensforge.errors import ValidationError, from_envelope, pydantic_problems
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.security.keys import Caller
from lensforge.store import JobRecord, Status

# The two hottest routes: RequestRoute endpoints, read straight off the request (see fastpath).
router = APIRouter(
    prefix="/v1",
    tags=["analysis"],
    route_class=RequestRoute,
    generate_unique_id_function=operation_id,
)


async def read_body(request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A JSON or multipart analysis request's fields (not yet validated) and uploads."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise ValidationError(
                f"The body is not valid JSON ({exc.msg}); send a JSON object or multipart form.",
            ) from None
        if not isinstance(data, dict):
            raise ValidationError("The body must be a JSON object: {plugin, tool?, inputs}.")
        return data, {}
    form = await read_form(request, max_files=16, max_fields=256)
    fields: dict[str, Any] = dict(form.fields)
    raw_inputs = fields.pop("inputs", None)
    inputs: Any = {}
    if raw_inputs:
        try:
            inputs = orjson.loads(raw_inputs)
        except orjson.JSONDecodeError:
            raise ValidationError("Form field 'inputs' must be a JSON object.") from None
    if not isinstance(inputs, dict):
        raise ValidationError("Form field 'inputs' must be a JSON object.")
    data = {
        "plugin": fields.pop("plugin", ""),
        "tool": fields.pop("tool", None) or None,
        "timeout_s": fields.pop("timeout_s", None) or None,
        "inputs": {**fields, **inputs},
    }
    return data, dict(form.files)


def validate_body(data: dict[str, Any]) -> AnalyzeRequest:
    """The request's fields as an :class:`AnalyzeRequest`, or the validation error envelope."""
    try:
        return AnalyzeRequest.model_validate(data)
    except PydanticValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise ValidationError.of_problems("request", pydantic_problems(errors, "(body)")) from None


def analysis_request(
    body: AnalyzeRequest, uploads: dict[str, bytes], caller: Caller, key: str | None
) -> AnalysisRequest:
    return AnalysisRequest(
        plugin=body.plugin,
        tool=body.tool,
        inputs=body.inputs,
        uploads=uploads,
        owner=caller.id,
        admin=caller.admin,
        idempotency_key=key,
        timeout_s=body.timeout_s,
    )


def finished_response(job: JobRecord) -> Response:
    """POST /v1/analyze's answer: the result, the job's error, or 202 if it outlived the wait."""
    if job.status is Status.SUCCESS:
        return result_response(job)
    if job.status in (Status.FAILED, Status.CANCELLED) and job.error is not None:
        return error_response(from_envelope(job.error))
    return accepted_response(job, created=True)


def accepted_response(job: JobRecord, *, created: bool) -> Response:
    """POST /v1/jobs's answer: 202 for a new job, 200 for an idempotent retry's old one."""
    return FastJSONResponse(
        {"job_id": job.id, "status": job.status.value},
        status_code=202 if created else 200,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


@router.post(
    "/analyze",
    summary="Run a tool and wait for its result",
    openapi_extra=requires(ANALYZE, **ANALYSIS_REQUEST_DOC),
    responses=documented(
        {
            200: (AnalyzeResponse, "The job finished: its result"),
            202: (JobAccepted, "Still running after the wait: poll Location"),
        },
        404,
        409,
        413,
        415,
        422,
        502,
        503,
        504,
    ),
)
async def analyze(request: Request) -> Response:
    analysis = analysis_of(request)
    job = await analysis.analyze(await _analysis_request(analysis, request))
    return finished_response(job)


@router.post(
    "/jobs",
    status_code=202,
    summary="Submit a job and return at once",
    openapi_extra=requires(ANALYZE, **ANALYSIS_REQUEST_DOC),
    responses=documented(
        {
            200: (JobAccepted, "An idempotent retry: the job made before"),
            202: (JobAccepted, "Accepted: poll Location"),
        },
        404,
        409,
        413,
        415,
        422,
        503,
    ),
)
async def submit_job(request: Request) -> Response:
    analysis = analysis_of(request)
    job, created = await analysis.submit(await _analysis_request(analysis, request))
    return accepted_response(job, created=created)


async def _analysis_request(
    analysis: AnalysisExecutionService, request: Request
) -> AnalysisRequest:
    caller, key = caller_of(request), idempotency_key_of(request)
    data, uploads = await read_body(request)
    req = analysis_request(validate_body(data), uploads, caller, key)
    req.uploads = _route_uploads(analysis, req)
    return req


def _route_uploads(analysis: AnalysisExecutionService, req: AnalysisRequest) -> dict[str, bytes]:
    """Map a lone upload named 'image' or 'file' onto the tool's single image input."""
    if len(req.uploads) != 1:
        return req.uploads
    spec = analysis.resolve(req.plugin, req.tool)
    ((name, payload),) = req.uploads.items()
    if name not in spec.media_fields and name in ("image", "file") and len(spec.media_fields) == 1:
        return {spec.media_fields[0]: payload}
    return req.uploads
