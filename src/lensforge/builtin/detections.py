"""What the detectors (``people.detect``, ``objects.detect``) share: the result model, class
filters, box clamping and non-maximum suppression.

``Detections`` is a candidate for :mod:`lensforge.results` beside ``Detection``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from lensforge.results import Box, Detection

if TYPE_CHECKING:
    import numpy as np

ScoreThreshold = Annotated[float, Field(ge=0, le=1, description="Lowest score to report (0-1).")]
IouThreshold = Annotated[
    float,
    Field(
        gt=0,
        le=1,
        description="Non-maximum suppression: of two boxes of one label overlapping more than "
        "this (intersection over union), only the higher-scoring one is kept.",
    ),
]
MaxDetections = Annotated[int, Field(ge=1, le=10_000, description="Report at most this many.")]


class Detections(BaseModel):
    """Things found in an image, most confident first."""

    detections: list[Detection] = Field(description="One per object: label, score, box.")
    count: int
    model: str = Field(description="The detector or registered model that ran.")


def clamped_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
    """The box (corner form) cut to the image, rounded to 0.1 px."""
    left, top = min(max(0.0, x1), width), min(max(0.0, y1), height)
    right, bottom = min(max(left, x2), width), min(max(top, y2), height)
    return Box(
        x=round(left, 1),
        y=round(top, 1),
        width=round(right - left, 1),
        height=round(bottom - top, 1),
    )


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (``[N, 4]`` corners) with every box in
    ``b`` (``[M, 4]``): an ``[N, M]`` array."""
    import numpy as np

    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    result: np.ndarray = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
    return result


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indexes of the boxes (``[N, 4]`` corners x1, y1, x2, y2) kept by greedy
    non-maximum suppression, highest score first."""
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        w = np.clip(
            np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]),
            0,
            None,
        )
        h = np.clip(
            np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]),
            0,
            None,
        )
        inter = w * h
        union = areas[best] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return keep


def nms_per_label(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float
) -> list[int]:
    """Non-maximum suppression within each label; indexes kept, highest score first."""
    import numpy as np

    keep: list[int] = []
    for label in np.unique(labels):
        members = np.nonzero(labels == label)[0]
        keep += [int(members[i]) for i in nms(boxes[members], scores[members], iou)]
    return sorted(keep, key=lambda i: -float(scores[i]))
