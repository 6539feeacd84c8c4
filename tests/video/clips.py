"""Generated test clips with known content: scenes of flat colour with a moving square."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lensforge.video import write_mp4

SCENE_COLOURS = ((40, 40, 40), (200, 60, 60), (60, 60, 200), (220, 220, 220))


def scene_frames(
    width: int = 320, height: int = 180, fps: int = 30, scene_s: float = 1.0, scenes: int = 3
) -> list[np.ndarray]:
    """``scenes`` scenes of ``scene_s`` seconds; a white square moves 3 px per frame in each."""
    frames = []
    per_scene = round(scene_s * fps)
    for s in range(scenes):
        for i in range(per_scene):
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = SCENE_COLOURS[s % len(SCENE_COLOURS)]
            x = 10 + 3 * i
            frame[60:100, x : x + 40] = (255, 255, 255) if s % 2 == 0 else (0, 0, 0)
            frames.append(frame)
    return frames


def write_scene_clip(path: Path, **kwargs: float | int) -> Path:
    fps = int(kwargs.get("fps", 30))
    write_mp4(path, scene_frames(**kwargs), fps=fps)  # type: ignore[arg-type]
    return path


def write_with(path: Path, container: str, codec: str, frames: int = 30, fps: int = 30) -> Path:
    """A short clip in another container/codec (WebM/VP9, MKV, AVI/MPEG-4)."""
    import av

    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(frames):
            img = np.full((96, 160, 3), (i * 8) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
