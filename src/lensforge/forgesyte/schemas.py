"""ForgeSyte tool schemas made into LensForge's: JSON Schema objects with media inputs marked.

ForgeSyte plugins declare ``input_schema`` / ``output_schema`` in two shapes: a real JSON
Schema (often Pydantic's ``model_json_schema()``) or a flat map of property name to property
schema (``{"image_bytes": {...}, "device": {...}}``). Both become a JSON Schema object here.

A media input is a property the handler receives as the media itself. Each kind of media
argument is one :class:`MediaArgument` in :data:`MEDIA_ARGUMENTS`: its schema for callers, the
manifest ``input_types`` entry that asks for it, and how the decoded :class:`~lensforge.Image`
or probed :class:`~lensforge.Video` is handed to the handler. A video reaches ForgeSyte's
``video_path`` as a read-only temporary copy of the job's video, removed after the call; a
caller never passes a path (the input is a stored video, like any LensForge video input).
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lensforge.media import Image, Video

# What LensForge's SchemaTool recognises as an image input (see lensforge.media).
IMAGE_PROPERTY: dict[str, Any] = {"type": "string", "contentMediaType": "image/*"}
# What it recognises as a video input (it publishes LensForge's video schema in its place).
VIDEO_PROPERTY: dict[str, Any] = {"type": "object", "x-lensforge-media": "video"}
_SCHEMA_KEYS = frozenset(
    {"type", "properties", "$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "$schema"}
)


@dataclass(frozen=True)
class MediaArgument:
    """How decoded media reach a ForgeSyte handler under one argument name.

    ``convert(media, files)`` makes the argument; anything it leaves on disk is entered into
    ``files`` and goes when the call ends. ``input_type`` is the manifest's word for it.
    """

    name: str
    kind: str  # "image" or "video"
    property: dict[str, Any]
    convert: Callable[[Any, contextlib.ExitStack], Any]
    input_type: str | None = None


def _raw_bytes(image: Image, files: contextlib.ExitStack) -> bytes:
    return image.data


def _base64_text(image: Image, files: contextlib.ExitStack) -> str:
    return base64.b64encode(image.data).decode("ascii")


def read_only_copy(video: Video, files: contextlib.ExitStack) -> str:
    """A read-only copy of ``video`` in a temporary folder that ``files`` removes; its path.

    A copy, not the stored file: on the local blob store the job's video *is* the blob, and a
    plugin that wrote to its ``video_path`` would corrupt it for every job naming it.
    """
    folder = Path(files.enter_context(tempfile.TemporaryDirectory(prefix="lensforge-video-")))
    # The container's usual extension (mp4, webm, mkv, avi): some plugins pick a reader by it.
    copy = folder / f"input.{video.info.container}"
    shutil.copyfile(video.path, copy)
    copy.chmod(0o444)
    return str(copy)


MEDIA_ARGUMENTS: dict[str, MediaArgument] = {
    "image_bytes": MediaArgument("image_bytes", "image", IMAGE_PROPERTY, _raw_bytes, "image_bytes"),
    "image_base64": MediaArgument(
        "image_base64", "image", IMAGE_PROPERTY, _base64_text, "image_base64"
    ),
    "frame_base64": MediaArgument("frame_base64", "image", IMAGE_PROPERTY, _base64_text),
    "video_path": MediaArgument("video_path", "video", VIDEO_PROPERTY, read_only_copy, "video"),
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


def with_media(
    schema: dict[str, Any] | None, input_types: list[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The input schema with its media arguments marked as LensForge media, and their names.

    A tool whose manifest says it takes ``image_bytes`` (or ``video``) but whose schema does
    not list the argument gets it added (required), as ForgeSyte's worker passes it anyway.
    """
    result = dict(schema or {"type": "object"})
    properties = dict(result.get("properties", {}))
    media = [name for name in properties if name in MEDIA_ARGUMENTS]
    if not media:
        wanted = [a.name for a in MEDIA_ARGUMENTS.values() if a.input_type in input_types]
        if wanted:
            media = wanted[:1]
            result["required"] = [*result.get("required", []), media[0]]
    for name in media:
        properties[name] = MEDIA_ARGUMENTS[name].property
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
