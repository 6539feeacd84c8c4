"""FastAPI dependencies as ``Annotated`` aliases, so route signatures read like prose."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from lensforge.errors import ValidationError
from lensforge.execution.analysis import AnalysisExecutionService
from lensforge.execution.jobs import JobExecutionService
from lensforge.registry import Registry
from lensforge.security.keys import LOCAL_USER, Caller
from lensforge.settings import Settings
from lensforge.wiring import Services


# Dependencies are ``async def``: FastAPI runs plain ``def`` ones in a thread pool, a hop
# per request that costs more than the lookup itself.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_analysis(request: Request) -> AnalysisExecutionService:
    return (await get_services(request)).analysis


async def get_jobs(request: Request) -> JobExecutionService:
    return (await get_services(request)).jobs


async def get_registry(request: Request) -> Registry:
    return (await get_services(request)).registry


async def get_settings(request: Request) -> Settings:
    return (await get_services(request)).settings


async def get_caller(request: Request) -> Caller:
    """Who is calling (set by the app-wide authentication dependency)."""
    caller: Caller = getattr(request.state, "caller", LOCAL_USER)
    return caller


ServicesDep = Annotated[Services, Depends(get_services)]
AnalysisDep = Annotated[AnalysisExecutionService, Depends(get_analysis)]
JobsDep = Annotated[JobExecutionService, Depends(get_jobs)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CallerDep = Annotated[Caller, Depends(get_caller)]
IDEMPOTENCY_KEY_MAX = 255
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Same key and body: same job.",
    ),
]

# The same, for the hot routes that skip dependency solving (see routes/analyze.py).
IDEMPOTENCY_KEY_DOC: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Same key and body: same job.",
    "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
}


class RequestRoute(APIRoute):
    """A route whose endpoint takes the Request and returns a Response, nothing else.

    FastAPI's per-call machinery (dependency solving, parameter and response validation,
    the exit stacks of dependencies with ``yield``, a second exception-handling wrapper) is
    skipped, so the endpoint reads what it needs itself; its OpenAPI entry comes from the
    route's ``openapi_extra``, and what it raises reaches the app's exception handlers
    through Starlette's ExceptionMiddleware like any other route's. For the few routes where
    that machinery costs more than the work (the analysis routes).
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
    services: Services = request.app.state.services
    return services.analysis


def caller_of(request: Request) -> Caller:
    caller: Caller = request.scope.get("state", {}).get("caller", LOCAL_USER)
    return caller


def idempotency_key_of(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        raise ValidationError(
            f"Invalid request: Idempotency-Key: longer than {IDEMPOTENCY_KEY_MAX} characters.",
            details={
                "errors": [
                    {
                        "field": "Idempotency-Key",
                        "message": f"String should have at most {IDEMPOTENCY_KEY_MAX} characters",
                        "type": "string_too_long",
                    }
                ]
            },
        )
    return key
