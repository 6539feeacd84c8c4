"""Models users bring: the registry of ONNX detection models and its CLI commands."""

from lensforge.models.registry import ModelFormat, ModelInfo, ModelRegistry

__all__ = ["ModelFormat", "ModelInfo", "ModelRegistry"]
