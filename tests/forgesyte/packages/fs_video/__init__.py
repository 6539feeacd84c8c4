"""ForgeSyte-style video plugin: tools that read ``video_path`` with PyAV and report
``progress_callback(current_frame, total_frames)``, as ForgeSyte's video plugins do."""

import os
import stat
import time
from typing import Any

import av
import numpy as np

FRAME_DELAY_S = 0.02  # long enough for progress to be seen while the job runs


def _frames(video_path: str) -> tuple[int, Any]:
    container = av.open(video_path)
    stream = container.streams.video[0]
    return int(stream.frames or 0), container


class Plugin:
    """Counts and measures the frames of a video."""

    name = "fs-video"
    version = "0.4.0"

    def __init__(self) -> None:
        self.tools = {
            "count_frames": {
                "description": "Counts the frames of a video",
                "input_schema": {"video_path": {"type": "string"}},
                "output_schema": {
                    "type": "object",
                    "properties": {
                        "total_frames": {"type": "integer"},
                        "frames": {"type": "array"},
                        "video_path": {"type": "string"},
                        "read_only": {"type": "boolean"},
                        "writable_by_owner": {"type": "boolean"},
                    },
                    "required": ["total_frames", "frames", "read_only"],
                },
                "handler": "count_frames",
            },
            "brightness": {
                "description": "Mean brightness of every tenth frame",
                "input_schema": {"video_path": {"type": "string"}},
                "output_schema": {"frames": {"type": "array"}},
                "handler": "brightness",
            },
            "broken": {
                "description": "Breaks its own output schema",
                "input_schema": {"video_path": {"type": "string"}},
                "output_schema": {
                    "type": "object",
                    "properties": {"total_frames": {"type": "integer"}},
                    "required": ["total_frames"],
                },
                "handler": "broken",
            },
        }

    def count_frames(self, video_path: str, progress_callback: Any = None) -> dict[str, Any]:
        mode = stat.S_IMODE(os.stat(video_path).st_mode)
        total, container = _frames(video_path)
        frames = []
        with container:
            for index, _ in enumerate(container.decode(video=0)):
                frames.append({"frame_idx": index, "detections": []})
                if progress_callback is not None:
                    progress_callback(index + 1, total)
                time.sleep(FRAME_DELAY_S)
        return {
            "total_frames": len(frames),
            "frames": frames,
            "video_path": video_path,
            "read_only": mode == 0o444,
            "writable_by_owner": bool(mode & stat.S_IWUSR),
        }

    def brightness(self, video_path: str) -> dict[str, Any]:
        _, container = _frames(video_path)
        with container:
            frames = [
                {"frame_idx": i, "mean": round(float(np.mean(f.to_ndarray(format="gray"))), 1)}
                for i, f in enumerate(container.decode(video=0))
                if i % 10 == 0
            ]
        return {"frames": frames}

    def broken(self, video_path: str) -> dict[str, Any]:
        return {"total_frames": "many"}
