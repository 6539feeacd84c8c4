"""ShapedRoute: the route class of the compatibility routes, whose refusals take the shape of
the API they imitate instead of LensForge's error envelope.

Whatever a route itself refuses (a request FastAPI cannot validate, a :class:`LensForgeError`
its endpoint raises, a body Starlette cannot read) becomes one LensForgeError and is answered
by the subclass's :meth:`ShapedRoute.render`. What the app refuses before any route runs
(auth, body size, rate limit, an unknown method) stays LensForge's envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from lensforge.api.errors import HTTPError, request_problems
from lensforge.errors import LensForgeError, ValidationError


class ShapedRoute(APIRoute):
    """A route whose every refusal goes through :meth:`render` (see the module docstring)."""

    def render(self, error: LensForgeError, request: Request, status: int | None) -> Response:
        """The answer to ``error``; ``status`` is the one the refusal itself carries (422 for
        a request that breaks the schema, a Starlette error's own), None for a raised error."""
        raise NotImplementedError

    def invalid_request(self, exc: RequestValidationError) -> LensForgeError:
        """A request that breaks the route's schema, as an error."""
        return ValidationError.of_problems("request", request_problems(exc))

    def http_error(self, exc: HTTPException) -> LensForgeError | None:
        """A Starlette HTTP error (a body it could not read), or None to let it through."""
        return HTTPError(str(exc.detail))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return self.render(self.invalid_request(exc), request, 422)
            except LensForgeError as exc:
                return self.render(exc, request, None)
            except HTTPException as exc:
                error = self.http_error(exc)
                if error is None:
                    raise
                return self.render(error, request, exc.status_code)

        return route


__all__ = ["ShapedRoute"]
