"""The API's fast paths, all in one place: what each replaces, why, and what it saved.

FastAPI's obvious way costs more per request than LensForge's two hottest routes
(``POST /v1/analyze``, ``POST /v1/jobs``) do themselves, so three things here step around it:

1. :class:`RequestRoute`, a route whose endpoint takes the Request and returns a Response,
   and the readers it uses instead of dependencies (:func:`analysis_of`, :func:`caller_of`,
   :func:`idempotency_key_of`);
2. :data:`ANALYSIS_REQUEST_DOC`, the OpenAPI description FastAPI would have derived from the
   parameters those routes no longer declare, and :class:`LensForgeAPI`, FastAPI whose
   document also names the request models those routes read without declaring them;
3. :func:`mount_flat`, which puts every router's routes in the app's own router instead of
   ``include_router()``.

Measured (direct ASGI calls, no network, 2-vCPU VM, FastAPI 0.165, 2026-12-05; the fastest
of 7 rounds of 2,000 requests) on a copy of ``POST /v1/jobs`` that validates the same body
model and does no work, beside 6 other routers: the obvious way (``body: AnalyzeRequest``,
two ``Depends`` and a ``Header``, routers included) 222 µs a request; with RequestRoute 124;
with flat routing 161; with both **28 µs**. A whole sync analysis costs the API process about
1,000 µs of CPU (bench/README.md, ``overhead.py``), so the two together are a tenth of it.
The commits that brought them in measured +16% req/s on ``overhead.py`` for RequestRoute
together with three other changes (bench/README.md, commit ``813ecf7``).

``tests/unit/api/test_fastpath.py`` checks that the obvious way gives the same answers and
the same OpenAPI description.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Receive, Scope, Send

from lensforge.api.models import AnalyzeForm, AnalyzeRequest, BlobRef
from lensforge.errors import ValidationError
from lensforge.execution.analysis import AnalysisExecutionService
from lensforge.security.keys import LOCAL_USER, Caller
from lensforge.wiring import Services

IDEMPOTENCY_KEY_MAX = 255


# -- 1. The lean route ---------------------------------------------------------------------------
# Replaces: FastAPI's APIRoute request handling (dependency solving, parameter and response
# validation, two exit stacks for dependencies with ``yield``, a second exception wrapper).
# Why: none of it is needed by a route that reads one body and two headers, and it cost more
# than the route's own work (figures above).


class RequestRoute(APIRoute):
    """A route whose endpoint takes the Request and returns a Response, nothing else.

    The endpoint reads what it needs itself (the readers below); its OpenAPI entry comes
    from the route's ``openapi_extra`` (:data:`ANALYSIS_REQUEST_DOC`); what it raises reaches
    the app's exception handlers through Starlette's ExceptionMiddleware like any route's.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = _plain_app(endpoint)


def _plain_app(endpoint: Callable[[Request], Coroutine[Any, Any, Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


def analysis_of(request: Request) -> AnalysisExecutionService:
    """What ``AnalysisDep`` gives a FastAPI route."""
    services: Services = request.app.state.services
    return services.analysis


def caller_of(request: Request) -> Caller:
    """What ``CallerDep`` gives a FastAPI route (set by the authentication middleware)."""
    caller: Caller = request.scope.get("state", {}).get("caller", LOCAL_USER)
    return caller


def idempotency_key_of(request: Request) -> str | None:
    """The ``Idempotency-Key`` header, refused past its length cap as FastAPI would refuse
    ``Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)``."""
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        problem = {
            "field": "Idempotency-Key",
            "message": f"String should have at most {IDEMPOTENCY_KEY_MAX} characters",
            "type": "string_too_long",
        }
        raise ValidationError.of_problems("request", [problem])
    return key


# -- 2. The hand-built OpenAPI entry -------------------------------------------------------------
# Replaces: what FastAPI derives from a route's declared parameters (the operation's body and
# header, and the body's model among the document's components), which RequestRoute
# endpoints do not declare. Why: so /docs and generated clients still see the header and the
# body, one named model shared by both routes (AnalyzeRequest as JSON, AnalyzeForm as
# multipart); LensForgeAPI puts those models in the components. No cost per request: the
# document is built once, when first asked for.

IDEMPOTENCY_KEY_DOC: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Same key and body: same job.",
    "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
}

_REF = "#/components/schemas/{model}"

ANALYSIS_REQUEST_DOC: dict[str, Any] = {
    "parameters": [IDEMPOTENCY_KEY_DOC],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": _REF.format(model="AnalyzeRequest")}},
            "multipart/form-data": {"schema": {"$ref": _REF.format(model="AnalyzeForm")}},
        },
    },
}


class LensForgeAPI(FastAPI):
    """FastAPI whose OpenAPI document also names the models that the lean routes read
    without declaring them (FastAPI lists only the models its routes declare)."""

    described_models: ClassVar[tuple[type[BaseModel], ...]] = (
        AnalyzeRequest,
        AnalyzeForm,
        BlobRef,
    )

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            document = super().openapi()
            _, defs = models_json_schema(
                [(model, "validation") for model in self.described_models], ref_template=_REF
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(defs["$defs"])
        return super().openapi()


# -- 3. Flat routing -----------------------------------------------------------------------------
# Replaces: ``app.include_router(router)`` for each router. Why: an included router is
# matched through one more level of routing on every request (figures above); and FastAPI's
# own /docs, /redoc and /openapi.json routes, added when the app is built, would otherwise be
# tried before ours, four pattern matches per request for nothing.


def mount_flat(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """The routers' routes at the head of the app's own router, busiest first.

    The router tries routes in order, so the routers are given hottest first; the OpenAPI
    document lists the routes the same way ``include_router()`` would.
    """
    app.router.routes[:0] = [route for router in routers for route in router.routes]
