"""The dashboard's routes: the page at ``/``, its assets under ``/dashboard/``, and the
overview figures at ``GET /v1/stats``.

The assets are package data, read once when the router is built and answered from memory
with an ETag (a reload costs a 304). A Content-Security-Policy of ``'self'`` keeps the page
from loading or calling anything but this server.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from lensforge.api.auth import PUBLIC, READ, requires
from lensforge.api.dashboard.stats import stats
from lensforge.api.deps import CallerDep, ServicesDep
from lensforge.api.models import documented, operation_id
from lensforge.api.static import Assets

MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


ASSETS: Final = Assets(__package__, "static", MEDIA_TYPES, SECURITY_HEADERS, "dashboard asset")
router = APIRouter(tags=["dashboard"], generate_unique_id_function=operation_id)


class LastHour(BaseModel):
    finished: int
    failed: int
    throughput_per_min: float
    error_rate: float
    covered_s: float
    complete: bool


class PluginHealth(BaseModel):
    state: str
    reason: str | None


class Stats(BaseModel):
    """What the dashboard's overview shows (a non-admin key: its own jobs only)."""

    jobs: dict[str, int] = Field(description="Jobs by state.")
    jobs_complete: bool = Field(description="False when counted from a partial sample.")
    queue_depth: int
    last_hour: LastHour
    window_s: float
    workers_alive: int
    executor: str
    plugins: dict[str, PluginHealth]


@router.get(
    "/", summary="The web dashboard", include_in_schema=False, openapi_extra=requires(PUBLIC)
)
async def index(request: Request) -> Response:
    return ASSETS.response("index.html", request)


@router.get(
    "/dashboard/{name}",
    summary="A dashboard asset",
    include_in_schema=False,
    openapi_extra=requires(PUBLIC),
)
async def asset(name: str, request: Request) -> Response:
    return ASSETS.response(name, request)


@router.get(
    "/v1/stats",
    summary="Overview figures: jobs by state, the last hour, workers",
    response_model=None,
    openapi_extra=requires(READ),
    responses=documented({200: (Stats, "The overview's figures")}),
)
async def get_stats(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Jobs by state and the last hour's throughput and error rate (a non-admin key: its own
    jobs only), queue depth, workers alive, and each plugin's state."""
    return await stats(services, caller.owner_filter)
