"""A content-addressed blob store: bytes live in files named by their sha256."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import threading
from pathlib import Path
from typing import Any

from lensforge.errors import BlobNotFound, LensForgeError, ValidationError

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
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return f"sha256:{digest}"

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
