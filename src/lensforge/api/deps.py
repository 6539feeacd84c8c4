"""FastAPI dependencies as ``Annotated`` aliases, so route signatures read like prose.

Every route but the two hottest takes what it needs this way; those two read the same
things straight off the request (:mod:`lensforge.api.fastpath` says why).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lensforge.execution.analysis import AnalysisExecutionService
from lensforge.registry import Registry
from lensforge.security.keys import LOCAL_USER, Caller
from lensforge.wiring import Services


# Dependencies are ``async def``: FastAPI runs plain ``def`` ones in a thread pool, a hop
# per request that costs more than the lookup itself.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_analysis(request: Request) -> AnalysisExecutionService:
    return (await get_services(request)).analysis


async def get_registry(request: Request) -> Registry:
    return (await get_services(request)).registry


async def get_caller(request: Request) -> Caller:
    """Who is calling (set by the authentication middleware)."""
    caller: Caller = getattr(request.state, "caller", LOCAL_USER)
    return caller


ServicesDep = Annotated[Services, Depends(get_services)]
AnalysisDep = Annotated[AnalysisExecutionService, Depends(get_analysis)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
CallerDep = Annotated[Caller, Depends(get_caller)]
