"""Redacting faces: the pixel operation (blur, pixelate or fill a padded box) shared by
``faces.redact`` (an image) and ``faces.redact_video``, and the video loop of the latter.

The video loop decodes, redacts and encodes one frame at a time
(:func:`lensforge.video.transcode.rewrite_video`): faces are detected on every ``every_n``-th
frame and the last boxes are carried over to the frames in between. Progress is reported
per frame and a cancelled job stops between two frames.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field

from lensforge.plugin import ToolContext
from lensforge.results import Box, ImageArtifact
from lensforge.video.frames import Frame
from lensforge.video.transcode import AudioOutcome, AudioPolicy, rewrite_video

if TYPE_CHECKING:
    import numpy as np

    from lensforge.video.media import Video

RedactMode = Literal["blur", "pixelate", "fill"]
Mode = Annotated[
    RedactMode,
    Field(description="blur (Gaussian), pixelate (coarse blocks) or fill (black)."),
]
Strength = Annotated[
    float,
    Field(
        gt=0,
        le=1,
        description="blur: sigma = strength x face size / 4; pixelate: block edge = "
        "strength x face size / 4 (at least 2 px); ignored by fill.",
    ),
]
Padding = Annotated[
    float,
    Field(ge=0, le=1, description="Grow each face box by this share of its size."),
]


def redact_boxes(
    pixels: np.ndarray, boxes: Iterable[Box], mode: RedactMode, strength: float, padding: float
) -> list[Box]:
    """Redact each box of ``pixels`` (H x W or H x W x C, changed in place), grown by
    ``padding``; colour channels only (an alpha channel stays). Returns the exact integer
    rectangles changed."""
    import cv2
    import numpy as np

    regions: list[Box] = []
    for box in boxes:
        pad_x, pad_y = box.width * padding, box.height * padding
        x0 = max(0, math.floor(box.x - pad_x))
        y0 = max(0, math.floor(box.y - pad_y))
        x1 = min(pixels.shape[1], math.ceil(box.x + box.width + pad_x))
        y1 = min(pixels.shape[0], math.ceil(box.y + box.height + pad_y))
        if x1 <= x0 or y1 <= y0:
            continue
        view = pixels[y0:y1, x0:x1, :3] if pixels.ndim == 3 else pixels[y0:y1, x0:x1]
        roi = np.ascontiguousarray(view)
        size = max(x1 - x0, y1 - y0)
        if mode == "blur":
            sigma = max(1.0, strength * size / 4)
            view[...] = cv2.GaussianBlur(roi, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        elif mode == "pixelate":
            block = max(2, round(strength * size / 4))
            small = (max(1, (x1 - x0) // block), max(1, (y1 - y0) // block))
            coarse = cv2.resize(roi, small, interpolation=cv2.INTER_AREA)
            view[...] = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        else:
            view[...] = 0
        regions.append(Box(x=x0, y=y0, width=x1 - x0, height=y1 - y0))
    return regions


class VideoArtifact(ImageArtifact):
    """A video a tool produced, stored as a blob like an image artifact (the ToolRunner
    stores every :class:`ImageArtifact`, this one included); fetch it from
    ``GET /v1/blobs/{sha256}``, which serves byte ranges."""

    fps: float = Field(description="Frame rate (constant).")
    frame_count: int
    codec: str = Field(description="Video codec: h264, or mpeg4 where no H.264 encoder exists.")

    @classmethod
    def from_file(
        cls, path: Path, *, width: int, height: int, fps: float, frame_count: int, codec: str
    ) -> VideoArtifact:
        import hashlib

        data = path.read_bytes()
        artifact = cls(
            blob=f"sha256:{hashlib.sha256(data).hexdigest()}",
            media_type="video/mp4",
            width=width,
            height=height,
            fps=round(fps, 3),
            frame_count=frame_count,
            codec=codec,
        )
        artifact._data = data
        return artifact


class RedactedVideo(BaseModel):
    video: VideoArtifact = Field(description="The redacted MP4; fetch it from /v1/blobs.")
    frames: int = Field(description="Frames written (all of the source's).")
    frames_detected: int = Field(description="Frames the detector ran on (see every_n).")
    frames_with_faces: int = Field(description="Frames with at least one redacted region.")
    max_faces: int = Field(description="The most faces redacted in one frame.")
    audio: AudioOutcome = Field(
        description="copied (the source's audio packets, unchanged), dropped (not an MP4 "
        "audio codec, or audio='drop' asked), or none (the source has no audio)."
    )
    mode: RedactMode
    detector: Literal["centerface", "haar"]


Detect = Callable[[Frame], list[Box]]


class _FrameRedactor:
    """The per-frame step of :func:`redact_video`: detect (every ``every_n``-th frame, the
    others reuse the last boxes), redact, count, report progress; stop when cancelled."""

    def __init__(
        self,
        detect: Detect,
        *,
        mode: RedactMode,
        strength: float,
        padding: float,
        every_n: int,
        rotation: int,
        total: int,
        ctx: ToolContext | None,
    ) -> None:
        self.detect, self.mode, self.strength, self.padding = detect, mode, strength, padding
        self.every_n, self.total, self.ctx = every_n, total, ctx
        self.turns = rotation % 360 // 90  # counter-clockwise quarter turns to upright
        self.boxes: list[Box] = []
        self.done = self.detected = self.with_faces = self.max_faces = 0

    def __call__(self, frame: Frame) -> np.ndarray:
        import numpy as np

        if self.ctx is not None:
            self.ctx.check_cancelled()
        # Faces are found and redacted on the frame as it is shown (upright): a view of the
        # stored pixels, so redacting the view changes them.
        upright = np.rot90(frame.rgb, self.turns) if self.turns else frame.rgb
        if self.done % self.every_n == 0:  # counted, not frame.index: pts may have gaps
            shown = Frame(frame.index, frame.timestamp_s, np.ascontiguousarray(upright))
            self.boxes = self.detect(shown)
            self.detected += 1
        regions = redact_boxes(upright, self.boxes, self.mode, self.strength, self.padding)
        self.with_faces += bool(regions)
        self.max_faces = max(self.max_faces, len(regions))
        self.done += 1
        if self.ctx is not None and self.total:
            fraction = min(1.0, self.done / self.total)
            self.ctx.progress(fraction, f"frame {self.done} of {self.total}")
        return frame.rgb


def redact_video(
    video: Video,
    detect: Detect,
    *,
    mode: RedactMode,
    strength: float,
    padding: float,
    every_n: int,
    audio: AudioPolicy,
    crf: int,
    detector: Literal["centerface", "haar"],
    ctx: ToolContext | None,
) -> RedactedVideo:
    """Copy ``video`` with the boxes ``detect`` finds redacted on every frame."""
    redact = _FrameRedactor(
        detect,
        mode=mode,
        strength=strength,
        padding=padding,
        every_n=every_n,
        rotation=video.info.rotation,
        total=video.info.frame_count,
        ctx=ctx,
    )
    with tempfile.TemporaryDirectory(prefix="lensforge-redact-") as folder:
        target = Path(folder) / "redacted.mp4"
        written = rewrite_video(
            video.path, target, redact, audio=audio, rotation=video.info.rotation, crf=crf
        )
        artifact = VideoArtifact.from_file(
            target,
            width=written.width,
            height=written.height,
            fps=written.fps,
            frame_count=written.frames,
            codec="h264" if written.codec != "mpeg4" else "mpeg4",
        )
    return RedactedVideo(
        video=artifact,
        frames=written.frames,
        frames_detected=redact.detected,
        frames_with_faces=redact.with_faces,
        max_faces=redact.max_faces,
        audio=written.audio,
        mode=mode,
        detector=detector,
    )
