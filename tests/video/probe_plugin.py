"""An image tool for the resumable-video tests: it logs every call (job and attempt) to a
file, so a test can count the frames processed again after a crash,
and answers with values that depend only on the frame's pixels (equal runs, equal results).

Module-level, so that worker processes import it by its path.
"""

from __future__ import annotations

import time

import numpy as np

from lensforge import Image, Plugin, ToolContext, tool


class FrameProbe(Plugin):
    name = "probe"
    version = "0.0.1"

    @tool
    def mark(
        self, image: Image, log: str, delay_s: float = 0.0, ctx: ToolContext | None = None
    ) -> dict[str, object]:
        """The frame's mean colour and the box of its white pixels (a square in the clips)."""
        rgb = np.asarray(image.pil.convert("RGB"), dtype=np.int16)
        mean = float(rgb.mean())
        with open(log, "a") as out:
            job, attempt = (ctx.job_id, ctx.attempt) if ctx is not None else ("", 0)
            out.write(f"{job} {attempt}\n")
        time.sleep(delay_s)
        ys, xs = np.nonzero((rgb > 240).all(axis=2))
        objects = []
        if len(xs):
            box = {
                "x": float(xs.min()),
                "y": float(ys.min()),
                "width": float(xs.max() - xs.min() + 1),
                "height": float(ys.max() - ys.min() + 1),
            }
            objects.append({"box": box, "score": 1.0, "label": "square"})
        return {"mean": round(mean, 6), "objects": objects}
