"""Fast JSON responses and the public views of jobs."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

from lensforge.errors import LensForgeError, utc_timestamp
from lensforge.logs import current_request_id
from lensforge.store import Event, JobRecord


class FastJSONResponse(JSONResponse):
    """JSON rendered with orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(exc: LensForgeError, headers: dict[str, str] | None = None) -> FastJSONResponse:
    """The envelope of ``exc``, with the id of the request being served (X-Request-ID)."""
    exc.request_id = exc.request_id or current_request_id()
    merged = {**exc.headers, **headers} if headers else exc.headers or None
    return FastJSONResponse(exc.envelope(), status_code=exc.status, headers=merged)


def result_response(job: JobRecord) -> FastJSONResponse:
    """A successful job's result, as POST /v1/analyze and GET /v1/jobs/{id}/result give it."""
    return FastJSONResponse({"job_id": job.id, "status": job.status.value, "result": job.result})


def timestamp(value: float | None) -> str | None:
    """A stored time (epoch seconds) as the API shows it, or None."""
    return None if value is None else utc_timestamp(value)


def job_view(job: JobRecord) -> dict[str, Any]:
    """A job as a flat object (the error envelope only when it failed or was cancelled)."""
    view: dict[str, Any] = {
        "id": job.id,
        "plugin": job.plugin,
        "tool": job.tool,
        "status": job.status.value,
        "progress": job.progress,
        "progress_message": job.progress_message,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
    }
    if job.error is not None and job.status.terminal:
        view["error"] = job.error["error"]
    return view


def event_view(event: Event) -> dict[str, Any]:
    return {
        "from": event.from_status,
        "to": event.to_status,
        "at": utc_timestamp(event.at),
        "worker": event.worker,
        "reason": event.reason,
    }
