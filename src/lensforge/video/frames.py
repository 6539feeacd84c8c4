"""Decoding the frames a tool asked for: every frame, every N seconds, or at given times.

Frames are decoded one at a time and handed out as RGB numpy arrays with their index and
timestamp, so memory stays at one frame whatever the length of the video. ``start_frame``
resumes a partly processed video: the decoder seeks to the keyframe before it and skips
forward, so a resumed job does not decode from frame 0 again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from lensforge.media import Image


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the stream, its time in seconds, RGB pixels."""

    index: int
    timestamp_s: float
    rgb: np.ndarray

    def to_pil(self) -> Any:
        from PIL import Image as PILImage

        return PILImage.fromarray(self.rgb)

    def image(self) -> Image:
        """The frame as the ``Image`` an image tool takes: the decoded pixels (a PNG of them
        only if a tool asks for the file)."""
        from lensforge.media import Image

        return Image(self.to_pil(), data=None, format="PNG", media_type="image/png")


@dataclass(frozen=True)
class Sampling:
    """Which frames to take: all (the default), one every ``every_s`` seconds, one every
    ``every_n`` frames, or the frames nearest to the timestamps in ``at_s``."""

    every_s: float | None = None
    every_n: int | None = None
    at_s: Sequence[float] = ()

    def wanted(self, fps: float, frame_count: int) -> list[int] | None:
        """The frame indexes to take, or None for every frame."""
        if self.at_s:
            picked = {min(frame_count - 1, max(0, round(t * fps))) for t in self.at_s}
            return sorted(picked)
        step = self.every_n
        if self.every_s is not None:
            step = max(1, round(self.every_s * fps))
        if step is None or step <= 1:
            return None
        return list(range(0, frame_count, step))


def iter_frames(
    path: str | Path,
    sampling: Sampling | None = None,
    *,
    start_frame: int = 0,
    max_side: int | None = None,
) -> Iterator[Frame]:
    """Yield the sampled frames of the first video stream, from ``start_frame`` on.

    ``max_side`` downsizes frames whose longer side is larger (keeping the aspect ratio),
    done by FFmpeg's scaler while converting to RGB.
    """
    import av

    sampling = sampling or Sampling()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg decodes with frame threads
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        total = int(stream.frames or 0) or 1 << 62
        wanted = sampling.wanted(fps, total)
        targets = iter([i for i in wanted if i >= start_frame]) if wanted is not None else None
        next_target = next(targets, None) if targets is not None else start_frame
        if next_target is None:
            return
        time_base = stream.time_base
        if next_target > 0 and time_base:
            container.seek(int(next_target / fps / time_base), stream=stream, backward=True)
        width = height = None
        for frame in container.decode(stream):
            index = _index(frame, fps, time_base)
            if index < next_target:
                continue
            if width is None:
                width, height = _scaled(frame.width, frame.height, max_side)
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
            yield Frame(index, round(index / fps, 6), rgb)
            if targets is None:
                next_target = index + 1
            else:
                following = next(targets, None)
                if following is None:
                    return
                next_target = following


def _index(frame: Any, fps: float, time_base: Any) -> int:
    if frame.pts is None or not time_base:
        return int(frame.index)
    return round(float(frame.pts * time_base) * fps)


def _scaled(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    ratio = max_side / max(width, height)
    return max(2, round(width * ratio) // 2 * 2), max(2, round(height * ratio) // 2 * 2)
