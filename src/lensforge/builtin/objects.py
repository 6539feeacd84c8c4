"""The ``objects`` plugin: object detection with the user's own ONNX models.

Models are registered with ``lensforge models add`` (:mod:`lensforge.models.registry`) and
run by ONNX Runtime: the CUDA provider where it is installed, else the CPU. No weights ship
with LensForge. The registry is read from ``$LENSFORGE_DATA_DIR/models`` (the server's data
directory), so a model added while the server runs is usable at once.

Pre- and post-processing follow the exporters: YOLO input is letterboxed (aspect kept, grey
padding), DETR input stretched; YOLO outputs go through per-class non-maximum suppression,
DETR outputs are already one box per object (NMS is applied too, harmlessly). Boxes come
back in the caller's image pixels.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from lensforge.builtin.detections import (
    Detections,
    IouThreshold,
    MaxDetections,
    ScoreThreshold,
    clamped_box,
    nms_per_label,
)
from lensforge.errors import NotFound, ValidationError
from lensforge.media import Image
from lensforge.models.registry import ModelInfo, ModelRegistry
from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Detection
from lensforge.settings import Settings

if TYPE_CHECKING:
    import numpy as np

LETTERBOX_GREY = 114  # the padding colour YOLO models are trained with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def data_dir() -> Path:
    """The data directory the registry lives in: ``$LENSFORGE_DATA_DIR`` or the default."""
    configured = os.environ.get("LENSFORGE_DATA_DIR")
    return Path(configured) if configured else Path(Settings.model_fields["data_dir"].default)


@dataclass(frozen=True)
class Fitted:
    """An image fitted to a model's input, and how to map input pixels back."""

    tensor: np.ndarray  # [1, 3, H, W] float32, RGB, 0-1
    scale_x: float  # input pixels per image pixel
    scale_y: float
    pad_x: float  # input pixels of padding left / top
    pad_y: float


def fit(rgb: np.ndarray, width: int, height: int, resize: str, normalize: str = "unit") -> Fitted:
    """Letterbox (keep the aspect, centre, pad grey) or stretch ``rgb`` to width x height;
    scale to 0-1, and for ``normalize='imagenet'`` standardise with ImageNet's statistics."""
    import cv2
    import numpy as np

    h, w = rgb.shape[:2]
    if resize == "letterbox":
        ratio = min(width / w, height / h)
        new_w, new_h = max(1, round(w * ratio)), max(1, round(h * ratio))
        pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
        canvas: np.ndarray = np.full((height, width, 3), LETTERBOX_GREY, dtype=np.uint8)
        resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
        scale_x, scale_y = new_w / w, new_h / h
    else:
        canvas = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
        pad_x = pad_y = 0
        scale_x, scale_y = width / w, height / h
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    if normalize == "imagenet":
        mean = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.array(IMAGENET_STD, dtype=np.float32).reshape(1, 3, 1, 1)
        tensor = (tensor - mean) / std
    return Fitted(tensor, scale_x, scale_y, float(pad_x), float(pad_y))


def decode(info: ModelInfo, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``[N, 4]`` (centre x, centre y, width, height in input pixels) and class scores
    ``[N, C]`` (0-1) from a model's raw outputs, by its recorded layout."""
    import numpy as np

    if info.layout == "boxes_logits":
        boxes, logits = (outputs[0][0], outputs[1][0])
        if boxes.shape[-1] != 4:
            boxes, logits = logits, boxes
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        relative = True
    else:
        rows = outputs[0][0]
        if info.layout == "channels_first":
            rows = rows.T
        boxes, scores = rows[:, :4], rows[:, 4:].astype(np.float64)
        relative = info.format == "rtdetr"
    boxes = boxes.astype(np.float64)
    if relative:  # DETR boxes are fractions of the input
        boxes = boxes * np.array([info.input_width, info.input_height] * 2, dtype=np.float64)
    return boxes, scores


class ObjectsPlugin(Plugin):
    """Detect objects with your own ONNX models (YOLO or DETR layouts), run by ONNX Runtime."""

    name = "objects"
    version = "1.0.0"
    requires_packages = ("onnxruntime", "numpy", "cv2")
    install_hint = "pip install 'onnxruntime>=1.20' (or onnxruntime-gpu for CUDA)"

    def setup(self) -> None:
        import numpy  # noqa: F401
        import onnxruntime

        self._ort: Any = onnxruntime
        available = onnxruntime.get_available_providers()
        self.providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        ]
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _session(self, registry: ModelRegistry, info: ModelInfo) -> Any:
        """The ONNX Runtime session of a model file, loaded once (sessions are thread-safe)."""
        session = self._sessions.get(info.sha256)
        if session is None:
            with self._lock:
                session = self._sessions.get(info.sha256)
                if session is None:
                    options = self._ort.SessionOptions()
                    threads = os.environ.get("OMP_NUM_THREADS", "")
                    if threads.isdigit():  # a worker per core: one thread per session
                        options.intra_op_num_threads = int(threads)
                    session = self._ort.InferenceSession(
                        str(registry.file(info)), options, providers=self.providers
                    )
                    self._sessions[info.sha256] = session
        return session

    @tool(timeout_s=60)
    def detect(
        self,
        image: Image,
        model: Annotated[
            str,
            Field(
                min_length=1,
                max_length=63,
                description="A registered model's name (GET /v1/models, `lensforge models list`).",
            ),
        ],
        threshold: ScoreThreshold = 0.25,
        iou: IouThreshold = 0.45,
        classes: Annotated[
            list[str] | None,
            Field(description="Report only these labels (names from the model's labels)."),
        ] = None,
        max_detections: MaxDetections = 100,
        ctx: ToolContext | None = None,
    ) -> Detections:
        """Detect objects with a registered ONNX model: label, score and box of each, most
        confident first, boxes in the image's pixels."""
        import numpy as np

        registry = ModelRegistry(data_dir())
        try:
            info = registry.get(model)
        except NotFound as exc:
            registered = [m.name for m in registry.models()]
            details = {"model": model, "registered": registered}
            raise ValidationError(exc.message, details=details) from None
        wanted = None
        if classes:
            unknown = sorted(set(classes) - set(info.labels))
            if unknown:
                raise ValidationError(
                    f"Model '{model}' has no class {', '.join(map(repr, unknown))}.",
                    details={"unknown": unknown, "labels": info.labels[:200]},
                )
            wanted = np.array([label in set(classes) for label in info.labels])
        session = self._session(registry, info)
        rgb = image.array("RGB")
        fitted = fit(rgb, info.input_width, info.input_height, info.resize, info.normalize)
        if ctx is not None:
            ctx.check_cancelled()
        outputs = session.run(None, {session.get_inputs()[0].name: fitted.tensor})
        boxes, scores = decode(info, outputs)
        if wanted is not None:
            scores = np.where(wanted[None, :], scores, 0.0)
        labels = scores.argmax(axis=1)
        best = scores[np.arange(len(scores)), labels] if len(scores) else np.zeros(0)
        keep = best >= threshold
        boxes, best, labels = boxes[keep], best[keep], labels[keep]
        corners = np.stack(
            [
                (boxes[:, 0] - boxes[:, 2] / 2 - fitted.pad_x) / fitted.scale_x,
                (boxes[:, 1] - boxes[:, 3] / 2 - fitted.pad_y) / fitted.scale_y,
                (boxes[:, 0] + boxes[:, 2] / 2 - fitted.pad_x) / fitted.scale_x,
                (boxes[:, 1] + boxes[:, 3] / 2 - fitted.pad_y) / fitted.scale_y,
            ],
            axis=1,
        )
        height, width = rgb.shape[:2]
        detections: list[Detection] = []
        for i in nms_per_label(corners, best, labels, iou):
            if len(detections) == max_detections:
                break
            x1, y1, x2, y2 = corners[i].tolist()
            box = clamped_box(x1, y1, x2, y2, width, height)
            if box.width > 0 and box.height > 0:
                label = info.labels[int(labels[i])]
                score = round(min(1.0, float(best[i])), 4)
                detections.append(Detection(label=label, score=score, box=box))
        return Detections(detections=detections, count=len(detections), model=info.name)
