"""ForgeSyte-style plugin: tools dict (string and callable handlers), Pydantic models,
lifecycle hooks and a manifest.json beside it."""

import io
import os
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageStat
from pydantic import BaseModel, Field

try:  # as ForgeSyte's public plugins do: the server's base class, or a local stand-in
    from app.plugins.base import BasePlugin  # type: ignore[import-not-found]
except ImportError:

    class BasePlugin:  # type: ignore[no-redef]
        name: str = ""
        tools: dict[str, Any] = {}

        def run_tool(self, tool_name: str, args: dict[str, Any]) -> Any:
            raise NotImplementedError


class MeasureInput(BaseModel):
    image_bytes: bytes = Field(description="Image bytes (PNG, JPG, ...)")
    options: dict[str, Any] | None = Field(default=None, description="Measuring options")


class MeasureOutput(BaseModel):
    width: int
    height: int
    size: int = Field(description="Bytes of the encoded image")
    unit: str
    loaded: bool


def _color(image_bytes: bytes, channel: str = "red") -> dict[str, Any]:
    """A callable handler: the mean of one colour channel."""
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    band = {"red": 0, "green": 1, "blue": 2}[channel]
    return {"channel": channel, "mean": ImageStat.Stat(image).mean[band]}


def _steps(image_bytes: bytes, progress_callback: Any = None) -> dict[str, Any]:
    total = 5
    for current in range(1, total + 1):
        time.sleep(0.15)
        if progress_callback is not None:
            progress_callback(current, total)
    return {"steps": total, "size": len(image_bytes)}


def _hang(image_bytes: bytes) -> dict[str, Any]:
    time.sleep(3600)
    return {}


def _crash(image_bytes: bytes) -> dict[str, Any]:
    os._exit(3)


def _video(video_path: str, progress_callback: Any = None) -> dict[str, Any]:
    return {"frames": [], "total_frames": 0}


IMAGE = {"type": "string", "format": "binary"}


class Plugin(BasePlugin):
    """Measures shapes."""

    name = "fs-shapes"
    version = "2.1.0"

    def __init__(self) -> None:
        self.unit = "px"
        self.loaded = False
        self.tools = {
            "measure": {
                "description": "Width and height of an image",
                "input_schema": MeasureInput.model_json_schema(),
                "output_schema": MeasureOutput.model_json_schema(),
                "handler": "measure",
            },
            "color": {
                "description": "Mean of one colour channel",
                "input_schema": {
                    "image_bytes": IMAGE,
                    "channel": {"type": "string", "enum": ["red", "green", "blue"]},
                },
                "output_schema": {"channel": {"type": "string"}, "mean": {"type": "number"}},
                "handler": _color,
            },
            "broken_output": {
                "description": "Breaks its own output schema",
                "input_schema": {"image_bytes": IMAGE},
                "output_schema": MeasureOutput.model_json_schema(),
                "handler": "broken",
            },
            "steps": {
                "description": "Five steps, reported as progress",
                "input_schema": {"image_bytes": IMAGE},
                "output_schema": {"steps": {"type": "integer"}},
                "handler": _steps,
            },
            "hang": {
                "description": "Never returns",
                "input_schema": {"image_bytes": IMAGE},
                "output_schema": {},
                "handler": _hang,
            },
            "crash": {
                "description": "Kills its process",
                "input_schema": {"image_bytes": IMAGE},
                "output_schema": {},
                "handler": _crash,
            },
            "video_track": {
                "description": "Tracks players in a video",
                "input_schema": {"video_path": {"type": "string"}},
                "output_schema": {"frames": {"type": "array"}},
                "handler": _video,
            },
        }

    def run_tool(self, tool_name: str, args: dict[str, Any]) -> Any:
        handler = self.tools[tool_name]["handler"]
        return (getattr(self, handler) if isinstance(handler, str) else handler)(**args)

    def measure(self, image_bytes: bytes, options: dict[str, Any] | None = None) -> MeasureOutput:
        image = Image.open(io.BytesIO(image_bytes))
        unit = (options or {}).get("unit", self.unit)
        return MeasureOutput(
            width=image.width,
            height=image.height,
            size=len(image_bytes),
            unit=unit,
            loaded=self.loaded,
        )

    def broken(self, image_bytes: bytes) -> dict[str, Any]:
        return {"width": "wide", "height": 1}

    def on_load(self) -> None:
        self.loaded = True

    def on_unload(self) -> None:
        marker = os.environ.get("FS_SHAPES_UNLOAD_MARKER")
        if marker:
            Path(marker).write_text("unloaded")
