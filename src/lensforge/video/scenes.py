"""Scene cuts: where the picture changes at once rather than by motion.

Method (documented in docs/video.md): each frame is reduced to a 64x36 RGB thumbnail;
the score between two consecutive frames is the mean absolute difference of their
thumbnails over all three channels (0-255; a change of hue at equal brightness
counts). A cut is declared where the score exceeds ``threshold`` (default 30)
AND is more than ``contrast`` (default 2.5) times the median score of the previous 15 frame
pairs, so that steady fast motion (which scores high on every frame) is not taken for cuts
while a real cut stands out from its neighbours. ``min_gap_s`` suppresses cuts closer than
that to the previous one (flashes).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lensforge.video.frames import Frame

if TYPE_CHECKING:
    import numpy as np

DEFAULT_THRESHOLD = 30.0
DEFAULT_CONTRAST = 2.5
HISTORY = 15
THUMB = (64, 36)


@dataclass(frozen=True)
class Cut:
    frame: int  # the first frame of the new scene
    timestamp_s: float
    score: float  # mean absolute thumbnail difference, 0-255


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    import cv2
    import numpy as np

    small: np.ndarray = cv2.resize(rgb, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
    return small


def detect_cuts(
    frames: Iterable[Frame],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    contrast: float = DEFAULT_CONTRAST,
    min_gap_s: float = 0.2,
) -> list[Cut]:
    """The scene cuts among consecutive ``frames`` (decode every frame for exact results)."""
    import numpy as np

    cuts: list[Cut] = []
    previous: np.ndarray | None = None
    recent: deque[float] = deque(maxlen=HISTORY)
    last_cut_s = -1e9
    for frame in frames:
        current = thumbnail(frame.rgb)
        if previous is not None:
            score = float(np.abs(current - previous).mean())
            usual = float(np.median(recent)) if recent else 0.0
            if (
                score > threshold
                and score > contrast * usual
                and frame.timestamp_s - last_cut_s >= min_gap_s
            ):
                cuts.append(Cut(frame.index, frame.timestamp_s, round(score, 2)))
                last_cut_s = frame.timestamp_s
            recent.append(score)
        previous = current
    return cuts
