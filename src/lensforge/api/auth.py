"""Who may call what: each route declares its scope where it is defined; one middleware
applies it.

A route declares the scope it needs with ``openapi_extra=requires(READ)`` (the OpenAPI
document shows it as ``x-required-scope``); a route that declares none is refused to all but
admins, so a forgotten route fails closed. :class:`AuthMiddleware` finds the route the router
will pick (Starlette's public ``route.matches``) and applies its scope to every HTTP request,
API routes and ``/mcp`` alike, before the route runs (so before a body is parsed). Auth is on
as soon as an API key has been created (revoking every key does not turn it off again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Final

import anyio
import anyio.to_thread
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lensforge.api.responses import error_response
from lensforge.errors import Forbidden, LensForgeError, RateLimited, StoreError, Unauthorized
from lensforge.security.keys import LOCAL_USER, Caller, key_id
from lensforge.wiring import Services

PUBLIC: Final = "public"
READ: Final = "read"
ANALYZE: Final = "analyze"
ADMIN: Final = "admin"
SCOPES: Final = (PUBLIC, READ, ANALYZE, ADMIN)
SCOPE_KEY: Final = "x-required-scope"
# FastAPI's own documentation routes, which it defines (so they cannot declare a scope).
PUBLIC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def requires(scope: str, **openapi_extra: Any) -> dict[str, Any]:
    """A route's ``openapi_extra`` declaring the scope it needs (beside any other extra)."""
    if scope not in SCOPES:
        raise ValueError(f"Unknown scope {scope!r}; one of {', '.join(SCOPES)}.")
    return {**openapi_extra, SCOPE_KEY: scope}


def declared_scope(route: BaseRoute) -> str | None:
    """The scope ``route`` declared (FastAPI's docs routes: public), or None."""
    if getattr(route, "path", None) in PUBLIC_PATHS:
        return PUBLIC
    extra = getattr(route, "openapi_extra", None)
    scope = extra.get(SCOPE_KEY) if isinstance(extra, dict) else None
    return scope if isinstance(scope, str) else None


class ASGIRoute(Route):
    """A route to a plain ASGI app (``/mcp``), declaring its scope as API routes do."""

    def __init__(
        self, path: str, app: ASGIApp, *, methods: list[str], openapi_extra: dict[str, Any]
    ) -> None:
        super().__init__(path, endpoint=app, methods=methods, include_in_schema=False)
        self.openapi_extra = openapi_extra


def route_for(routes: Iterable[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route the router will hand this request to: the first that matches fully, else
    the first that matches the path only (it answers 405); None when none does (404).

    A plain route without path parameters matches exactly its path, so it is compared as a
    string (what its ``matches`` would find, without a regex and a copied scope)."""
    partial = None
    path = None if scope.get("root_path") else scope["path"]
    for route in routes:
        if path is not None and isinstance(route, Route) and _plain(route):
            if path != route.path:
                continue
            methods = route.methods
            match = Match.FULL if not methods or scope["method"] in methods else Match.PARTIAL
        else:
            match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


_MATCHES = (Route.matches, APIRoute.matches)


def _plain(route: Route) -> bool:
    """Whether ``route`` matches exactly its path: no parameters, no matching of its own."""
    return "{" not in route.path and type(route).matches in _MATCHES


def presented_key(headers: Headers) -> str | None:
    """The API key from ``Authorization: Bearer ...`` or ``X-API-Key`` (ForgeSyte's header)."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def authorize(
    services: Services, required: str, method: str, route: str, headers: Headers
) -> Caller:
    """The caller, if it may call ``method route``, which needs ``required``; otherwise
    401, 403 or 429."""
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

    The route the router will pick is found with :func:`route_for`, then :func:`authorize`
    applies the scope it declared; the caller lands in ``request.state.caller``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # (method, path) -> (scope, template) for paths that are their own template: no scan
        self._static: dict[tuple[str, str], tuple[str, str]] = {}
        self._limiter = anyio.CapacityLimiter(16)  # key lookups waiting on the database

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        found = self._required(scope)
        # 404 from the router, a public route, or auth off (no key created): the local user.
        if found is None or found[0] == PUBLIC or services.keys.off_from_cache():
            scope.setdefault("state", {})["caller"] = LOCAL_USER
            await self.app(scope, receive, send)
            return
        required, template = found
        headers = Headers(scope=scope)
        check = partial(authorize, services, required, scope["method"], template, headers)
        try:
            # A request the key cache lets through is checked here; any other (a lookup, an
            # audit row) on a thread, so a slow or hung database never blocks the event loop.
            if services.keys.passes_from_cache(presented_key(headers), required):
                caller = check()
            else:
                caller = await self._off_the_loop(check, services.keys.lookup_timeout_s)
        except LensForgeError as exc:
            await error_response(exc, exc.headers or None)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    async def _off_the_loop(self, check: Callable[[], Caller], timeout_s: float) -> Caller:
        """``check`` on a thread; a database that does not answer within ``timeout_s`` (a
        frozen server answers no timeout of its own) is unavailable: 503."""
        try:
            with anyio.fail_after(timeout_s):
                return await anyio.to_thread.run_sync(
                    check, abandon_on_cancel=True, limiter=self._limiter
                )
        except TimeoutError:
            raise StoreError(
                "API keys cannot be checked: the job store does not answer. Try again shortly."
            ) from None

    def _required(self, scope: Scope) -> tuple[str, str] | None:
        """The scope the request's route declared (admin if none) and its template."""
        key = (scope["method"], scope["path"])
        found = self._static.get(key)
        if found is not None:
            return found
        route = route_for(scope["app"].router.routes, scope)
        if route is None:
            return None
        template = str(getattr(route, "path", scope["path"]))
        found = (declared_scope(route) or ADMIN, template)
        if template == scope["path"] and len(self._static) < 256:
            self._static[key] = found
        return found
