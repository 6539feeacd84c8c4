"""``create_app(settings)``: the FastAPI application, owning its services via the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lensforge import __version__
from lensforge.api.errors import BodyLimitMiddleware, install_error_handlers
from lensforge.api.routes import analyze, blobs, compat, jobs, plugins, system
from lensforge.plugin import Plugin
from lensforge.settings import Settings
from lensforge.wiring import build_services

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, extra_plugins: list[type[Plugin]] | None = None
) -> FastAPI:
    """Build the app; its store, registry, executor and services live on ``app.state``.

    ``extra_plugins`` registers plugin classes beside the discovered ones (tests, embedding).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, extra_plugins=extra_plugins)
        app.state.services = services
        await services.start()
        log.info(
            "LensForge ready with plugins %s",
            ", ".join(services.registry.names()) or "none",
            extra={"event": "server_ready"},
        )
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="LensForge",
        version=__version__,
        description="Runs vision-analysis plugins as governed, durable jobs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (system, plugins, analyze, jobs, blobs, compat):
        app.include_router(module.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
