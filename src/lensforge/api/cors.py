"""CORS as LensForge applies it: Starlette's middleware, silent towards other origins.

Starlette's ``CORSMiddleware`` answers a preflight from an origin it does not allow itself
(``400 Disallowed CORS origin``, with the allowed methods and headers listed) and adds
``Vary: Origin`` to every answer. Here a request from another origin is passed on as if CORS
were off: it gets no CORS header at all, and a preflight gets what any ``OPTIONS`` request
gets (401 when auth is on, else 405), in the one error envelope.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send


class OriginCORSMiddleware(CORSMiddleware):
    """CORS headers for the allowed origins; other origins' requests pass untouched."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = Headers(scope=scope).get("origin")
            if origin is not None and not self.is_allowed_origin(origin):
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
