"""Who may call what, decided in one place.

Every route's required scope is in :data:`ROUTE_SCOPES`; a route missing from it is refused
to all but admins. The FastAPI dependency :func:`authenticate` (installed on the whole app)
and :class:`GuardedEndpoint` (for the ASGI endpoints mounted beside it, such as ``/mcp``) both
call :func:`authorize`. Auth is on whenever an unrevoked API key exists.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from lensforge.api.responses import error_response
from lensforge.errors import Forbidden, LensForgeError, RateLimited, Unauthorized
from lensforge.security.keys import LOCAL_USER, Caller
from lensforge.wiring import Services

PUBLIC: Final = "public"
ADMIN: Final = "admin"

ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): ADMIN,
    ("GET", "/v1/plugins"): "read",
    ("GET", "/v1/plugins/{plugin}"): "read",
    ("POST", "/v1/analyze"): "analyze",
    ("POST", "/v1/jobs"): "analyze",
    ("GET", "/v1/jobs"): "read",
    ("GET", "/v1/jobs/{job_id}"): "read",
    ("GET", "/v1/jobs/{job_id}/result"): "read",
    ("GET", "/v1/jobs/{job_id}/events"): "read",
    ("GET", "/v1/jobs/{job_id}/stream"): "read",
    ("POST", "/v1/jobs/{job_id}/cancel"): "analyze",
    ("GET", "/v1/blobs/{digest}"): "read",
    ("GET", "/v1/audit"): ADMIN,
    ("GET", "/v1/keys"): ADMIN,
    ("POST", "/v1/keys"): ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): ADMIN,
    ("POST", "/v1/analyze-execution"): "analyze",
    ("POST", "/v1/analyze-execution/async"): "analyze",
    ("GET", "/v1/analyze-execution/jobs"): "read",
    ("GET", "/v1/analyze-execution/jobs/{job_id}"): "read",
    ("GET", "/v1/analyze-execution/jobs/{job_id}/result"): "read",
    ("DELETE", "/v1/analyze-execution/jobs/{job_id}"): "analyze",
    ("GET", "/mcp"): "analyze",
    ("POST", "/mcp"): "analyze",
    ("DELETE", "/mcp"): "analyze",
}
# FastAPI's own documentation routes (not APIRoutes, so no dependency runs on them).
PUBLIC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def presented_key(headers: Headers) -> str | None:
    """The API key from ``Authorization: Bearer ...`` or ``X-API-Key`` (ForgeSyte's header)."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def authorize(services: Services, method: str, route: str, headers: Headers) -> Caller:
    """The caller, if it may call ``method route``; otherwise 401, 403 or 429."""
    method = "GET" if method == "HEAD" else method
    required = ROUTE_SCOPES.get((method, route), ADMIN)
    if required == PUBLIC:
        return LOCAL_USER
    if not services.keys.enabled():
        return LOCAL_USER
    key = presented_key(headers)
    caller = services.keys.verify(key) if key else None
    if caller is None:
        services.audit.record("auth_denied", None, method=method, route=route, reason="no key")
        raise Unauthorized(
            "A valid API key is required: send 'Authorization: Bearer <key>' "
            "(create one with `lensforge keys create`)."
            if key is None
            else "The API key is not valid (unknown, revoked or malformed)."
        )
    if not caller.allows(required):
        services.audit.record("auth_forbidden", caller.id, method=method, route=route)
        raise Forbidden(f"This API key lacks the '{required}' scope that {route} needs.")
    if required == ADMIN:
        services.audit.record("admin_action", caller.id, method=method, route=route)
    wait_s = services.limiter.take(caller.id)
    if wait_s > 0:
        error = RateLimited(f"Too many requests for this key; retry in {wait_s:.1f} s.")
        error.headers = {"Retry-After": str(max(1, round(wait_s + 0.5)))}
        raise error
    return caller


async def authenticate(request: Request) -> None:
    """The app-wide dependency: every API route passes through here."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    services: Services = request.app.state.services
    request.state.caller = authorize(services, request.method, path, request.headers)


class GuardedEndpoint:
    """An ASGI endpoint (like ``/mcp``) behind the same authorization as the API routes."""

    def __init__(self, app: ASGIApp, route: str) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        try:
            caller = authorize(services, scope["method"], self.route, Headers(scope=scope))
        except LensForgeError as exc:
            await error_response(exc, exc.headers or None)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)
