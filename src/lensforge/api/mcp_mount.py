"""The ``/mcp`` mount: the MCP SDK is loaded on the first MCP request, not at start-up.

The SDK and its protocol types are about 30 MB of modules; a server that nobody calls over
MCP does not carry them. The first request to ``/mcp`` starts the endpoint (a second or so)
in a task of the app's lifespan, where its session managers live until shutdown; that
request and any arriving meanwhile wait for it, and every later one goes straight through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from lensforge.api.responses import error_response
from lensforge.errors import PluginUnavailable
from lensforge.settings import Settings
from lensforge.wiring import Services

if TYPE_CHECKING:
    from lensforge.api.mcp.transports import MCPEndpoint

log = logging.getLogger(__name__)


class MCPMount:
    """The ASGI app behind ``/mcp``: an :class:`MCPEndpoint` started on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint: MCPEndpoint | None = None
        self._wanted: asyncio.Event | None = None  # set by the first request
        self._ready: asyncio.Event | None = None  # set once started (or failed to)
        self._stop: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def run(self, services: Services) -> AsyncIterator[None]:
        """Be ready to serve MCP over ``services`` until the block exits (the lifespan)."""
        self._wanted, self._ready, self._stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(self._serve(services), name="mcp-endpoint")
        try:
            yield
        finally:
            self._stop.set()
            await task
            self._wanted = self._ready = self._stop = None

    async def _serve(self, services: Services) -> None:
        assert self._wanted is not None and self._ready is not None and self._stop is not None
        waits = [asyncio.ensure_future(event.wait()) for event in (self._wanted, self._stop)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        if self._stop.is_set():
            return
        try:
            from lensforge.api.mcp.transports import MCPEndpoint

            endpoint = MCPEndpoint(self.settings)
            async with endpoint.run(services):
                self.endpoint = endpoint
                self._ready.set()
                await self._stop.wait()
        except Exception:
            log.exception("The MCP endpoint failed", extra={"event": "mcp_failed"})
        finally:
            self.endpoint = None
            self._ready.set()  # nobody waits forever on an endpoint that is gone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.endpoint is None and self._wanted is not None and self._ready is not None:
            self._wanted.set()
            await self._ready.wait()
        endpoint = self.endpoint
        if endpoint is None:
            response = error_response(PluginUnavailable("The MCP endpoint is not running."))
            await response(scope, receive, send)
            return
        await endpoint(scope, receive, send)
