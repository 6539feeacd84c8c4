"""GET /v1/models: the detection models registered for ``objects.detect``
(added with ``lensforge models add``; see docs/models.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from lensforge.api.auth import READ, requires
from lensforge.api.deps import ServicesDep
from lensforge.api.models import documented, operation_id
from lensforge.models.registry import ModelInfo, ModelRegistry

router = APIRouter(prefix="/v1/models", tags=["models"], generate_unique_id_function=operation_id)
ModelName = Annotated[str, Path(description="A model's registered name.", max_length=128)]


class ModelList(BaseModel):
    models: list[ModelInfo]


@router.get(
    "",
    summary="List the registered detection models",
    response_model=ModelList,
    openapi_extra=requires(READ),
    responses=documented({200: (ModelList, "The models")}),
)
async def list_models(services: ServicesDep) -> ModelList:
    return ModelList(models=ModelRegistry(services.settings.data_dir).models())


@router.get(
    "/{name}",
    summary="One registered model",
    response_model=ModelInfo,
    openapi_extra=requires(READ),
    responses=documented({200: (ModelInfo, "The model")}, 404, 422),
)
async def get_model(name: ModelName, services: ServicesDep) -> ModelInfo:
    return ModelRegistry(services.settings.data_dir).get(name)
