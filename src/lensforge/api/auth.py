"""Who may call what, decided in one place.

Every route's required scope is in :data:`ROUTE_SCOPES`; a route missing from it is refused
to all but admins. :class:`AuthMiddleware` applies it to every request, API routes and
``/mcp`` alike, before the route runs. Auth is on as soon as an API key has been created
(revoking every key does not turn it off again).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from lensforge.api.responses import error_response
from lensforge.errors import Forbidden, LensForgeError, RateLimited, Unauthorized
from lensforge.security.keys import LOCAL_USER, Caller, key_id
from lensforge.wiring import Services

PUBLIC: Final = "public"
ADMIN: Final = "admin"

ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/"): PUBLIC,  # the dashboard page and its assets: the data needs a key
    ("GET", "/dashboard/{name}"): PUBLIC,
    ("GET", "/v1/stats"): "read",
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
# FastAPI's own documentation routes.
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
    required = PUBLIC if route in PUBLIC_PATHS else ROUTE_SCOPES.get((method, route), ADMIN)
    if required == PUBLIC:
        return LOCAL_USER
    if not services.keys.enabled():
        return LOCAL_USER
    key = presented_key(headers)
    caller = services.keys.verify(key) if key else None
    if caller is None:
        services.audit.record(
            "auth_denied",
            None,  # nobody was authenticated; the id a bad key claims goes in the details
            method=method,
            route=route,
            reason="invalid key" if key else "no key",
            presented_key_id=key_id(key) if key else None,
        )
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


class AuthMiddleware:
    """Authorizes every HTTP request before any route runs (so before a body is parsed).

    The request's route template is found the way the router finds it, then
    :func:`authorize` decides; the caller lands in ``request.state.caller``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[Any] | None = None
        self._static: dict[str, str] = {}  # paths that are their own template: no scan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        if not services.keys.enabled():  # no key was ever created: every caller is local
            scope.setdefault("state", {})["caller"] = LOCAL_USER
            await self.app(scope, receive, send)
            return
        route = self._route_template(scope)
        if route is None:  # no such route: the router answers 404
            await self.app(scope, receive, send)
            return
        try:
            caller = authorize(services, scope["method"], route, Headers(scope=scope))
        except LensForgeError as exc:
            await error_response(exc, exc.headers or None)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    def _route_template(self, scope: Scope) -> str | None:
        """The template of the route the router will pick, found the way it finds it."""
        path: str = scope["path"]
        template = self._static.get(path)
        if template is not None:
            return template
        if self._routes is None:
            self._routes = list(_flatten(scope["app"].router.routes))
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                template = str(route.path)
                if template == path and len(self._static) < 256:
                    self._static[path] = template
                return template
        return None


def _flatten(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, looking inside included routers (FastAPI wraps them lazily)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flatten(included.routes)
        else:
            yield route
