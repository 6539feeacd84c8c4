"""The request bodies the API validates, as Pydantic models (their JSON Schemas are in /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AnalyzeBody(BaseModel):
    """A tool call: images as base64 strings (or ``{"blob": "sha256:..."}``) inside ``inputs``."""

    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(min_length=1, max_length=128, examples=["image"])
    tool: str | None = Field(None, max_length=128, examples=["info"])
    inputs: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0, description="Time limit for this job.")
