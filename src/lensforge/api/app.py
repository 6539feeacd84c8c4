"""``create_app(settings)``: the FastAPI application, owning its services via the lifespan,
and its middleware stack, declared in one ordered list (:func:`middleware_stack`)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware

from lensforge import __version__
from lensforge.api import dashboard, docs, openapi
from lensforge.api.auth import ANALYZE, ASGIRoute, AuthMiddleware, requires
from lensforge.api.compat import execution
from lensforge.api.compat.forgesyte import build_router as forgesyte_router
from lensforge.api.cors import OriginCORSMiddleware
from lensforge.api.errors import BodyLimitMiddleware, install_error_handlers
from lensforge.api.fastpath import LensForgeAPI, mount_flat
from lensforge.api.mcp_mount import MCPMount
from lensforge.api.routes import admin, analyze, blobs, jobs, models, plugins, stream, system
from lensforge.logs import RequestContextMiddleware
from lensforge.plugin import Plugin
from lensforge.settings import Settings
from lensforge.wiring import build_services

log = logging.getLogger(__name__)
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: Settings | None = None, *, extra_plugins: list[type[Plugin]] | None = None
) -> FastAPI:
    """Build the app; its store, registry, executor and services live on ``app.state``.

    ``extra_plugins`` registers plugin classes beside the discovered ones (tests, embedding).
    MCP (streamable HTTP) is served at ``/mcp``.
    """
    settings = settings or Settings()
    mcp = MCPMount(settings)  # the MCP SDK loads on the first /mcp request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, extra_plugins=extra_plugins)
        app.state.services = services
        await services.start()
        gc.freeze()  # start-up objects live forever: keep them out of every GC pass
        log.info(
            "LensForge ready with plugins %s",
            ", ".join(services.registry.names()) or "none",
            extra={"event": "server_ready"},
        )
        try:
            async with mcp.run(services):
                yield
        finally:
            await services.stop()

    app = LensForgeAPI(
        title="LensForge",
        version=__version__,
        description="Runs vision-analysis plugins as governed, durable jobs.",
        lifespan=lifespan,
        # Off unless asked for: LensForge has its own /metrics, and FastAPI looks up the
        # OpenTelemetry providers on every request even when none is configured.
        telemetry=None if settings.otel else _NO_TELEMETRY,
        middleware=middleware_stack(settings),
        # The docs pages are LensForge's own (api/docs.py): served offline, CSP 'self'.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_error_handlers(app)
    modules = (analyze, jobs, system, plugins, blobs, admin, execution, models, stream, dashboard)
    routers = [m.router for m in modules]
    mount_flat(app, [*routers, forgesyte_router(settings.forgesyte_prefix)])
    app.router.routes.extend(docs.build_router(app.title).routes)
    openapi.install(app)  # each served tool's result type, named, in /openapi.json
    # MCP over streamable HTTP (docs/mcp.md), served by the same services.
    app.router.routes.append(
        ASGIRoute("/mcp", mcp, methods=["GET", "POST", "DELETE"], openapi_extra=requires(ANALYZE))
    )
    return app


def middleware_stack(settings: Settings) -> list[Middleware]:
    """LensForge's middlewares, outermost first.

    FastAPI wraps them: Starlette's ServerErrorMiddleware (unexpected errors, 500) outside,
    its ExceptionMiddleware (the error handlers of lensforge.api.errors) and the router inside.
    """
    # Outermost: every answer, refusals included, carries its X-Request-ID, and the access
    # log has one line per request with its route template, status and duration.
    stack: list[Middleware] = [Middleware(RequestContextMiddleware)]
    if settings.cors_origins:
        # Outermost, so that a browser's preflight (which carries no key, by design) is
        # answered before auth, and every answer to an allowed origin, refusals included
        # (401, 403, 413, 429), carries the headers its page needs to read it.
        stack.append(
            Middleware(
                OriginCORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_credentials=False,  # keys travel in headers; never '*' with credentials
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
            )
        )
    # Before anything reads the body: an oversized one is refused (413) whoever sends it,
    # and a streamed one is cut off once it passes the limit.
    # Uploads to POST /v1/blobs stream to disk, so they may be as large as a video.
    # So do ForgeSyte's video submit and upload (see api/compat/forgesyte.py).
    cap = max(settings.max_video_bytes, settings.max_image_bytes)
    video_routes = (f"{settings.forgesyte_prefix}/v1/video/{step}" for step in ("submit", "upload"))
    uploads = {path: cap for path in ("/v1/blobs", *video_routes)}
    stack.append(
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, streamed=uploads)
    )
    # Before any route runs, so before a body is parsed: the scope the route declares.
    stack.append(Middleware(AuthMiddleware))
    return stack
