"""Content-addressed blob storage: images, videos and the images tools produce.

Jobs hold ``{"blob": "sha256:<hex>"}`` references; the bytes live in a store chosen by
settings (``LENSFORGE_BLOB_URL``): a local directory by default (:class:`BlobStore`), or an
S3-compatible bucket (:class:`S3BlobStore`, ``s3://bucket/prefix``). Both offer the same
operations (:class:`Blobs`); uploads stream through a :class:`BlobWriter`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from lensforge.blobs.local import BlobStore
from lensforge.blobs.refs import blob_refs, parse_digest
from lensforge.blobs.s3 import S3BlobStore, S3Options
from lensforge.blobs.writer import BlobWriter

LocalBlobStore = BlobStore


class Blobs(Protocol):
    """What every blob store offers (the contract tests/blobs/ checks on each)."""

    location: str

    def put(self, data: bytes) -> str: ...
    def writer(self, max_bytes: int | None = None) -> BlobWriter: ...
    def get(self, ref: str) -> bytes: ...
    def exists(self, ref: str) -> bool: ...
    def size(self, ref: str) -> int: ...
    def local_path(self, ref: str) -> AbstractContextManager[Path]: ...
    def stream(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...


def open_blob_store(url: str | None, data_dir: Path, options: S3Options | None = None) -> Blobs:
    """The store for ``url`` (``s3://bucket/prefix``), or the local one under ``data_dir``."""
    if url and url.startswith("s3://"):
        return S3BlobStore(url, data_dir / "incoming", options)
    return BlobStore(Path(url) if url else data_dir)


__all__ = [
    "BlobStore",
    "BlobWriter",
    "Blobs",
    "LocalBlobStore",
    "S3BlobStore",
    "S3Options",
    "blob_refs",
    "open_blob_store",
    "parse_digest",
]
