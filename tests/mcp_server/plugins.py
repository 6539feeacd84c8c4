"""A test plugin whose tool produces an image (an ``ImageArtifact``), for MCP image results."""

from __future__ import annotations

from pydantic import BaseModel

from lensforge import ImageArtifact, Plugin, tool


class Drawn(BaseModel):
    image: ImageArtifact
    note: str


class Drawing(Plugin):
    """Draws images."""

    name = "drawing"
    version = "0.0.1"

    @tool
    def square(self, size: int = 16, big: bool = False) -> Drawn:
        """A red square (``big``: a noisy 1300 px square, a 5 MB PNG, larger than MCP inlines)."""
        from PIL import Image as PILImage

        if big:
            import random

            side = 1300  # random RGB pixels do not compress: a PNG of just over 5 MB
            noise = random.Random(0).randbytes(side * side * 3)
            image = PILImage.frombytes("RGB", (side, side), noise)
        else:
            image = PILImage.new("RGB", (size, size), (220, 20, 20))
        return Drawn(image=ImageArtifact.from_pil(image), note="square")

    @tool
    def numbers(self, count: int = 3) -> list[int]:
        """A list (an output schema that is not an object)."""
        return list(range(count))

    @tool
    def slow_fail(self, seconds: float = 1.0) -> dict[str, str]:
        """Sleep, then raise (a failure that arrives after the call became a task)."""
        import time

        time.sleep(seconds)
        raise RuntimeError("failed late")
