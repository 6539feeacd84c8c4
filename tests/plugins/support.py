"""Helpers for the plugin tests: image encoding, box geometry, a REST caller."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import jsonschema
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from lensforge.builtin.codes import CodesPlugin
from lensforge.builtin.faces import FacesPlugin
from lensforge.builtin.objects import ObjectsPlugin
from lensforge.builtin.ocr import OcrPlugin
from lensforge.builtin.people import PeoplePlugin
from lensforge.media import Image
from tests.support import b64

BUILTIN_PLUGINS = [OcrPlugin, CodesPlugin, FacesPlugin, PeoplePlugin, ObjectsPlugin]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def encode(pil: PILImage.Image, fmt: str = "PNG", **save: Any) -> bytes:
    buffer = io.BytesIO()
    pil.save(buffer, fmt, **save)
    return buffer.getvalue()


def as_image(pil: PILImage.Image, fmt: str = "PNG", **save: Any) -> Image:
    """What the ToolRunner hands a tool: the decoded, checked image."""
    return Image.decode(encode(pil, fmt, **save))


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


def box_tuple(box: Any) -> tuple[float, float, float, float]:
    if isinstance(box, dict):
        return (box["x"], box["y"], box["width"], box["height"])
    return (box.x, box.y, box.width, box.height)


class Api:
    """Calls tools through ``POST /v1/analyze`` and checks results against their schemas."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}

    def output_schema(self, plugin: str, tool: str) -> dict[str, Any]:
        if (plugin, tool) not in self._schemas:
            response = self.client.get(f"/v1/plugins/{plugin}")
            assert response.status_code == 200, response.text
            for spec in response.json()["tools"]:
                self._schemas[(plugin, spec["name"])] = spec["output_schema"]
        return self._schemas[(plugin, tool)]

    def call(self, plugin: str, tool: str, **inputs: Any) -> dict[str, Any]:
        """The tool's result; fails the test on an error or a result off its own schema."""
        for key, value in inputs.items():
            if isinstance(value, bytes):
                inputs[key] = b64(value)
        body = {"plugin": plugin, "tool": tool, "inputs": inputs}
        response = self.client.post("/v1/analyze", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        schema = self.output_schema(plugin, tool)
        jsonschema.validators.validator_for(schema)(schema).validate(result)
        return result

    def error(self, plugin: str, tool: str, **inputs: Any) -> tuple[int, dict[str, Any]]:
        for key, value in inputs.items():
            if isinstance(value, bytes):
                inputs[key] = b64(value)
        body = {"plugin": plugin, "tool": tool, "inputs": inputs}
        response = self.client.post("/v1/analyze", json=body)
        assert response.status_code != 200, response.text
        return response.status_code, response.json()["error"]

    def blob(self, ref: str) -> bytes:
        digest = ref.removeprefix("sha256:")
        response = self.client.get(f"/v1/blobs/{digest}")
        assert response.status_code == 200, response.text
        return response.content


def write(tmp_path: Path, name: str, pil: PILImage.Image) -> Path:
    path = tmp_path / name
    pil.save(path)
    return path


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(expected: str, got: str) -> float:
    expected, got = " ".join(expected.split()), " ".join(got.split())
    return levenshtein(expected, got) / max(1, len(expected))


def render_text(
    lines: list[str], size: int, margin: int | None = None
) -> tuple[PILImage.Image, list[tuple[str, tuple[float, float, float, float]]]]:
    """Black DejaVu Sans on white, word by word; returns the image and each word's ink box."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, size)
    margin = size if margin is None else margin
    line_height = round(size * 1.6)
    width = round(max(font.getlength(line) for line in lines)) + 2 * margin
    height = line_height * len(lines) + 2 * margin
    image = PILImage.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    space = font.getlength(" ")
    words: list[tuple[str, tuple[float, float, float, float]]] = []
    for row, line in enumerate(lines):
        x, y = float(margin), float(margin + row * line_height)
        for word in line.split():
            draw.text((x, y), word, font=font, fill="black")
            left, top, right, bottom = draw.textbbox((x, y), word, font=font)
            words.append((word, (left, top, right - left, bottom - top)))
            x += font.getlength(word) + space
    return image, words


def qr(payload: str, scale: int, rotation: float = 0) -> PILImage.Image:
    import segno

    buffer = io.BytesIO()
    segno.make_qr(payload).save(buffer, kind="png", scale=scale, border=4)
    image = PILImage.open(buffer).convert("RGB")
    return image.rotate(rotation, expand=True, fillcolor="white") if rotation else image
