"""Admin routes: API keys and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lensforge.api.auth import ADMIN, requires
from lensforge.api.deps import CallerDep, ServicesDep
from lensforge.api.models import (
    AuditPage,
    CreatedKey,
    KeyId,
    KeyList,
    NewKey,
    RevokedKey,
    documented,
    operation_id,
)
from lensforge.api.responses import FastJSONResponse
from lensforge.errors import NotFound
from lensforge.security.keys import parse_scopes

router = APIRouter(prefix="/v1", tags=["admin"], generate_unique_id_function=operation_id)


@router.get(
    "/keys",
    summary="List API keys (never their secrets)",
    openapi_extra=requires(ADMIN),
    response_model=None,
    responses=documented({200: (KeyList, "Every key, revoked ones too")}),
)
async def list_keys(services: ServicesDep) -> dict[str, Any]:
    return {"keys": [key.public() for key in services.keys.list()]}


@router.post(
    "/keys",
    status_code=201,
    summary="Create an API key; its secret is shown once",
    openapi_extra=requires(ADMIN),
    responses=documented({201: (CreatedKey, "The key, with its secret")}, 400, 422),
)
async def create_key(body: NewKey, services: ServicesDep, caller: CallerDep) -> FastJSONResponse:
    info, secret = services.keys.create(body.name, parse_scopes(body.scopes))
    services.audit.record("key_created", caller.id, new_key=info.id, scopes=list(info.scopes))
    return FastJSONResponse({**info.public(), "key": secret}, status_code=201)


@router.delete(
    "/keys/{key_id}",
    summary="Revoke an API key",
    openapi_extra=requires(ADMIN),
    response_model=None,
    responses=documented({200: (RevokedKey, "Revoked")}, 404, 422),
)
async def revoke_key(key_id: KeyId, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    if not services.keys.revoke(key_id):
        raise NotFound(f"No active API key '{key_id}'.")
    services.audit.record("key_revoked", caller.id, revoked_key=key_id)
    return {"id": key_id, "revoked": True}


@router.get(
    "/audit",
    summary="The audit trail, newest first",
    openapi_extra=requires(ADMIN),
    response_model=None,
    responses=documented({200: (AuditPage, "A page of events")}, 422),
)
async def audit(
    services: ServicesDep,
    event: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    events = services.audit.list(event=event, before=cursor, limit=limit)
    return {"events": events, "next_cursor": events[-1]["id"] if len(events) == limit else None}
