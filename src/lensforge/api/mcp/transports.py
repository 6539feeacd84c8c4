"""The two MCP transports: streamable HTTP at ``/mcp`` in the main app, and stdio.

Both serve the same handlers (:class:`~lensforge.api.mcp.server.LensForgeMCP`) over the same
services, so an MCP call is executed, recorded and limited exactly like a REST call.

Over HTTP the SDK's session manager routes each POST by its ``MCP-Protocol-Version`` header:
2026-07-28 requests are served statelessly (one self-contained POST, no session id), the
session-based revisions (2024-11-05 to 2025-11-25) through an ``initialize`` handshake and an
``Mcp-Session-Id``, answered as SSE streams. Two managers serve the same handlers: a
stateless POST that carries no progress token goes to one answering plain JSON, handled in
the request's own task (about 400 us less server CPU per call than the SSE-capable path,
which sets up a stream and a task group per request); every other request goes to the
SSE-capable one, which still answers JSON when the handler sends no notification.

A session belongs to the API key that opened it: the key is handed to the SDK as the
request's authenticated user, and a request for the session with another key is answered
404, as for an unknown session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

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


def _as_user(caller: Any) -> AuthenticatedUser | None:
    """The API key auth put on the request, as the SDK's user (None: auth off)."""
    ident = getattr(caller, "id", None)
    if not isinstance(ident, str) or not ident or ident == "anonymous":
        return None
    scopes = sorted(getattr(caller, "scopes", ()))
    return AuthenticatedUser(AccessToken(token="", client_id=ident, scopes=scopes))


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request body (already bounded by the app's body limit) and a ``receive`` replaying it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", receive  # the client left: the SDK sees the disconnect itself
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


class MCPEndpoint:
    """The ASGI app behind ``/mcp``: streamable HTTP, live while the app's lifespan runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.manager: StreamableHTTPSessionManager | None = None  # sessions, SSE
        self.plain: StreamableHTTPSessionManager | None = None  # stateless, JSON only

    @contextlib.asynccontextmanager
    async def run(self, services: Services) -> AsyncIterator[LensForgeMCP]:
        """Serve MCP over ``services`` until the block exits (inside the app's lifespan)."""
        mcp = LensForgeMCP(services)
        managers = [
            StreamableHTTPSessionManager(
                mcp.server,
                security_settings=_security(self.settings),
                max_request_body_size=self.settings.max_body_bytes,
                json_response=json_response,
            )
            for json_response in (False, True)
        ]
        async with managers[0].run(), managers[1].run():
            self.manager, self.plain = managers
            try:
                yield mcp
            finally:
                self.manager = self.plain = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager, plain = self.manager, self.plain
        if manager is None or plain is None:
            response = error_response(PluginUnavailable("The MCP endpoint is not running yet."))
            await response(scope, receive, send)
            return
        user = _as_user(scope.get("state", {}).get("caller"))
        if user is not None:
            scope["user"] = user  # binds a session to the key that opened it
        version = Headers(scope=scope).get(MCP_PROTOCOL_VERSION_HEADER)
        if scope["method"] == "POST" and version in MODERN_PROTOCOL_VERSIONS:
            body, receive = await _buffered(receive)
            if b'"progressToken"' not in body:
                manager = plain
        await manager.handle_request(scope, receive, send)


def run_stdio(settings: Settings, *, extra_plugins: list[type[Plugin]] | None = None) -> None:
    """``lensforge mcp``: an embedded LensForge serving MCP on stdin and stdout.

    Same settings, store and execution path as ``lensforge serve``. The SDK's stdio transport
    keeps the real stdout to itself (file descriptor 1 points at stderr while it serves), so a
    stray ``print`` here or in a worker process, which inherits it, cannot corrupt the stream.
    """
    asyncio.run(_serve_stdio(settings, extra_plugins))


async def _serve_stdio(settings: Settings, extra_plugins: list[type[Plugin]] | None) -> None:
    async with stdio_server() as (read_stream, write_stream):
        services = build_services(settings, extra_plugins=extra_plugins)
        await services.start()  # worker processes start with fd 1 already diverted
        try:
            mcp = LensForgeMCP(services)
            await mcp.server.run(read_stream, write_stream, mcp.initialization_options())
        finally:
            await services.stop()
