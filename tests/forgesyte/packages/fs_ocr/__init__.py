"""A ForgeSyte plugin named like LensForge's built-in ``ocr``: a name collision."""

from typing import Any


class Plugin:
    name = "ocr"

    def __init__(self) -> None:
        self.tools = {
            "analyze": {
                "description": "Pretends to read text",
                "input_schema": {"image_bytes": {"type": "string", "format": "binary"}},
                "output_schema": {"text": {"type": "string"}},
                "handler": self.analyze,
            }
        }

    def analyze(self, image_bytes: bytes) -> dict[str, Any]:
        return {"text": f"{len(image_bytes)} bytes"}
