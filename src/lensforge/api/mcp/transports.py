"""The two MCP transports: streamable HTTP at ``/mcp`` in the main app, and stdio.

Both serve the same handlers (:class:`~lensforge.api.mcp.server.LensForgeMCP`) over the same
services, so an MCP call is executed, recorded and limited exactly like a REST call.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from lensforge.api.mcp.server import LensForgeMCP
from lensforge.api.responses import error_response
from lensforge.errors import PluginUnavailable
from lensforge.plugin import Plugin
from lensforge.settings import Settings
from lensforge.wiring import Services, build_services

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _security(settings: Settings) -> TransportSecuritySettings | None:
    """DNS-rebinding protection while the server listens on loopback only."""
    if settings.host not in LOOPBACK:
        return None
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *(f"{host}:*" for host in hosts)],
        allowed_origins=[f"http://{host}:*" for host in hosts],
    )


class _StreamWhenAsked(StreamableHTTPServerTransport):
    """Answers a POST with plain JSON unless the request asked for progress.

    Streamable HTTP lets a server answer each POST with ``application/json`` or with an SSE
    stream; the SDK picks one per server. An SSE answer costs about twice the CPU of a JSON
    one on both sides, and only a request carrying a progress token needs the stream (for its
    ``notifications/progress``), so the choice is made per request here.
    """

    async def _handle_post_request(
        self, scope: Scope, request: Request, receive: Receive, send: Send
    ) -> None:
        body = await request.body()  # Starlette caches it: the SDK reads the same bytes
        # No await between this flag and the SDK's read of it: concurrent POSTs cannot mix.
        self.is_json_response_enabled = b'"progressToken"' not in body
        await super()._handle_post_request(scope, request, receive, send)


class _SessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, making transports that choose JSON or SSE per request."""

    def _admit_session(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        if transport is not None:
            transport.__class__ = _StreamWhenAsked  # same state, one method more
        return transport


class MCPEndpoint:
    """The ASGI app behind ``/mcp``: streamable HTTP, live while the app's lifespan runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.manager: StreamableHTTPSessionManager | None = None

    @contextlib.asynccontextmanager
    async def run(self, services: Services) -> AsyncIterator[LensForgeMCP]:
        """Serve MCP over ``services`` until the block exits (inside the app's lifespan)."""
        mcp = LensForgeMCP(services)
        manager = _SessionManager(
            mcp.server,
            security_settings=_security(self.settings),
            max_request_body_size=self.settings.max_body_bytes,
        )
        async with manager.run():
            self.manager = manager
            try:
                yield mcp
            finally:
                self.manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self.manager
        if manager is None:
            response = error_response(PluginUnavailable("The MCP endpoint is not running yet."))
            await response(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)


def run_stdio(settings: Settings, *, extra_plugins: list[type[Plugin]] | None = None) -> None:
    """``lensforge mcp``: an embedded LensForge serving MCP on stdin and stdout.

    Same settings, store and execution path as ``lensforge serve``. The protocol keeps the
    real stdout to itself: file descriptor 1 is pointed at stderr, so a stray ``print`` (here
    or in a worker process, which inherits it) cannot corrupt the stream.
    """
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        asyncio.run(_serve_stdio(settings, extra_plugins, protocol))
    finally:
        protocol.close()


async def _serve_stdio(
    settings: Settings, extra_plugins: list[type[Plugin]] | None, protocol: io.RawIOBase
) -> None:
    services = build_services(settings, extra_plugins=extra_plugins)
    await services.start()
    try:
        mcp = LensForgeMCP(services)
        stdin = anyio.wrap_file(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"))
        stdout = anyio.wrap_file(
            io.TextIOWrapper(io.BufferedWriter(protocol), encoding="utf-8", write_through=True)
        )
        async with stdio_server(stdin, stdout) as (read_stream, write_stream):
            await mcp.server.run(read_stream, write_stream, mcp.initialization_options())
    finally:
        await services.stop()
