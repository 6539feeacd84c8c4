"""BlobWriter: blobs written in pieces, capped, and nothing half-written when the disk fills."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lensforge.blobs import BlobStore
from lensforge.errors import PayloadTooLarge, StorageFull


def test_a_streamed_blob_is_stored_under_its_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    chunks = [bytes([i]) * 65536 for i in range(20)]
    with store.writer() as writer:
        for chunk in chunks:
            writer.write(chunk)
        assert writer.head(4) == b"\x00" * 4
        ref = writer.commit()
    data = b"".join(chunks)
    assert ref == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert store.get(ref) == data
    assert list((tmp_path / "incoming").iterdir()) == []


def test_past_the_cap_the_upload_is_refused_and_removed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(PayloadTooLarge), store.writer(max_bytes=100_000) as writer:
        for _ in range(10):
            writer.write(b"x" * 30_000)
    assert list((tmp_path / "incoming").iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (the tests run as root, in CI too)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_is_storage_full_with_nothing_left_behind(small_disk: Path) -> None:
    store = BlobStore(small_disk)
    with pytest.raises(StorageFull) as caught, store.writer() as writer:
        for _ in range(40):
            writer.write(b"y" * 65536)
    assert caught.value.status == 507 and caught.value.code == "storage_full"
    assert list((small_disk / "incoming").iterdir()) == []
    with pytest.raises(StorageFull):
        store.put(b"z" * 2_000_000)
    leftovers = [p for p in small_disk.rglob("*") if p.is_file()]
    assert leftovers == []
    assert store.get(store.put(b"small")) == b"small"  # what fits is still stored
