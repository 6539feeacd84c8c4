"""ForgeSyte tool schemas made into LensForge's: JSON Schema objects with media inputs marked.

ForgeSyte plugins declare ``input_schema`` / ``output_schema`` in two shapes: a real JSON
Schema (often Pydantic's ``model_json_schema()``) or a flat map of property name to property
schema (``{"image_bytes": {...}, "device": {...}}``). Both become a JSON Schema object here.

A media input is a property the handler receives as the image itself. Each kind of media
argument is one :class:`MediaArgument` in :data:`MEDIA_ARGUMENTS`: its schema for callers and
how the decoded :class:`~lensforge.Image` is handed to the handler. ``Video`` inputs join the
table when LensForge has them (a ``video_path`` argument receiving the worker's read-only local
copy); until then a tool taking ``video_path`` is left out of the plugin, never exposed as a
string path a caller could point anywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lensforge.media import Image

# What LensForge's SchemaTool recognises as an image input (see lensforge.media).
IMAGE_PROPERTY: dict[str, Any] = {"type": "string", "contentMediaType": "image/*"}
_SCHEMA_KEYS = frozenset(
    {"type", "properties", "$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "$schema"}
)
VIDEO_ARGUMENTS = frozenset({"video_path", "video"})


@dataclass(frozen=True)
class MediaArgument:
    """How a decoded image reaches a ForgeSyte handler under one argument name."""

    name: str
    convert: Callable[[Image], Any]


def _raw_bytes(image: Image) -> bytes:
    return image.data


def _base64_text(image: Image) -> str:
    return base64.b64encode(image.data).decode("ascii")


MEDIA_ARGUMENTS: dict[str, MediaArgument] = {
    "image_bytes": MediaArgument("image_bytes", _raw_bytes),
    "image_base64": MediaArgument("image_base64", _base64_text),
    "frame_base64": MediaArgument("frame_base64", _base64_text),
}


def as_object_schema(schema: Any) -> dict[str, Any] | None:
    """A JSON Schema for ``schema`` (None when it says nothing); flat maps become objects."""
    if not schema:
        return None
    if not isinstance(schema, dict):
        raise TypeError(f"a schema must be a dict, got {type(schema).__name__}")
    if _SCHEMA_KEYS & schema.keys() or not all(isinstance(v, dict) for v in schema.values()):
        return dict(schema)
    return {"type": "object", "properties": dict(schema)}


def takes_video(schema: dict[str, Any] | None, input_types: list[str]) -> bool:
    """Whether a tool reads a video (a ``video_path`` argument or a ``video`` input type)."""
    properties = (schema or {}).get("properties", {})
    return bool(VIDEO_ARGUMENTS & set(properties)) or "video" in input_types


def with_media(
    schema: dict[str, Any] | None, input_types: list[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The input schema with its image arguments marked as LensForge images, and their names.

    A tool whose manifest says it takes ``image_bytes`` but whose schema does not list it
    gets the argument added (required), as ForgeSyte's worker would pass it anyway.
    """
    result = dict(schema or {"type": "object"})
    properties = dict(result.get("properties", {}))
    media = [name for name in properties if name in MEDIA_ARGUMENTS]
    if not media:
        wanted = [kind for kind in ("image_bytes", "image_base64") if kind in input_types]
        if wanted:
            media = wanted[:1]
            result["required"] = [*result.get("required", []), media[0]]
    for name in media:
        properties[name] = IMAGE_PROPERTY
    result["properties"] = properties
    return result, tuple(media)


_LOOSE_TYPES = {
    "float": "number",
    "number": "number",
    "int": "integer",
    "integer": "integer",
    "bool": "boolean",
    "boolean": "boolean",
    "str": "string",
    "string": "string",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
}


def options_schema(config_schema: Any) -> dict[str, Any]:
    """The ``options`` object of a legacy ``analyze`` from its ``metadata().config_schema``
    (loose types such as ``"float"`` and ``min``/``max`` become JSON Schema)."""
    properties: dict[str, Any] = {}
    for key, spec in (config_schema or {}).items() if isinstance(config_schema, dict) else ():
        if not isinstance(spec, dict):
            continue
        prop: dict[str, Any] = {}
        loose = _LOOSE_TYPES.get(str(spec.get("type", "")).lower())
        if loose:
            prop["type"] = loose
        for source, target in (("min", "minimum"), ("max", "maximum")):
            if isinstance(spec.get(source), int | float):
                prop[target] = spec[source]
        for same in ("default", "enum", "description", "minimum", "maximum"):
            if same in spec:
                prop[same] = spec[same]
        properties[str(key)] = prop
    return {
        "type": "object",
        "description": "Options passed to the plugin's analyze(image_bytes, options).",
        "properties": properties,
    }


def legacy_input_schema(config_schema: Any) -> dict[str, Any]:
    """The input schema of a legacy ``analyze(image_bytes, options)`` tool."""
    return {
        "type": "object",
        "properties": {"image_bytes": IMAGE_PROPERTY, "options": options_schema(config_schema)},
        "required": ["image_bytes"],
    }
