"""Error handlers and the body-size guard: every failure leaves as the one envelope."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lensforge.api.responses import FastJSONResponse, error_response
from lensforge.errors import (
    InternalError,
    LensForgeError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ValidationError,
    pydantic_problems,
)

log = logging.getLogger(__name__)


_SOURCES = frozenset({"body", "query", "path", "header"})


def request_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's request errors as problems, each field named without its source
    ("timeout_s", not "body.timeout_s"), as the analysis routes name theirs; a body that is
    not JSON is the whole body's problem, not that of the character position FastAPI gives."""
    errors = [
        {**err, "loc": () if err.get("type") == "json_invalid" else tuple(err["loc"][1:])}
        if err.get("loc") and err["loc"][0] in _SOURCES
        else err
        for err in exc.errors()
    ]
    return pydantic_problems(errors, "(body)")


class HTTPError(LensForgeError):
    """Any other HTTP error Starlette or FastAPI raised (a body FastAPI could not parse: 400),
    answered with its own status."""

    code = "http_error"


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> str:
    """Every method served at the request's path, for a 405's ``Allow`` header (the router's
    own lists only the methods of the first route at that path)."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches({**scope, "method": "\0"})  # no route serves it: paths only
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LensForgeError)
    async def _lensforge_error(request: Request, exc: LensForgeError) -> FastJSONResponse:
        headers = getattr(exc, "headers", None)
        return error_response(exc, headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> FastJSONResponse:
        return error_response(ValidationError.of_problems("request", request_problems(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound(f"No route {request.method} {request.url.path}."))
        if exc.status_code == 405:
            allowed = allowed_methods(request.app.router.routes, request.scope)
            return error_response(
                MethodNotAllowed(
                    f"{request.method} is not allowed on {request.url.path}; it serves {allowed}.",
                    details={"allowed": allowed.split(", ")},
                ),
                headers={**(exc.headers or {}), "Allow": allowed},
            )
        envelope = HTTPError(str(exc.detail)).envelope()
        return FastJSONResponse(envelope, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FastJSONResponse:
        # Outside the request's middleware by now: its id is on the request's state.
        request_id = getattr(request.state, "request_id", None) or secrets.token_hex(8)
        log.exception(
            "unexpected error on %s %s (request %s)",
            request.method,
            request.url.path,
            request_id,
            extra={"event": "internal_error", "request_id": request_id},
        )
        error = InternalError(
            f"An internal error occurred; quote request id {request_id} to the operator.",
            details={"request_id": request_id},
        )
        error.request_id = request_id
        return error_response(error, headers={"X-Request-ID": request_id})


class BodyLimitMiddleware:
    """413 before reading a body whose Content-Length is too large, or once a streamed
    (chunked) body passes the limit, so no oversized body is ever held in memory.

    ``streamed`` names paths whose body is streamed to disk rather than held (uploads to
    ``POST /v1/blobs``): they get their own, larger cap (videos)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, streamed: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = streamed or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own = self.streamed.get(scope["path"])
        if own is not None and scope["method"] == "POST":
            await BodyLimitMiddleware(self.app, own)(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send, declared)
            return
        if not chunked and declared is not None and 0 <= declared <= self.max_bytes:
            # The HTTP server hands on at most Content-Length bytes: this body cannot pass
            # the cap, no need to count it.
            await self.app(scope, receive, send)
            return
        received = 0
        exceeded = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise self._too_large(received)
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body passed the cap, whatever the app makes of the error (a route
            # that parses its body may call it a parsing error) the answer is our 413.
            nonlocal answered
            if not exceeded:
                await send(message)
            elif not answered:
                answered = True
                await self._reject(scope, receive, send, received)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLarge:
            if not answered:
                await self._reject(scope, receive, send, received)

    def _too_large(self, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is larger than the limit of {self.max_bytes} bytes.",
            details={"max_bytes": self.max_bytes, "received_at_least": size},
        )

    async def _reject(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        response = error_response(self._too_large(size), headers={"Connection": "close"})
        await response(scope, receive, send)
