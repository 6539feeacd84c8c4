"""Job status, result, events, listing and cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from lensforge.api.auth import ANALYZE, READ, requires
from lensforge.api.deps import AnalysisDep, CallerDep
from lensforge.api.models import (
    AnalyzeResponse,
    Job,
    JobEvents,
    JobFrames,
    JobId,
    JobPage,
    documented,
    operation_id,
)
from lensforge.api.responses import (
    FastJSONResponse,
    error_response,
    event_view,
    job_view,
    result_response,
)
from lensforge.errors import Cancelled, ResultNotReady, from_envelope
from lensforge.store import Status

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], generate_unique_id_function=operation_id)


@router.get(
    "",
    summary="List jobs, newest first, with filters and cursor paging",
    openapi_extra=requires(READ),
    response_model=None,
    responses=documented({200: (JobPage, "A page of jobs")}, 422),
)
async def list_jobs(
    analysis: AnalysisDep,
    caller: CallerDep,
    status: Annotated[Status | None, Query(description="Only jobs in this state.")] = None,
    plugin: Annotated[str | None, Query(max_length=128)] = None,
    tool: Annotated[str | None, Query(max_length=128)] = None,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    page = await analysis.list_jobs(
        status=status,
        plugin=plugin,
        tool=tool,
        owner=caller.owner_filter,
        before=cursor,
        limit=limit + 1,
    )
    more = len(page) > limit
    page = page[:limit]
    return FastJSONResponse(
        {
            "jobs": [job_view(job) for job in page],
            "next_cursor": page[-1].id if more and page else None,
        }
    )


@router.get(
    "/{job_id}",
    summary="A job's status, progress and timestamps",
    openapi_extra=requires(READ),
    response_model=None,
    responses=documented({200: (Job, "The job")}, 404, 422),
)
async def get_job(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> Response:
    # A Response skips FastAPI's jsonable_encoder walk: this is the route clients poll.
    return FastJSONResponse(job_view(await analysis.get(job_id, owner=caller.owner_filter)))


@router.get(
    "/{job_id}/result",
    summary="A finished job's result (409 until it finishes)",
    openapi_extra=requires(READ),
    responses=documented({200: (AnalyzeResponse, "The result")}, 404, 409, 422, 502, 503, 504),
)
async def get_result(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> Response:
    job = await analysis.get(job_id, owner=caller.owner_filter)
    if job.status is Status.SUCCESS:
        return result_response(job)
    if job.status is Status.FAILED and job.error is not None:
        return error_response(from_envelope(job.error))
    if job.status is Status.CANCELLED:
        return error_response(Cancelled(plugin=job.plugin, tool=job.tool, job_id=job.id))
    return error_response(
        ResultNotReady(
            f"Job {job.id} is {job.status.value}; its result is not ready yet.",
            job_id=job.id,
            plugin=job.plugin,
            tool=job.tool,
            details={"status": job.status.value, "progress": job.progress},
        )
    )


@router.get(
    "/{job_id}/events",
    summary="Every state transition of a job",
    openapi_extra=requires(READ),
    response_model=None,
    responses=documented({200: (JobEvents, "Its transitions, oldest first")}, 404, 422),
)
async def get_events(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> dict[str, Any]:
    events = await analysis.events(job_id, owner=caller.owner_filter)
    return {"job_id": job_id, "events": [event_view(e) for e in events]}


@router.get(
    "/{job_id}/frames",
    summary="A long job's per-frame results, stored as it runs, in pages",
    openapi_extra=requires(READ),
    response_model=None,
    responses=documented({200: (JobFrames, "A page of its frames, in order")}, 404, 422),
)
async def get_frames(
    job_id: JobId,
    analysis: AnalysisDep,
    caller: CallerDep,
    cursor: Annotated[
        int | None, Query(ge=0, le=2**62, description="next_cursor of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    page = await analysis.frames(
        job_id,
        owner=caller.owner_filter,
        after=-1 if cursor is None else cursor,
        limit=limit + 1,
    )
    more = len(page) > limit
    page = page[:limit]
    return {
        "job_id": job_id,
        "frames": [
            {"seq": f.seq, "frame": f.frame, "timestamp_s": f.timestamp_s, "item": f.item}
            for f in page
        ],
        "next_cursor": page[-1].seq if more and page else None,
    }


@router.get(
    "/{job_id}/stream",
    summary="Server-Sent Events: status changes and progress, ending with the terminal state",
    response_class=StreamingResponse,
    openapi_extra=requires(READ),
    responses=documented({}, 404, 422),
)
async def stream_job(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> StreamingResponse:
    owner = caller.owner_filter
    first = await analysis.get(job_id, owner=owner)  # 404 before the stream starts

    async def events() -> AsyncIterator[bytes]:
        status = None
        async for job in analysis.watch(first.id, owner=owner):
            view = job_view(job)
            if job.status.terminal:
                yield _sse("done", view)
                return
            yield _sse("status" if job.status != status else "progress", view)
            status = job.status

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a pending or running job (409 if finished)",
    openapi_extra=requires(ANALYZE),
    responses=documented(
        {
            200: (Job, "It had finished, or is cancelled now"),
            202: (Job, "Cancel requested: it stops soon"),
        },
        404,
        409,
        422,
    ),
)
async def cancel_job(job_id: JobId, analysis: AnalysisDep, caller: CallerDep) -> Response:
    job = await analysis.cancel(job_id, owner=caller.owner_filter)
    return FastJSONResponse(job_view(job), status_code=200 if job.status.terminal else 202)
