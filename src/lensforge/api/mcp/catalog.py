"""The MCP view of LensForge's tools: names, schemas and arguments in (results: ``results.py``).

Every enabled tool is one MCP tool named ``plugin_tool`` (``image_info``). The MCP spec allows
dots (``image.info``), but the function-calling APIs behind common clients (Claude Desktop and
Code, OpenAI, Copilot) accept only ``^[a-zA-Z0-9_-]{1,64}$`` and reject a server whose list has
one dotted name, so the listed name uses an underscore; a call naming ``plugin.tool`` is still
understood. Should two tools collide once joined (plugin ``a_b`` tool ``c`` beside plugin ``a``
tool ``b_c``), the later one keeps its dotted name.

Images go in as MCP image content (``{"type": "image", "data": <base64>, "mimeType": ...}``,
``type`` optional), as ``{"uri": "lensforge://blobs/<sha256>"}`` (a blob this server already
holds) or as a bare base64 string; nothing here fetches a URL or reads a path.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from lensforge.errors import ToolNotFound, ValidationError
from lensforge.media import is_media_schema
from lensforge.registry import PluginState, Registry
from lensforge.tools import ToolSpec

log = logging.getLogger(__name__)

BLOB_URI_PREFIX = "lensforge://blobs/"
BLOB_URI_TEMPLATE = BLOB_URI_PREFIX + "{sha256}"
BLOB_URI = re.compile(r"^lensforge://blobs/(?:sha256:)?([0-9a-f]{64})$")

MCP_IMAGE_SCHEMA: dict[str, Any] = {
    "title": "Image",
    "description": "An image: MCP image content {type: 'image', data: base64, mimeType} "
    "inline, or {uri: "
    "'lensforge://blobs/<sha256>'} for a blob this server holds (resources/read lists none; "
    "every image sent before is stored under the sha256 of its bytes).",
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "type": {"const": "image"},
                "data": {"type": "string", "contentEncoding": "base64"},
                "mimeType": {"type": "string", "pattern": "^image/"},
            },
            "required": ["data"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"uri": {"type": "string", "pattern": BLOB_URI.pattern}},
            "required": ["uri"],
            "additionalProperties": False,
        },
        {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/*"},
    ],
}


def mcp_schema(schema: Any) -> Any:
    """``schema`` with every LensForge image schema swapped for :data:`MCP_IMAGE_SCHEMA`."""
    if isinstance(schema, dict):
        if is_media_schema(schema):
            return MCP_IMAGE_SCHEMA
        return {key: mcp_schema(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [mcp_schema(item) for item in schema]
    return schema


def output_schema(schema: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """(the MCP ``outputSchema``, whether results are wrapped as ``{"result": ...}``).

    MCP wants an object at the root; a tool returning a list (or a union) is wrapped.
    """
    if not schema:
        return None, False
    if schema.get("type") == "object":
        return schema, False
    inner = {key: value for key, value in schema.items() if key != "$defs"}
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
    }
    if "$defs" in schema:
        wrapped["$defs"] = schema["$defs"]
    return wrapped, True


@dataclass(frozen=True)
class Entry:
    """One MCP tool: its LensForge spec and its MCP definition."""

    spec: ToolSpec
    tool: types.Tool
    wrapped: bool


class Catalog:
    """The MCP tools of a registry, built once (registration is fixed after start-up)."""

    def __init__(self, registry: Registry, tool_meta: dict[str, Any] | None = None) -> None:
        self.registry = registry
        self.tool_meta = tool_meta or {}  # stamped on every tool (the MCP Apps view's link)
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        for record in registry.records():
            for spec in record.tools.values():
                name = f"{spec.plugin}_{spec.name}"
                if name in self._entries:
                    log.warning(
                        "MCP tool name %s is taken; %s keeps its dotted name",
                        name,
                        spec.qualified_name,
                        extra={"event": "mcp_tool_name_collision"},
                    )
                    name = spec.qualified_name
                self._entries[name] = self._entry(name, spec)
                self._aliases[spec.qualified_name] = name

    def _entry(self, name: str, spec: ToolSpec) -> Entry:
        schema, wrapped = output_schema(spec.output_schema)
        tool = types.Tool(
            name=name,
            title=spec.qualified_name,
            description=spec.description,
            input_schema=mcp_schema(spec.input_schema),
            output_schema=schema,
            meta={"lensforge/plugin": spec.plugin, "lensforge/tool": spec.name, **self.tool_meta},
        )
        return Entry(spec, tool, wrapped)

    def tools(self) -> list[types.Tool]:
        """The tools of every plugin that can run (not UNAVAILABLE or FAILED)."""
        down = {PluginState.UNAVAILABLE, PluginState.FAILED}
        return [
            entry.tool
            for entry in self._entries.values()
            if self.registry.get(entry.spec.plugin).state not in down
        ]

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's MCP input schema by name (None when unknown), for ``Mcp-Param-*`` checks."""
        entry = self._entries.get(name) or self._entries.get(self._aliases.get(name, ""))
        return entry.tool.input_schema if entry is not None else None

    def resolve(self, name: str) -> Entry:
        entry = self._entries.get(name) or self._entries.get(self._aliases.get(name, ""))
        if entry is None:
            raise ToolNotFound(
                f"No MCP tool named '{name}'; tools/list names them plugin_tool.",
                details={"name": name[:200]},
            )
        return entry

    # -- arguments in ----------------------------------------------------------------------

    def inputs(self, entry: Entry, arguments: dict[str, Any]) -> dict[str, Any]:
        """MCP arguments as LensForge inputs: image objects become base64 or blob references."""
        inputs = dict(arguments)
        for name in entry.spec.media_fields:
            if name in inputs:
                inputs[name] = self._image(name, inputs[name])
        return inputs

    def _image(self, field: str, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("lensforge:"):
            value = {"uri": value}
        if not isinstance(value, dict):
            return value  # base64 (checked by the front door) or wrong (its schema says so)
        if "uri" in value:
            match = BLOB_URI.match(str(value["uri"]).strip().lower())
            if match is None or set(value) != {"uri"}:
                raise ValidationError(
                    f"Field '{field}': an image reference is {{'uri': "
                    f"'{BLOB_URI_PREFIX}<sha256>'}}; other URIs are never fetched.",
                    details={"field": field},
                )
            return {"blob": f"sha256:{match.group(1)}"}
        if "data" in value:
            mime = value.get("mimeType")
            extra = set(value) - {"data", "mimeType", "type"}
            if extra or value.get("type", "image") != "image" or not isinstance(value["data"], str):
                raise ValidationError(
                    f"Field '{field}': an inline image is {{'type': 'image', 'data': <base64>, "
                    "'mimeType': ...}}.",
                    details={"field": field},
                )
            if mime is not None and not (isinstance(mime, str) and mime.startswith("image/")):
                raise ValidationError(
                    f"Field '{field}': mimeType must be an image/* type, got {str(mime)[:50]!r}.",
                    details={"field": field},
                )
            return value["data"]  # the format is sniffed from the bytes, never trusted
        return value
