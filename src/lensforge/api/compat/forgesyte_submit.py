"""ForgeSyte's submit routes: ``POST {prefix}/v1/image/submit`` and ``.../v1/video/submit``,
and the two steps of its web UI's video flow, ``.../v1/video/upload`` then ``.../v1/video/job``.

The submits take ForgeSyte's request (multipart ``file``; ``plugin_id``, repeatable ``tool``
or ``logical_tool_id`` in the query) and answer its shape (``job_id``, ``plugin``, ``tool`` or
``tools``, ``status: "queued"``, ``submitted_at``). A ForgeSyte job with several tools is one
LensForge job per tool, all made or none (see :mod:`.forgesyte_views`).

An image is read whole (it is capped small). A video is streamed from the request into the
blob store (:class:`~.file_stream.FileStream`, then LensForge's upload path: the bytes decide
it is a video, LensForge's video limits and probe apply) and becomes the caller's blob; each
tool's job names that blob as its video input. The upload step answers the blob as
ForgeSyte's ``video_path`` (``video/input/<sha256>.<container>``), which the job step names
again: only the caller that uploaded it may.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from lensforge.api.compat import forgesyte_views as views
from lensforge.api.compat.file_stream import FileStream
from lensforge.api.deps import AnalysisDep, CallerDep
from lensforge.api.multipart import read_form
from lensforge.api.responses import FastJSONResponse
from lensforge.blobs import parse_digest
from lensforge.errors import LensForgeError, UnsupportedMediaType, ValidationError, utc_timestamp
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from lensforge.execution.uploads import SNIFF_AFTER, StoredUpload, kind_of
from lensforge.registry import PluginRecord
from lensforge.security.keys import Caller
from lensforge.store import JobRecord
from lensforge.tools import ToolSpec

VIDEO_PATH = re.compile(r"^video/input/([0-9a-f]{64})\.[a-z0-9]{1,8}$")


class VideoJobBody(BaseModel):
    """ForgeSyte's ``POST /v1/video/job`` body."""

    plugin_id: str = Field(min_length=1, max_length=128)
    video_path: str = Field(max_length=200, description="What POST /v1/video/upload answered.")
    lockedTools: list[str] = Field(  # ForgeSyte's name
        min_length=1, max_length=views.MAX_TOOLS_PER_JOB, description="The tools to run."
    )


def add_routes(router: APIRouter) -> None:
    """Declare the submit routes on ForgeSyte's ``router``."""
    for kind, input_type in (("image", "image_bytes"), ("video", "video")):
        router.add_api_route(
            f"/v1/{kind}/submit",
            _endpoint(input_type),
            methods=["POST"],
            name=f"submit_{kind}",
            summary=f"Submit {'an' if kind == 'image' else 'a'} {kind} job (ForgeSyte)",
        )

    @router.post("/v1/video/upload", summary="Upload a video for a later job (ForgeSyte)")
    async def upload_video(
        request: Request,
        analysis: AnalysisDep,
        caller: CallerDep,
        plugin_id: Annotated[str, Query(max_length=128)],
    ) -> FastJSONResponse:
        views.find_plugin(analysis.registry, plugin_id)
        stored = await store_video(analysis, request, caller)
        container = str(stored.facts.get("container") or "mp4")
        return FastJSONResponse(
            {"video_path": f"video/input/{parse_digest(stored.blob)}.{container}"}
        )

    @router.post("/v1/video/job", summary="Start a job on an uploaded video (ForgeSyte)")
    async def video_job(
        body: VideoJobBody, analysis: AnalysisDep, caller: CallerDep
    ) -> FastJSONResponse:
        record = views.find_plugin(analysis.registry, body.plugin_id)
        specs = chosen_tools(record, body.lockedTools, None, "video")
        match = VIDEO_PATH.match(body.video_path)
        blob = f"sha256:{match[1]}" if match else ""
        if not blob or not await _may_read(analysis, caller, blob):
            raise ValidationError(f"Video file not found: {body.video_path}")
        jobs = await submit_all(analysis, record, caller, specs, _video_input(blob))
        return FastJSONResponse({"job_id": views.JOB_ID_SEPARATOR.join(job.id for job in jobs)})


async def _may_read(analysis: AnalysisExecutionService, caller: Caller, blob: str) -> bool:
    if not caller.admin and not await analysis.owns_blob(parse_digest(blob), caller.id):
        return False
    return await asyncio.to_thread(analysis.blobs.exists, blob)  # a request, on S3


def _endpoint(input_type: str) -> Callable[..., Coroutine[Any, Any, FastJSONResponse]]:
    async def submit(
        request: Request,
        analysis: AnalysisDep,
        caller: CallerDep,
        plugin_id: Annotated[str, Query(max_length=128)],
        tool: Annotated[list[str] | None, Query()] = None,
        logical_tool_id: Annotated[list[str] | None, Query()] = None,
    ) -> FastJSONResponse:
        chosen = (plugin_id, tool, logical_tool_id)
        return await _submit(request, analysis, caller, chosen, input_type)

    return submit


Media = Callable[[ToolSpec], dict[str, Any]]  # a tool's media, as AnalysisRequest arguments


def _video_input(blob: str) -> Media:
    def media(spec: ToolSpec) -> dict[str, Any]:
        return {"inputs": {spec.video_fields[0]: {"blob": blob}}}

    return media


async def _submit(
    request: Request,
    analysis: AnalysisExecutionService,
    caller: Caller,
    chosen: tuple[str, list[str] | None, list[str] | None],
    input_type: str,
) -> FastJSONResponse:
    """A submit: the tools checked first, then the file read (an image) or streamed into
    the blob store (a video), then one job per tool."""
    plugin_id, tool, logical = chosen
    record = views.find_plugin(analysis.registry, plugin_id)
    specs = chosen_tools(record, tool, logical, input_type)
    media: Media
    if input_type == "video":
        media = _video_input((await store_video(analysis, request, caller)).blob)
    else:
        form = await read_form(request, max_files=1, max_fields=8)
        data = next((content for field, content in form.files if field == "file"), None)
        if data is None:
            raise ValidationError("The form needs the image as a file field named 'file'.")

        def media(spec: ToolSpec) -> dict[str, Any]:
            return {"uploads": {spec.media_fields[0]: data}}

    jobs = await submit_all(analysis, record, caller, specs, media)
    return FastJSONResponse(submitted(record, plugin_id, jobs, specs, logical))


def chosen_tools(
    record: PluginRecord, tool: list[str] | None, logical: list[str] | None, input_type: str
) -> list[ToolSpec]:
    """The tools a submit names (by id, or by capability), each taking ``input_type``
    (``image_bytes`` or ``video``); ForgeSyte's checks in ForgeSyte's order and words."""
    if len(tool or logical or ()) > views.MAX_TOOLS_PER_JOB:
        raise ValidationError(f"At most {views.MAX_TOOLS_PER_JOB} tools per job.")
    if tool and logical:
        raise ValidationError(
            "Mutually exclusive parameters: You cannot provide both 'tool' and "
            "'logical_tool_id' in the same request."
        )
    if not tool and not logical:
        raise ValidationError("Either 'tool' or 'logical_tool_id' must be provided")
    wanted = views.resolve_capabilities(record, logical, input_type) if logical else tool or []
    specs = [views.find_tool(record, name) for name in wanted]
    for spec, name in zip(specs, wanted, strict=True):
        types = views.input_types(spec)
        if input_type not in types:
            raise ValidationError(
                f"Tool '{name}' does not support video input (input_types: {types})"
                if input_type == "video"
                else f"Tool '{name}' does not support image input"
            )
    return specs


def submitted(
    record: PluginRecord,
    plugin_id: str,
    jobs: list[JobRecord],
    specs: list[ToolSpec],
    logical: list[str] | None,
) -> dict[str, Any]:
    """ForgeSyte's answer to a submit."""
    answer: dict[str, Any] = {
        "job_id": views.JOB_ID_SEPARATOR.join(job.id for job in jobs),
        "plugin": plugin_id,
        "status": "queued",
        "submitted_at": utc_timestamp(jobs[0].created_at),
    }
    resolved = [views.tool_id(record, spec.name) for spec in specs]
    if len(resolved) == 1:
        answer["tool"] = resolved[0]
    elif logical:
        answer["tools"] = [
            {"logical": name, "resolved": tool}
            for name, tool in zip(logical, resolved, strict=True)
        ]
    else:
        answer["tools"] = resolved
    return answer


async def store_video(
    analysis: AnalysisExecutionService, request: Request, caller: Caller
) -> StoredUpload:
    """The form's ``file`` streamed into the blob store, checked as a video, the caller's."""
    stored = await analysis.upload(_video_only(FileStream(request).chunks()), caller.id)
    if stored.kind != "video":  # _video_only refused it already; a second guard costs nothing
        raise UnsupportedMediaType("The file is not a video.")
    return stored


async def _video_only(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` as they come, once their first bytes say they are a video (an image, or
    anything else, is refused before it is stored)."""
    head = b""
    async for chunk in chunks:
        if len(head) >= SNIFF_AFTER:
            yield chunk
            continue
        head += chunk
        if len(head) >= SNIFF_AFTER:
            _check_video(head)
            yield head
    if 0 < len(head) < SNIFF_AFTER:
        _check_video(head)
        yield head


def _check_video(head: bytes) -> None:
    if kind_of(head) != "video":
        raise UnsupportedMediaType(
            "The file is an image; the video submit takes a video (MP4, MOV, WebM, MKV, AVI): "
            "send images to the image submit."
        )


async def submit_all(
    analysis: AnalysisExecutionService,
    record: PluginRecord,
    caller: Caller,
    specs: list[ToolSpec],
    media: Media,
) -> list[JobRecord]:
    """One job per tool, all or none: a later refusal cancels the jobs made before it."""
    jobs: list[JobRecord] = []
    try:
        for spec in specs:
            request = AnalysisRequest(
                plugin=record.name,
                tool=spec.name,
                owner=caller.id,
                admin=caller.admin,
                **media(spec),
            )
            job, _ = await analysis.submit(request)
            jobs.append(job)
    except LensForgeError:
        for job in jobs:
            with contextlib.suppress(LensForgeError):
                await analysis.cancel(job.id, wait_s=0)
        raise
    return jobs


__all__ = [
    "VideoJobBody",
    "add_routes",
    "chosen_tools",
    "store_video",
    "submit_all",
    "submitted",
]
