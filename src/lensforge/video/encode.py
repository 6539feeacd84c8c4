"""Writing frames as H.264 in MP4 (redacted videos, and the test suite's generated clips)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from lensforge.video.probe import fps_fraction

if TYPE_CHECKING:
    import numpy as np


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 30.0,
    crf: int = 23,
    faststart: bool = True,
) -> int:
    """Encode RGB frames (all the same size) with libx264; returns the frames written.

    ``faststart`` puts the index (moov) at the front, so a browser can play the file while
    it downloads and a reader can probe it from its first bytes.
    """
    import av
    import numpy as np

    options = {"movflags": "+faststart"} if faststart else {}
    count = 0
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps_fraction(fps))
                stream.width, stream.height = int(rgb.shape[1]), int(rgb.shape[0])
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count
