"""POST /v1/analyze (sync) and POST /v1/jobs (async): JSON with base64 images, or multipart."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from lensforge.api.deps import (
    IDEMPOTENCY_KEY_DOC,
    RequestRoute,
    analysis_of,
    caller_of,
    idempotency_key_of,
)
from lensforge.api.multipart import read_form
from lensforge.api.responses import FastJSONResponse, error_response
from lensforge.errors import ValidationError, from_envelope
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.security.keys import Caller
from lensforge.store import Status

router = APIRouter(prefix="/v1", tags=["analysis"], route_class=RequestRoute)


class AnalyzeBody(BaseModel):
    """A tool call: images as base64 strings (or ``{"blob": "sha256:..."}``) inside ``inputs``."""

    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(min_length=1, max_length=128, examples=["image"])
    tool: str | None = Field(None, max_length=128, examples=["info"])
    inputs: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0, description="Time limit for this job.")


# The two hottest routes read their services, caller and header straight off the request
# instead of through FastAPI dependencies (which cost more per call than the rest of the
# route); their OpenAPI description is given here instead.
_BODY_DOC: dict[str, Any] = {
    "parameters": [IDEMPOTENCY_KEY_DOC],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": AnalyzeBody.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["plugin"],
                    "properties": {
                        "plugin": {"type": "string"},
                        "tool": {"type": "string"},
                        "image": {"type": "string", "format": "binary"},
                        "inputs": {"type": "string", "description": "Other inputs, as JSON."},
                        "timeout_s": {"type": "number"},
                    },
                }
            },
        },
    },
}


def _problems(exc: PydanticValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


async def read_request(request: Request, caller: Caller, key: str | None) -> AnalysisRequest:
    """Parse a JSON or multipart analysis request into an AnalysisRequest."""
    content_type = request.headers.get("content-type", "")
    uploads: dict[str, bytes] = {}
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, max_files=16, max_fields=256)
        fields: dict[str, Any] = dict(form.fields)
        uploads = dict(form.files)
        raw_inputs = fields.pop("inputs", None)
        inputs: Any = {}
        if raw_inputs:
            try:
                inputs = orjson.loads(raw_inputs)
            except orjson.JSONDecodeError:
                raise ValidationError("Form field 'inputs' must be a JSON object.") from None
        if not isinstance(inputs, dict):
            raise ValidationError("Form field 'inputs' must be a JSON object.")
        data: dict[str, Any] = {
            "plugin": fields.pop("plugin", ""),
            "tool": fields.pop("tool", None) or None,
            "timeout_s": fields.pop("timeout_s", None) or None,
            "inputs": {**fields, **inputs},
        }
    else:
        body = await request.body()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(
                f"The body is not valid JSON ({exc.msg}); send a JSON object or multipart form.",
            ) from None
        if not isinstance(data, dict):
            raise ValidationError("The body must be a JSON object: {plugin, tool?, inputs}.")
    try:
        body_model = AnalyzeBody.model_validate(data)
    except PydanticValidationError as exc:
        problems = _problems(exc)
        raise ValidationError(
            "Invalid request: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems),
            details={"errors": problems},
        ) from None
    return AnalysisRequest(
        plugin=body_model.plugin,
        tool=body_model.tool,
        inputs=body_model.inputs,
        uploads=uploads,
        owner=caller.id,
        admin=caller.admin,
        idempotency_key=key,
        timeout_s=body_model.timeout_s,
    )


@router.post(
    "/analyze",
    summary="Run a tool and wait for its result",
    openapi_extra=_BODY_DOC,
    responses={200: {"description": "The job finished: {job_id, status, result}"}},
)
async def analyze(request: Request) -> Response:
    analysis = analysis_of(request)
    req = await read_request(request, caller_of(request), idempotency_key_of(request))
    req.uploads = _route_uploads(analysis, req)
    job = await analysis.analyze(req)
    if job.status is Status.SUCCESS:
        return FastJSONResponse(
            {"job_id": job.id, "status": job.status.value, "result": job.result}
        )
    if job.status in (Status.FAILED, Status.CANCELLED) and job.error is not None:
        return error_response(from_envelope(job.error))
    return FastJSONResponse(
        {"job_id": job.id, "status": job.status.value},
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


@router.post(
    "/jobs",
    status_code=202,
    summary="Submit a job and return at once",
    openapi_extra=_BODY_DOC,
    responses={202: {"description": "Accepted: {job_id, status: PENDING}"}},
)
async def submit_job(request: Request) -> Response:
    analysis = analysis_of(request)
    req = await read_request(request, caller_of(request), idempotency_key_of(request))
    req.uploads = _route_uploads(analysis, req)
    job, created = await analysis.submit(req)
    return FastJSONResponse(
        {"job_id": job.id, "status": job.status.value},
        status_code=202 if created else 200,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


def _route_uploads(analysis: AnalysisExecutionService, req: AnalysisRequest) -> dict[str, bytes]:
    """Map a lone upload named 'image' or 'file' onto the tool's single image input."""
    if len(req.uploads) != 1:
        return req.uploads
    spec = analysis.resolve(req.plugin, req.tool)
    ((name, payload),) = req.uploads.items()
    if name not in spec.media_fields and name in ("image", "file") and len(spec.media_fields) == 1:
        return {spec.media_fields[0]: payload}
    return req.uploads
