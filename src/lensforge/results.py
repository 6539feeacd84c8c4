"""Shared result types, so that results of different tools compose and can be drawn.

Coordinates are pixels of the input image after EXIF orientation, origin at the top left.
"""

from __future__ import annotations

import enum
import hashlib
import io
import typing
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, PrivateAttr

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


class Box(BaseModel):
    """An axis-aligned rectangle in pixels."""

    x: float = Field(description="Left edge.")
    y: float = Field(description="Top edge.")
    width: float = Field(ge=0)
    height: float = Field(ge=0)


class Point(BaseModel):
    x: float
    y: float


class Polygon(BaseModel):
    """A closed polygon, corners in order (for codes: top-left first, clockwise)."""

    points: list[Point]


class Detection(BaseModel):
    """Something found in an image: a label, a confidence and where it is."""

    label: str
    score: float = Field(ge=0, le=1)
    box: Box | None = None
    polygon: Polygon | None = None


class TextSpan(BaseModel):
    """A piece of recognised text with its confidence (0-1) and box."""

    text: str
    confidence: float = Field(ge=0, le=1)
    box: Box | None = None


class ImageArtifact(BaseModel):
    """An image a tool produced (annotated or redacted copy).

    LensForge stores it as a content-addressed blob; callers get the reference and download it
    from ``GET /v1/blobs/{sha256}``. Build one with :meth:`from_pil`.
    """

    blob: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    media_type: str
    width: int
    height: int
    _data: bytes | None = PrivateAttr(default=None)

    @classmethod
    def from_pil(cls, image: PILImage, format: str = "PNG") -> ImageArtifact:
        buffer = io.BytesIO()
        image.save(buffer, format=format)
        data = buffer.getvalue()
        artifact = cls(
            blob=f"sha256:{hashlib.sha256(data).hexdigest()}",
            media_type=f"image/{format.lower()}",
            width=image.width,
            height=image.height,
        )
        artifact._data = data
        return artifact

    @property
    def data(self) -> bytes | None:
        """The encoded bytes, while the artifact has not been stored yet."""
        return self._data


def iter_artifacts(value: Any) -> Iterator[ImageArtifact]:
    """Every ImageArtifact inside a tool's return value (models, lists, dicts)."""
    if isinstance(value, ImageArtifact):
        yield value
    elif isinstance(value, BaseModel):
        if _may_hold_artifacts(type(value)):  # an OCR result's 200 words need no visit
            for name in type(value).model_fields:
                yield from iter_artifacts(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_artifacts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_artifacts(item)


_PLAIN = (str, bytes, int, float, bool, type(None), enum.Enum)
_HOLDS_ARTIFACTS: dict[type[BaseModel], bool] = {}


def _may_hold_artifacts(model: type[BaseModel], path: frozenset[type] = frozenset()) -> bool:
    """Whether an instance of ``model`` can hold an ImageArtifact, from its field types."""
    known = _HOLDS_ARTIFACTS.get(model)
    if known is not None:
        return known
    if model in path:  # a model that refers back to itself: its other fields decide
        return False
    inner = path | {model}
    answer = any(_type_may_hold(f.annotation, inner) for f in model.model_fields.values())
    if not path:  # exact only from the top: an answer inside a cycle depends on the way in
        _HOLDS_ARTIFACTS[model] = answer
    return answer


def _type_may_hold(annotation: Any, path: frozenset[type]) -> bool:
    if isinstance(annotation, type):
        if issubclass(annotation, ImageArtifact):
            return True
        if issubclass(annotation, BaseModel):
            return _may_hold_artifacts(annotation, path)
        if issubclass(annotation, _PLAIN):
            return False
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return False
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # the type, not its metadata (Field(...) and the like)
        return _type_may_hold(args[0], path)
    if args:  # list[...], dict[..., ...], Optional[...], unions
        return any(_type_may_hold(arg, path) for arg in args if arg is not Ellipsis)
    return True  # Any, object, a bare list or dict, a type we do not know: look inside
