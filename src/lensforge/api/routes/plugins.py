"""GET /v1/plugins: manifests with schemas, lifecycle state and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lensforge.api.auth import READ, requires
from lensforge.api.deps import RegistryDep
from lensforge.api.models import PluginList, PluginManifest, documented, operation_id

router = APIRouter(prefix="/v1/plugins", tags=["plugins"], generate_unique_id_function=operation_id)


@router.get(
    "",
    summary="List enabled plugins",
    openapi_extra=requires(READ),
    response_model=None,
    responses=documented({200: (PluginList, "Every enabled plugin")}),
)
async def list_plugins(registry: RegistryDep) -> dict[str, Any]:
    return {
        "plugins": [registry.manifest(name) for name in registry.names()],
        "load_errors": registry.load_errors,
    }


@router.get(
    "/{plugin}",
    summary="One plugin's manifest",
    openapi_extra=requires(READ),
    response_model=None,
    responses=documented({200: (PluginManifest, "Its manifest")}, 404, 422),
)
async def get_plugin(plugin: str, registry: RegistryDep) -> dict[str, Any]:
    return registry.manifest(plugin)
