"""Finished jobs as MCP tool results, and blobs as MCP resources.

A success is ``structuredContent`` (the tool's result, wrapped as ``{"result": ...}`` when its
schema is not an object), the same value as compact JSON text, and every image the tool made
(``ImageArtifact`` objects in the result): inline ``image`` content up to ``inline_bytes``, a
``resource_link`` to ``lensforge://blobs/<sha256>`` (with ``mimeType`` and ``size``) beyond.

A failure is ``isError`` with the error envelope as text and in ``_meta["lensforge/error"]``,
never in ``structuredContent``: clients that check ``structuredContent`` against the tool's
``outputSchema`` (the TypeScript SDK, MCP Inspector) would otherwise replace the real message
with a schema complaint.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import mcp_types as types
import orjson

from lensforge.api.mcp.catalog import BLOB_URI, BLOB_URI_PREFIX, BLOB_URI_TEMPLATE, Entry
from lensforge.blobs import Blobs
from lensforge.errors import (
    BlobNotFound,
    Cancelled,
    LensForgeError,
    ResultNotReady,
    from_envelope,
)
from lensforge.media import sniff
from lensforge.store import JobRecord, Status

ERROR_META = "lensforge/error"
JOB_META = "lensforge/job_id"
INLINE_IMAGE_BYTES = 1024 * 1024  # default: larger images come back as resource links
MAX_IMAGES = 8  # image blocks per result; the rest are in structuredContent
MAX_TEXT_CHARS = 16_000
_BLOB_REF = re.compile(r"^sha256:[0-9a-f]{64}$")


def error_result(exc: LensForgeError) -> types.CallToolResult:
    """A tool failure as MCP wants it: ``isError`` with the envelope, not a protocol error."""
    envelope = exc.envelope()
    return types.CallToolResult(
        content=[
            types.TextContent(type="text", text=f"{exc.code}: {exc.message}"),
            types.TextContent(type="text", text=orjson.dumps(envelope).decode()),
        ],
        is_error=True,
        meta={ERROR_META: envelope["error"]},
    )


def job_error(job: JobRecord) -> LensForgeError:
    """Why ``job`` has no result: its stored error, cancellation, or not finished yet."""
    if job.error is not None:
        return from_envelope(job.error)
    if job.status is Status.CANCELLED:
        return Cancelled(plugin=job.plugin, tool=job.tool, job_id=job.id)
    return ResultNotReady(
        f"Job {job.id} is still {job.status.value}; call again from a client that declares the "
        f"io.modelcontextprotocol/tasks extension, or poll GET /v1/jobs/{job.id}.",
        plugin=job.plugin,
        tool=job.tool,
        job_id=job.id,
        details={"status": job.status.value},
    )


class Results:
    """Renders jobs as tool results and reads blobs as resources."""

    def __init__(self, blobs: Blobs, inline_bytes: int = INLINE_IMAGE_BYTES) -> None:
        self.blobs = blobs
        self.inline_bytes = inline_bytes

    def result(self, entry: Entry | None, job: JobRecord) -> types.CallToolResult:
        """A finished job as a tool result: structured content, text and images."""
        if job.status is not Status.SUCCESS:
            failed = error_result(job_error(job))
            failed.meta = {**(failed.meta or {}), JOB_META: job.id}
            return failed
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
            structured_content=structured,
            is_error=False,
            meta={JOB_META: job.id},
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
                size = self.blobs.size(ref)
                if size <= self.inline_bytes and media_type.startswith("image/"):
                    data = base64.b64encode(self.blobs.get(ref)).decode()
                    yield types.ImageContent(
                        type="image", data=data, mime_type=media_type, meta={"uri": uri}
                    )
                    continue
            except (BlobNotFound, OSError):
                continue
            yield types.ResourceLink(
                type="resource_link", uri=uri, name=ref, mime_type=media_type, size=size
            )

    def read_blob(self, uri: str) -> types.BlobResourceContents:
        """The contents of ``lensforge://blobs/<sha256>`` (BlobNotFound when absent)."""
        data = self.blobs.get(f"sha256:{blob_digest(uri)}")
        try:
            _, media_type = sniff(data[:16])
        except LensForgeError:
            media_type = "application/octet-stream"
        return types.BlobResourceContents(
            uri=uri, mime_type=media_type, blob=base64.b64encode(data).decode()
        )


def blob_digest(uri: str) -> str:
    """The hex digest in ``lensforge://blobs/<sha256>`` (BlobNotFound for other URIs)."""
    match = BLOB_URI.match(uri.strip().lower())
    if match is None:
        raise BlobNotFound(
            f"Resources are addressed as {BLOB_URI_TEMPLATE}.", details={"uri": uri[:200]}
        )
    return match.group(1)


def _text(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + " … (truncated: the whole result is in structuredContent)"
    return text


def _artifacts(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Image and video artifacts (``{"blob", "media_type", ...}``) in a result."""
    if depth > 32:
        return
    if isinstance(value, dict):
        blob, media_type = value.get("blob"), value.get("media_type")
        if (
            isinstance(blob, str)
            and _BLOB_REF.match(blob)
            and isinstance(media_type, str)
            and media_type.startswith(("image/", "video/"))
        ):
            yield value
            return
        for item in value.values():
            yield from _artifacts(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _artifacts(item, depth + 1)
