"""The MCP view of LensForge's tools: names, schemas, arguments in and results out.

Every enabled tool is one MCP tool named ``plugin_tool`` (``image_info``). The MCP spec allows
dots (``image.info``), but the function-calling APIs behind common clients (Claude Desktop and
Code, OpenAI, Copilot) accept only ``^[a-zA-Z0-9_-]{1,64}$`` and reject a server whose list has
one dotted name, so the listed name uses an underscore; a call naming ``plugin.tool`` is still
understood. Should two tools collide once joined (plugin ``a_b`` tool ``c`` beside plugin ``a``
tool ``b_c``), the later one keeps its dotted name.

Images go in as ``{"data": <base64>, "mimeType": "image/png"}``, as
``{"uri": "lensforge://blobs/<sha256>"}`` (a blob this server already holds) or as a bare base64
string; nothing here fetches a URL or reads a path. Images a tool produces (``ImageArtifact``
objects in its result) come back as MCP image content, or as resource links past
``INLINE_IMAGE_BYTES``.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from mcp import types

from lensforge.blobs import BlobStore
from lensforge.errors import (
    BlobNotFound,
    LensForgeError,
    ToolNotFound,
    ValidationError,
)
from lensforge.media import is_media_schema
from lensforge.plugin import ToolSpec
from lensforge.registry import PluginState, Registry
from lensforge.store import JobRecord, Status

log = logging.getLogger(__name__)

BLOB_URI_PREFIX = "lensforge://blobs/"
BLOB_URI_TEMPLATE = BLOB_URI_PREFIX + "{sha256}"
INLINE_IMAGE_BYTES = 1024 * 1024  # larger images come back as resource links
MAX_IMAGES = 8  # image blocks per result; the rest are in structuredContent
MAX_TEXT_CHARS = 16_000
_BLOB_REF = re.compile(r"^sha256:[0-9a-f]{64}$")
_BLOB_URI = re.compile(r"^lensforge://blobs/(?:sha256:)?([0-9a-f]{64})$")

MCP_IMAGE_SCHEMA: dict[str, Any] = {
    "title": "Image",
    "description": "An image: {data: base64, mimeType} inline, or {uri: "
    "'lensforge://blobs/<sha256>'} for a blob this server holds (resources/read lists none; "
    "every image sent before is stored under the sha256 of its bytes).",
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "data": {"type": "string", "contentEncoding": "base64"},
                "mimeType": {"type": "string", "pattern": "^image/"},
            },
            "required": ["data"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"uri": {"type": "string", "pattern": _BLOB_URI.pattern}},
            "required": ["uri"],
            "additionalProperties": False,
        },
        {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/*"},
    ],
}

TASK_STATUS: dict[Status, types.TaskStatus] = {
    Status.PENDING: "working",
    Status.RUNNING: "working",
    Status.SUCCESS: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
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

    def __init__(self, registry: Registry, blobs: BlobStore) -> None:
        self.registry = registry
        self.blobs = blobs
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
            inputSchema=mcp_schema(spec.input_schema),
            outputSchema=schema,
            execution=types.ToolExecution(taskSupport=types.TASK_OPTIONAL),
            _meta={"lensforge/plugin": spec.plugin, "lensforge/tool": spec.name},
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
            match = _BLOB_URI.match(str(value["uri"]).strip().lower())
            if match is None or set(value) != {"uri"}:
                raise ValidationError(
                    f"Field '{field}': an image reference is {{'uri': "
                    f"'{BLOB_URI_PREFIX}<sha256>'}}; other URIs are never fetched.",
                    details={"field": field},
                )
            return {"blob": f"sha256:{match.group(1)}"}
        if "data" in value:
            mime = value.get("mimeType")
            if set(value) - {"data", "mimeType"} or not isinstance(value["data"], str):
                raise ValidationError(
                    f"Field '{field}': an inline image is {{'data': <base64>, 'mimeType': ...}}.",
                    details={"field": field},
                )
            if mime is not None and not (isinstance(mime, str) and mime.startswith("image/")):
                raise ValidationError(
                    f"Field '{field}': mimeType must be an image/* type, got {str(mime)[:50]!r}.",
                    details={"field": field},
                )
            return value["data"]  # the format is sniffed from the bytes, never trusted
        return value

    # -- results out -----------------------------------------------------------------------

    def result(self, entry: Entry | None, job: JobRecord) -> types.CallToolResult:
        """A finished job as a tool result: structured content, text and images."""
        if job.status is not Status.SUCCESS:
            return error_result(_job_error(job))
        value = job.result
        structured: dict[str, Any]
        if isinstance(value, dict) and not (entry is not None and entry.wrapped):
            structured = value
        else:
            structured = {"result": value}
        content: list[types.ContentBlock] = [types.TextContent(type="text", text=_text(value))]
        content.extend(self._images(value))
        return types.CallToolResult(
            content=content,
            structuredContent=structured,
            isError=False,
            _meta={"lensforge/job_id": job.id},
        )

    def _images(self, value: Any) -> Iterator[types.ContentBlock]:
        seen: set[str] = set()
        for artifact in _artifacts(value):
            ref, media_type = artifact["blob"], artifact["media_type"]
            if ref in seen or len(seen) >= MAX_IMAGES:
                continue
            seen.add(ref)
            uri = BLOB_URI_PREFIX + ref.removeprefix("sha256:")
            try:
                path = self.blobs.path(ref)
                size = path.stat().st_size
                if size <= INLINE_IMAGE_BYTES:
                    data = base64.b64encode(path.read_bytes()).decode()
                    yield types.ImageContent(
                        type="image", data=data, mimeType=media_type, _meta={"uri": uri}
                    )
                    continue
            except (BlobNotFound, OSError):
                continue
            yield types.ResourceLink(
                type="resource_link",
                uri=uri,  # pydantic parses the string
                name=ref,
                mimeType=media_type,
                size=size,
            )

    def blob_digest(self, uri: str) -> str:
        """The hex digest in ``lensforge://blobs/<sha256>`` (BlobNotFound for other URIs)."""
        match = _BLOB_URI.match(uri.strip().lower())
        if match is None:
            raise BlobNotFound(
                f"Resources are addressed as {BLOB_URI_TEMPLATE}.", details={"uri": uri[:200]}
            )
        return match.group(1)

    def read_blob(self, uri: str) -> types.BlobResourceContents:
        """The contents of ``lensforge://blobs/<sha256>`` (BlobNotFound when absent)."""
        from lensforge.media import sniff

        data = self.blobs.get(f"sha256:{self.blob_digest(uri)}")
        try:
            _, media_type = sniff(data[:16])
        except LensForgeError:
            media_type = "application/octet-stream"
        return types.BlobResourceContents(
            uri=uri,  # pydantic parses the string
            mimeType=media_type,
            blob=base64.b64encode(data).decode(),
        )


def _job_error(job: JobRecord) -> LensForgeError:
    from lensforge.errors import Cancelled, ResultNotReady, from_envelope

    if job.error is not None:
        return from_envelope(job.error)
    if job.status is Status.CANCELLED:
        return Cancelled(plugin=job.plugin, tool=job.tool, job_id=job.id)
    return ResultNotReady(
        f"Job {job.id} is still {job.status.value}; call the tool as a task, or poll "
        f"GET /v1/jobs/{job.id}.",
        plugin=job.plugin,
        tool=job.tool,
        job_id=job.id,
        details={"status": job.status.value},
    )


def error_result(exc: LensForgeError) -> types.CallToolResult:
    """A tool failure as MCP wants it: ``isError`` with the envelope, not a protocol error."""
    envelope = exc.envelope()
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{exc.code}: {exc.message}")],
        structuredContent=envelope,
        isError=True,
    )


def _text(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + " … (truncated: the whole result is in structuredContent)"
    return text


def _artifacts(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """ImageArtifact objects (``{"blob", "media_type", "width", "height"}``) in a result."""
    if depth > 32:
        return
    if isinstance(value, dict):
        blob, media_type = value.get("blob"), value.get("media_type")
        if (
            isinstance(blob, str)
            and _BLOB_REF.match(blob)
            and isinstance(media_type, str)
            and media_type.startswith("image/")
        ):
            yield value
            return
        for item in value.values():
            yield from _artifacts(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _artifacts(item, depth + 1)
