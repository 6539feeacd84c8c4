"""The local blob store (the default): files named by their sha256 under one directory."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lensforge.blobs.refs import parse_digest
from lensforge.blobs.writer import BlobWriter, raise_if_full
from lensforge.errors import BlobNotFound

CHUNK = 256 * 1024


class BlobStore:
    """Blobs in ``root/ab/cd/<digest>``; writes are atomic (temporary file, then rename)."""

    location = "local"

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
                try:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileNotFoundError:  # the first blob of its directory
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except OSError as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise_if_full(exc)
                raise
        return f"sha256:{digest}"

    def writer(self, max_bytes: int | None = None) -> BlobWriter:
        """A blob written in pieces (an upload as it streams in): never whole in memory."""
        return BlobWriter(self.root / "incoming", self._adopt, max_bytes)

    def _adopt(self, spooled: Path, digest: str) -> None:
        target = self._path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spooled, target)

    def get(self, ref: str) -> bytes:
        """The bytes of a blob; :class:`BlobNotFound` when it is not stored here."""
        return self.path(ref).read_bytes()

    def exists(self, ref: str) -> bool:
        return self._path(parse_digest(ref)).is_file()

    def size(self, ref: str) -> int:
        return self.path(ref).stat().st_size

    def path(self, ref: str) -> Path:
        """The file holding a blob (for streaming responses)."""
        digest = parse_digest(ref)
        path = self._path(digest)
        if not path.is_file():
            raise BlobNotFound(details={"blob": f"sha256:{digest}"})
        return path

    @contextlib.contextmanager
    def local_path(self, ref: str) -> Iterator[Path]:
        """A local file holding the blob for the duration of the block (here: the blob)."""
        yield self.path(ref)

    def stream(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start`` to ``end`` (inclusive; None: to the last), in chunks."""
        path = self.path(ref)

        def chunks(file: BinaryIO) -> Iterator[bytes]:
            with file:
                file.seek(start)
                left = None if end is None else end - start + 1
                while left is None or left > 0:
                    data = file.read(CHUNK if left is None else min(CHUNK, left))
                    if not data:
                        return
                    if left is not None:
                        left -= len(data)
                    yield data

        return chunks(path.open("rb"))
