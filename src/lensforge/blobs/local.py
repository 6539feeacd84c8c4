"""A content-addressed blob store: bytes live in files named by their sha256."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import threading
from pathlib import Path
from typing import Any

from lensforge.errors import (
    BlobNotFound,
    LensForgeError,
    PayloadTooLarge,
    StorageFull,
    ValidationError,
)

_DIGEST = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


def parse_digest(ref: str) -> str:
    """The hex digest in ``sha256:<hex>`` or ``<hex>``; anything else is a validation error."""
    match = _DIGEST.match(ref.strip().lower()) if isinstance(ref, str) else None
    if match is None:
        raise ValidationError(
            "A blob is addressed as 'sha256:<64 hex digits>'.", details={"blob": str(ref)[:100]}
        )
    return match.group(1)


def blob_refs(value: Any) -> list[str]:
    """Hex digests of every ``{"blob": "sha256:..."}`` reference inside ``value``."""
    found: list[str] = []
    if isinstance(value, dict):
        ref = value.get("blob")
        if isinstance(ref, str):
            with contextlib.suppress(LensForgeError):  # not a blob reference
                found.append(parse_digest(ref))  # every spelling parse_digest accepts
        for item in value.values():
            found.extend(blob_refs(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(blob_refs(item))
    return found


class BlobStore:
    """Blobs in ``root/ab/cd/<digest>``; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._names = itertools.count()

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its reference, ``sha256:<hex>``."""
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.root, digest[:2], digest[2:4], digest)
        if not os.path.exists(path):
            # A name no other writer uses (this process, this thread, a counter), then an
            # atomic rename: readers see the whole blob or none of it.
            tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}-{next(self._names)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:  # the first blob of its directory
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                if isinstance(exc, OSError):
                    _raise_if_full(exc)
                raise
        return f"sha256:{digest}"

    def writer(self, max_bytes: int | None = None) -> BlobWriter:
        """A blob written in pieces (an upload as it streams in): never whole in memory."""
        return BlobWriter(self, max_bytes)

    def get(self, ref: str) -> bytes:
        """The bytes of a blob; :class:`BlobNotFound` when it is not stored here."""
        digest = parse_digest(ref)
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(details={"blob": f"sha256:{digest}"}) from None

    def exists(self, ref: str) -> bool:
        return self._path(parse_digest(ref)).is_file()

    def path(self, ref: str) -> Path:
        """The file holding a blob (for streaming responses)."""
        digest = parse_digest(ref)
        path = self._path(digest)
        if not path.is_file():
            raise BlobNotFound(details={"blob": f"sha256:{digest}"})
        return path


class BlobWriter:
    """Streams a blob to a temporary file while hashing it; :meth:`commit` renames it into
    place under its digest, :meth:`abort` (or leaving a ``with`` block by an exception)
    removes it. A full disk is :class:`StorageFull` with nothing left behind."""

    def __init__(self, store: BlobStore, max_bytes: int | None) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        incoming = store.root / "incoming"
        incoming.mkdir(exist_ok=True)
        fd, self._tmp = _mkstemp(incoming)
        self._file = os.fdopen(fd, "wb")

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            self.abort()
            raise PayloadTooLarge(
                f"The upload is larger than this server accepts ({self.max_bytes} bytes).",
                details={"max_bytes": self.max_bytes},
            )
        self._hash.update(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            _raise_if_full(exc)
            raise

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes written so far (to sniff the format)."""
        self._file.flush()
        with open(self._tmp, "rb") as file:
            return file.read(n)

    @property
    def path(self) -> Path:
        """The temporary file (to probe the content before committing it)."""
        self._file.flush()
        return Path(self._tmp)

    def commit(self) -> str:
        digest = self._hash.hexdigest()
        target = self.store._path(digest)
        try:
            self._file.close()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, target)
        except OSError as exc:
            self.abort()
            _raise_if_full(exc)
            raise
        return f"sha256:{digest}"

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def _mkstemp(directory: Path) -> tuple[int, str]:
    import tempfile

    try:
        return tempfile.mkstemp(dir=directory, prefix="upload-")
    except OSError as exc:
        _raise_if_full(exc)
        raise


def _raise_if_full(exc: OSError) -> None:
    """A full disk (or quota) is the caller's 507 storage_full, not a server bug."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StorageFull() from exc
