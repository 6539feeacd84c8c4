"""Uploads streamed into the blob store: images and videos checked before they are kept.

A ``POST /v1/blobs`` body (or a client's streamed upload) arrives in chunks; each chunk is
written to a spool file while hashed (:class:`~lensforge.blobs.BlobWriter`), never held
whole. The first bytes say what it is (never the Content-Type or a file name): an image is
checked like an inline one (format, byte and pixel caps from the header), a video is probed
(container, truncation, duration, frame size and count: :mod:`lensforge.video.probe`).
Only then is the blob committed under its digest; anything refused leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any

from lensforge.blobs import Blobs, BlobWriter
from lensforge.errors import LensForgeError, UnsupportedMediaType
from lensforge.media import MediaLimits, probe, sniff
from lensforge.video.probe import SNIFF_BYTES, probe_video, sniff_video

SNIFF_AFTER = 64  # bytes received before the kind of upload is decided


@dataclass(frozen=True)
class StoredUpload:
    """What an upload became: its blob reference and what it holds."""

    blob: str
    media_type: str
    size: int
    kind: str  # "image" or "video"
    facts: dict[str, Any] = field(default_factory=dict)  # width/height, or the video's info

    def as_dict(self) -> dict[str, Any]:
        return {
            "blob": self.blob,
            "media_type": self.media_type,
            "size": self.size,
            "kind": self.kind,
            **({self.kind: self.facts} if self.facts else {}),
        }


def kind_of(head: bytes) -> str:
    """'image' or 'video' from the leading bytes; UnsupportedMediaType otherwise."""
    try:
        sniff(head)
        return "image"
    except LensForgeError:
        pass
    try:
        sniff_video(head[:SNIFF_BYTES])
        return "video"
    except UnsupportedMediaType:
        raise UnsupportedMediaType(
            "The upload is neither an image (PNG, JPEG, GIF, BMP, TIFF, WebP) nor a video "
            "(MP4, MOV, WebM, MKV, AVI); the format is read from the bytes themselves."
        ) from None


async def store_upload(
    blobs: Blobs, chunks: AsyncIterable[bytes], limits: MediaLimits
) -> StoredUpload:
    """Stream ``chunks`` into ``blobs``, check them, and keep them (see the module docstring)."""
    writer = blobs.writer(max_bytes=max(limits.max_bytes, limits.video.max_bytes))
    with writer:
        kind: str | None = None
        async for chunk in chunks:
            if not chunk:
                continue
            writer.write(chunk)
            if kind is None and writer.size >= SNIFF_AFTER:
                kind = _decide(writer, limits)
        if kind is None:
            kind = _decide(writer, limits)  # a short upload: decide on what there is
        return await asyncio.to_thread(_check_and_commit, writer, kind, limits)


def _decide(writer: BlobWriter, limits: MediaLimits) -> str:
    kind = kind_of(writer.head(SNIFF_AFTER))
    if kind == "image":
        writer.limit(limits.max_bytes)  # an image may not grow to a video's size
    return kind


def _check_and_commit(writer: BlobWriter, kind: str, limits: MediaLimits) -> StoredUpload:
    if kind == "image":
        data = writer.path.read_bytes()
        media_type, width, height = probe(data, limits)
        facts: dict[str, Any] = {"width": width, "height": height}
    else:
        info = probe_video(writer.path, limits.video)
        media_type, facts = info.media_type, info.as_dict()
    size = writer.size
    return StoredUpload(writer.commit(), media_type, size, kind, facts)
