"""GET /v1/blobs/{sha256}: stored media (inputs and images tools produced)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from lensforge.api.auth import READ, requires
from lensforge.api.deps import AnalysisDep, CallerDep, ServicesDep
from lensforge.api.models import Digest, documented, operation_id
from lensforge.blobs import parse_digest
from lensforge.errors import BlobNotFound
from lensforge.media import sniff

router = APIRouter(prefix="/v1/blobs", tags=["blobs"], generate_unique_id_function=operation_id)


@router.get(
    "/{digest}",
    summary="Download a blob by its sha256",
    response_class=FileResponse,
    openapi_extra=requires(READ),
    responses=documented({}, 404, 422),
)
async def get_blob(
    digest: Digest, analysis: AnalysisDep, services: ServicesDep, caller: CallerDep
) -> FileResponse:
    hexdigest = parse_digest(digest)
    owner = caller.owner_filter
    if owner is not None and not await analysis.owns_blob(hexdigest, owner):
        raise BlobNotFound(details={"blob": f"sha256:{hexdigest}"})  # 404, not 403: no leaks
    path = services.blobs.path(digest)
    with path.open("rb") as handle:
        head = handle.read(16)
    try:
        _, media_type = sniff(head)
    except Exception:
        media_type = "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})
