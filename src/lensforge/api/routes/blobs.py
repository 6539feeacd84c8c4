"""Blobs: ``POST /v1/blobs`` streams an upload (an image or a video) into the blob store;
``GET /v1/blobs/{sha256}`` downloads stored media, with HTTP ``Range`` (a browser can seek
in a returned video)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from lensforge.api.auth import ANALYZE, READ, requires
from lensforge.api.deps import AnalysisDep, CallerDep, ServicesDep
from lensforge.api.models import Digest, StoredBlob, documented, operation_id
from lensforge.api.responses import FastJSONResponse
from lensforge.blobs import parse_digest
from lensforge.errors import BlobNotFound, LensForgeError, ValidationError
from lensforge.media import sniff
from lensforge.video.probe import sniff_video

router = APIRouter(prefix="/v1/blobs", tags=["blobs"], generate_unique_id_function=operation_id)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.post(
    "",
    summary="Upload an image or a video (streamed; checked before it is kept)",
    status_code=201,
    openapi_extra=requires(
        ANALYZE,
        requestBody={
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
    ),
    responses=documented(
        {201: (StoredBlob, "Stored: its reference and facts")}, 413, 415, 422, 507
    ),
)
async def upload_blob(request: Request, analysis: AnalysisDep, caller: CallerDep) -> Response:
    stored = await analysis.upload(request.stream(), caller.id)
    return FastJSONResponse(stored.as_dict(), status_code=201)


@router.get(
    "/{digest}",
    summary="Download a blob by its sha256 (Range requests honoured)",
    response_class=StreamingResponse,
    openapi_extra=requires(READ),
    responses=documented({}, 404, 416, 422),
)
async def get_blob(
    digest: Digest,
    request: Request,
    analysis: AnalysisDep,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    hexdigest = parse_digest(digest)
    owner = caller.owner_filter
    if owner is not None and not await analysis.owns_blob(hexdigest, owner):
        raise BlobNotFound(details={"blob": f"sha256:{hexdigest}"})  # 404, not 403: no leaks
    blobs = services.blobs
    size = blobs.size(digest)
    headers = {
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{hexdigest}"',  # content-addressed: the digest is the version
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    media_type = _media_type(b"".join(blobs.stream(digest, 0, min(size, 64) - 1)) if size else b"")
    wanted = _range(request.headers.get("range"), size)
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(blobs.stream(digest), media_type=media_type, headers=headers)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        blobs.stream(digest, start, end), status_code=206, media_type=media_type, headers=headers
    )


def _media_type(head: bytes) -> str:
    for sniffer in (sniff, sniff_video):
        try:
            return sniffer(head)[1]
        except LensForgeError:
            continue
    return "application/octet-stream"


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for, inclusive; None for the whole blob (no header, or
    several ranges, which are answered whole); 416 when it lies beyond the end."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges or another unit: the whole blob, as RFC 9110 allows
    first, last = match.groups()
    if not first and not last:
        return None
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(size)
    return start, end


class RangeNotSatisfiable(ValidationError):
    code = "range_not_satisfiable"
    status = 416

    def __init__(self, size: int) -> None:
        super().__init__(f"The Range lies beyond the blob's {size} bytes.", details={"size": size})
        self.headers = {"Content-Range": f"bytes */{size}"}
