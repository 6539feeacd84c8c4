"""BlobWriter: a blob written in pieces as an upload streams in, never whole in memory.

The pieces go to a local temporary file while they are hashed; :meth:`BlobWriter.commit`
hands the finished file to its store under its digest (a rename for the local store, an
upload for S3), :meth:`BlobWriter.abort` (or leaving a ``with`` block by an exception)
removes it. A full disk is :class:`~lensforge.errors.StorageFull` with nothing left behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lensforge.errors import PayloadTooLarge, StorageFull


def raise_if_full(exc: OSError) -> None:
    """A full disk (or quota) is the caller's 507 storage_full, not a server bug."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StorageFull() from exc


class BlobWriter:
    """Streams a blob to ``spool_dir`` while hashing it; see the module docstring."""

    def __init__(
        self, spool_dir: Path, adopt: Callable[[Path, str], None], max_bytes: int | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._adopt = adopt
        self._hash = hashlib.sha256()
        try:
            spool_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
        except OSError as exc:
            raise_if_full(exc)
            raise
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()

    def limit(self, max_bytes: int) -> None:
        """Lower the cap (once the content's kind is known); past it already: refused."""
        self.max_bytes = max_bytes
        self._check_size()

    def _check_size(self) -> None:
        if self.max_bytes is not None and self.size > self.max_bytes:
            self.abort()
            raise PayloadTooLarge(
                f"The upload is larger than this server accepts ({self.max_bytes} bytes).",
                details={"max_bytes": self.max_bytes},
            )

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._check_size()
        self._hash.update(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise_if_full(exc)
            raise

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes written so far (to sniff the format)."""
        self._file.flush()
        with self._tmp.open("rb") as file:
            return file.read(n)

    @property
    def path(self) -> Path:
        """The spooled file so far (to probe the content before committing it)."""
        self._file.flush()
        return self._tmp

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> str:
        """Store the blob under its digest; returns ``sha256:<hex>``."""
        digest = self.digest
        try:
            self._file.close()
            self._adopt(self._tmp, digest)
        except OSError as exc:
            raise_if_full(exc)
            raise
        finally:
            self.abort()  # the spooled file, if the store copied rather than moved it
        return f"sha256:{digest}"

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()
