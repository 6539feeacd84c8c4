"""The model registry: ONNX detection models a user added, kept under the data directory.

``add`` copies the file to ``<data_dir>/models/sha256/<digest>.onnx`` (content-addressed: the
same file added twice is stored once), checks its graph with ONNX Runtime (one image input,
outputs in a supported layout, as many classes as labels, and one real inference on a blank
image), and records its format, input size, labels and licence in ``index.json`` (written
atomically). Every reader re-reads the index, so a model added from the CLI is selectable by
a running server's workers at once.

Supported layouts (see docs/models.md for how to export them):

- ``yolo``: one output ``[1, 4 + C, N]`` (YOLOv8/v11) or ``[1, N, 4 + C]``: box centre and
  size in input pixels, then C class scores; LensForge does the NMS. Letterboxed input.
- ``rtdetr``: one output ``[1, N, 4 + C]`` (RT-DETR: class probabilities), or two outputs
  boxes ``[1, N, 4]`` and class logits ``[1, N, C]`` (RF-DETR); boxes as centre and size
  relative to the input (0-1). Input stretched to the model's size (and, for the two-output
  RF-DETR layout, normalised with the ImageNet mean and standard deviation).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from lensforge.errors import Conflict, NotFound, ValidationError

ModelFormat = Literal["yolo", "rtdetr"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
MAX_LABELS = 10_000
DEFAULT_INPUT_SIDE = 640  # for graphs whose input height and width are dynamic


class ModelInfo(BaseModel):
    """A registered model: what ``objects.detect`` needs to run it and what users see."""

    name: str = Field(description="The name to select it with: {'model': NAME}.")
    format: ModelFormat = Field(description="Output layout: 'yolo' or 'rtdetr'.")
    sha256: str = Field(description="SHA-256 of the .onnx file.")
    size_bytes: int
    input_width: int
    input_height: int
    layout: str = Field(
        description="How the outputs are read: 'channels_first' ([1, 4+C, N]), "
        "'channels_last' ([1, N, 4+C]) or 'boxes_logits' (two outputs)."
    )
    resize: Literal["letterbox", "stretch"] = Field(description="How images are fitted.")
    normalize: Literal["unit", "imagenet"] = Field(
        default="unit",
        description="Input scaling: 'unit' (RGB / 255) or 'imagenet' (then minus the ImageNet "
        "mean, over its standard deviation, as RF-DETR expects).",
    )
    labels: list[str] = Field(description="Class names, in the model's class order.")
    license: str | None = Field(default=None, description="The weights' licence, as declared.")
    source: str = Field(description="The file name it was added from.")
    added_at: str = Field(description="When it was added (UTC, ISO 8601).")


def read_labels(path: Path) -> list[str]:
    """Class names, one per line (blank lines and surrounding spaces ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"Cannot read the labels file {path}: {exc}") from exc
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels or len(labels) > MAX_LABELS:
        raise ValidationError(
            f"The labels file {path} must list 1 to {MAX_LABELS} class names, one per line; "
            f"it lists {len(labels)}."
        )
    return labels


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def inspect_model(path: Path, model_format: ModelFormat, labels: list[str]) -> dict[str, Any]:
    """Check an ONNX file's graph against the format; its input size and output layout.

    Raises :class:`ValidationError` saying what is wrong and what was expected.
    """
    import numpy as np
    import onnxruntime

    def refuse(problem: str) -> ValidationError:
        return ValidationError(
            f"The model {path.name} cannot be used as '{model_format}': {problem}. "
            "See docs/models.md for the supported layouts and how to export them.",
            details={"format": model_format, "file": path.name},
        )

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types for bad files
        raise refuse(f"ONNX Runtime cannot load it ({str(exc).splitlines()[0][:300]})") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        shapes = [list(i.shape) for i in inputs]
        raise refuse(f"it needs one image input [1, 3, H, W], it has {shapes}")
    channels = _dim(inputs[0].shape[1])
    if channels not in (3, None):
        raise refuse(f"its input has {channels} channels, not 3 (RGB)")
    height = _dim(inputs[0].shape[2]) or DEFAULT_INPUT_SIDE
    width = _dim(inputs[0].shape[3]) or DEFAULT_INPUT_SIDE
    blank = np.zeros((1, 3, height, width), dtype=np.float32)
    try:
        outputs = session.run(None, {inputs[0].name: blank})
    except Exception as exc:
        raise refuse(f"it fails on a blank {width}x{height} image ({str(exc)[:300]})") from exc
    shapes = [list(np.shape(o)) for o in outputs]
    classes = len(labels)
    layout = _layout(model_format, shapes, classes)
    if layout is None:
        expected = (
            f"one output [1, {4 + classes}, N] or [1, N, {4 + classes}]"
            if model_format == "yolo"
            else f"one output [1, N, {4 + classes}], or two outputs [1, N, 4] and [1, N, {classes}]"
        )
        raise refuse(f"for {classes} labels it needs {expected}; its outputs are {shapes}")
    return {"input_width": width, "input_height": height, "layout": layout}


def _layout(model_format: ModelFormat, shapes: list[list[int]], classes: int) -> str | None:
    if any(len(shape) != 3 or shape[0] != 1 for shape in shapes):
        return None
    if model_format == "yolo" and len(shapes) == 1:
        (_, a, b), width = shapes[0], 4 + classes
        if a == width and b != width:
            return "channels_first"
        if b == width and a != width:
            return "channels_last"
        if a == b == width:  # N == 4 + C: ambiguous; exporters write channels first
            return "channels_first"
        return None
    if model_format == "rtdetr":
        if len(shapes) == 1 and shapes[0][2] == 4 + classes:
            return "channels_last"
        if len(shapes) == 2:
            boxes, scores = shapes
            if boxes[2] != 4 and scores[2] == 4:
                boxes, scores = scores, boxes
            if boxes[2] == 4 and scores[2] == classes and boxes[1] == scores[1]:
                return "boxes_logits"
    return None


class ModelRegistry:
    """The models under ``<data_dir>/models``: add, list, get and remove them."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "models"
        self._lock = threading.Lock()

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def file(self, info: ModelInfo) -> Path:
        """Where a registered model's file is stored."""
        return self.root / "sha256" / f"{info.sha256}.onnx"

    def _read(self) -> dict[str, ModelInfo]:
        try:
            raw = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {name: ModelInfo.model_validate(entry) for name, entry in raw.items()}

    def _write(self, models: dict[str, ModelInfo]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {name: info.model_dump() for name, info in sorted(models.items())}
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".index-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, self.index_path)

    def models(self) -> list[ModelInfo]:
        """Every registered model, by name."""
        return list(self._read().values())

    def get(self, name: str) -> ModelInfo:
        info = self._read().get(name)
        if info is None:
            known = ", ".join(self._read()) or "none"
            raise NotFound(
                f"No model named '{name}' is registered (registered: {known}); add one with "
                "`lensforge models add NAME PATH --format yolo|rtdetr --labels labels.txt`.",
                details={"model": name},
            )
        return info

    def add(
        self,
        name: str,
        path: Path,
        model_format: ModelFormat,
        labels: list[str],
        license: str | None = None,
        *,
        replace: bool = False,
    ) -> ModelInfo:
        """Check the model, copy it in under its SHA-256 and record it as ``name``."""
        if not re.match(NAME_PATTERN, name):
            raise ValidationError(
                f"Model name '{name}' is not valid: use 1-63 lowercase letters, digits, '_', "
                "'.' or '-', starting with a letter or digit.",
                details={"model": name},
            )
        path = Path(path)
        if not path.is_file():
            raise ValidationError(f"No model file at {path}.", details={"path": str(path)})
        facts = inspect_model(path, model_format, labels)
        digest = _sha256(path)
        with self._lock:
            models = self._read()
            if name in models and not replace:
                raise Conflict(
                    f"A model named '{name}' is already registered; remove it first.",
                    details={"model": name},
                )
            stored = self.root / "sha256" / f"{digest}.onnx"
            if not stored.exists():
                stored.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=stored.parent, suffix=".part")
                os.close(fd)
                shutil.copyfile(path, tmp)
                os.replace(tmp, stored)
            info = ModelInfo(
                name=name,
                format=model_format,
                sha256=digest,
                size_bytes=stored.stat().st_size,
                resize="letterbox" if model_format == "yolo" else "stretch",
                normalize="imagenet" if facts["layout"] == "boxes_logits" else "unit",
                labels=labels,
                license=license,
                source=path.name,
                added_at=datetime.now(UTC).isoformat(timespec="seconds"),
                **facts,
            )
            models[name] = info
            self._write(models)
        return info

    def remove(self, name: str) -> ModelInfo:
        """Forget ``name``; its file goes too unless another name refers to it."""
        with self._lock:
            models = self._read()
            info = models.pop(name, None)
            if info is None:
                raise NotFound(f"No model named '{name}' is registered.", details={"model": name})
            self._write(models)
            if all(other.sha256 != info.sha256 for other in models.values()):
                self.file(info).unlink(missing_ok=True)
        return info
