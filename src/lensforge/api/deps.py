"""FastAPI dependencies as ``Annotated`` aliases, so route signatures read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

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
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="Same key and body: same job."),
]
