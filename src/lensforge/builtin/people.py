"""The ``people`` plugin: standing people found by OpenCV's HOG pedestrian detector.

The detector's coefficients are compiled into OpenCV 4.x
(``HOGDescriptor_getDefaultPeopleDetector``), so detection works on a fresh install with
nothing to download. It is a classic baseline
(Dalal-Triggs): upright, mostly whole people; for anything better register a model and use
``objects.detect``.

The image is padded (edge pixels repeated) so that people cut off by the frame still fit the
detector's window, and searched at three sizes, the largest one where the smallest wanted
person is about as tall as that window. A person is found at every size, a texture that
fools the detector (a cat's fur, a rocket) usually at only some: a box's margin ``m`` is the
mean over the sizes of the best overlapping detection's SVM margin (0 where none), and its
score ``m / (1 + m)``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from lensforge.builtin.detections import (
    Detections,
    IouThreshold,
    clamped_box,
    iou_matrix,
    nms,
)
from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Detection

if TYPE_CHECKING:
    import numpy as np

MODEL = "hog-people"
WINDOW_PERSON_PX = 96  # a person inside HOG's 64x128 window is about this tall
WORK_SIDE = 330  # the padded image is searched at least this large (long side) ...
MAX_WORK_SIDE = 1600  # ... and at most this large
SCALE_STEPS = (1.0, 1.22, 1.5)  # ... and at these fractions of it
MIN_WORK = (170, 100)  # (height, width): smaller inputs crash OpenCV's HOG
PAD = 0.25  # share of the long side repeated around the image


class PeoplePlugin(Plugin):
    """Detect standing people with OpenCV's built-in HOG pedestrian detector."""

    name = "people"
    version = "1.0.0"
    requires_packages = ("cv2", "numpy")
    install_hint = "pip install 'opencv-python-headless>=4.10,<5'"

    def setup(self) -> None:
        import cv2
        import numpy  # noqa: F401

        self._cv2: Any = cv2
        self._local = threading.local()
        self._hog()  # fail now if this OpenCV has no HOG people detector

    def _hog(self) -> Any:
        """This thread's HOG descriptor (OpenCV objects are not thread-safe)."""
        hog = getattr(self._local, "hog", None)
        if hog is None:
            hog = self._cv2.HOGDescriptor()
            hog.setSVMDetector(self._cv2.HOGDescriptor_getDefaultPeopleDetector())
            self._local.hog = hog
        return hog

    @tool(timeout_s=30)
    def detect(
        self,
        image: Image,
        threshold: Annotated[
            float,
            Field(
                ge=0,
                le=1,
                description="Lowest score to report; the score is the detector's SVM margin m "
                "(averaged over three search sizes) mapped to 0-1 as m / (1 + m).",
            ),
        ] = 0.2,
        min_height: Annotated[
            int | None,
            Field(
                ge=32,
                le=8192,
                description="Smallest person to find: height in pixels. When omitted, people "
                "down to about a third of the image's height are found; smaller values search "
                "a larger copy of the image (slower).",
            ),
        ] = None,
        iou: IouThreshold = 0.45,
        ctx: ToolContext | None = None,
    ) -> Detections:
        """Find standing people: a box and score for each, label 'person', most confident first."""
        import numpy as np

        rgb = image.array("RGB")
        height, width = rgb.shape[:2]
        pad = round(PAD * max(height, width))
        padded = self._cv2.copyMakeBorder(rgb, pad, pad, pad, pad, self._cv2.BORDER_REPLICATE)
        side = max(height, width) + 2 * pad
        wanted = WORK_SIDE if min_height is None else side * WINDOW_PERSON_PX / min_height
        base = min(MAX_WORK_SIDE, max(WORK_SIDE, wanted))
        runs: list[tuple[np.ndarray, np.ndarray]] = []
        for step in SCALE_STEPS:
            if ctx is not None:
                ctx.check_cancelled()
            runs.append(self._search(padded, base / step / side, pad))
        boxes = np.concatenate([b for b, _ in runs])
        if len(boxes) == 0:
            return Detections(detections=[], count=0, model=MODEL)
        # a person is found at every size; a texture that fools one size rarely fools all
        support = np.stack(
            [
                np.where(iou_matrix(boxes, b) > 0.5, m[None, :], 0.0).max(axis=1, initial=0.0)
                for b, m in runs
            ]
        )
        margin = support.mean(axis=0)
        scores = margin / (1 + margin)
        detections = []
        for i in nms(boxes, scores, iou):
            x1, y1, x2, y2 = boxes[i].tolist()
            box = clamped_box(x1, y1, x2, y2, width, height)
            too_small = min_height is not None and box.height < min_height
            if scores[i] >= threshold and box.width > 0 and box.height > 0 and not too_small:
                score = round(float(scores[i]), 4)
                detections.append(Detection(label="person", score=score, box=box))
        return Detections(detections=detections, count=len(detections), model=MODEL)

    def _search(self, padded: np.ndarray, scale: float, pad: int) -> tuple[np.ndarray, np.ndarray]:
        """HOG boxes (corners, in the unpadded image's pixels) and their SVM margins."""
        import numpy as np

        cv2 = self._cv2
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        work = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=interpolation)
        # OpenCV's HOG crashes (SIGSEGV) on images smaller than its window plus padding
        if work.shape[0] < MIN_WORK[0] or work.shape[1] < MIN_WORK[1]:
            return np.zeros((0, 4)), np.zeros(0)
        rects, margins = self._hog().detectMultiScale(
            work, winStride=(4, 4), padding=(16, 16), scale=1.05
        )
        if len(rects) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        boxes = np.asarray(rects, dtype=np.float64) / scale
        boxes[:, :2] -= pad
        boxes[:, 2:] += boxes[:, :2]
        return boxes, np.clip(np.ravel(margins).astype(np.float64), 0, None)
