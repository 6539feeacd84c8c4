"""GET /v1/models: the detection models registered for ``objects.detect``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lensforge.api.deps import SettingsDep
from lensforge.models.registry import ModelRegistry

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="List the registered detection models")
async def list_models(settings: SettingsDep) -> dict[str, Any]:
    registry = ModelRegistry(settings.data_dir)
    return {"models": [info.model_dump() for info in registry.models()]}


@router.get("/{name}", summary="One registered model")
async def get_model(name: str, settings: SettingsDep) -> dict[str, Any]:
    return ModelRegistry(settings.data_dir).get(name).model_dump()
