"""``create_app(settings)``: the FastAPI application, owning its services via the lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig
from starlette.routing import Route

from lensforge import __version__
from lensforge.api import dashboard
from lensforge.api.auth import AuthMiddleware
from lensforge.api.errors import BodyLimitMiddleware, install_error_handlers
from lensforge.api.mcp import MCPEndpoint
from lensforge.api.routes import admin, analyze, blobs, compat, jobs, plugins, system
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
    mcp = MCPEndpoint(settings)

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

    app = FastAPI(
        title="LensForge",
        version=__version__,
        description="Runs vision-analysis plugins as governed, durable jobs.",
        lifespan=lifespan,
        # Off unless asked for: LensForge has its own /metrics, and FastAPI looks up the
        # OpenTelemetry providers on every request even when none is configured.
        telemetry=None if settings.otel else _NO_TELEMETRY,
    )
    install_error_handlers(app)
    # The routes join the app's own router rather than through include_router(), whose
    # nested routing costs more per request than the hottest routes do themselves; the
    # busiest go first, ahead of FastAPI's own /docs and /openapi.json, since the router
    # tries routes in order.
    ours = [
        route
        for module in (analyze, jobs, system, plugins, blobs, admin, compat, dashboard)
        for route in module.router.routes
    ]
    app.router.routes[:0] = ours
    # MCP over streamable HTTP (docs/mcp.md), served by the same services.
    app.router.routes.append(Route("/mcp", endpoint=mcp, methods=["GET", "POST", "DELETE"]))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,  # keys travel in headers; never '*' with credentials
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(AuthMiddleware)  # every route and /mcp: see lensforge.api.auth
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)  # outermost: X-Request-ID, access log
    return app
