"""The blob store contract, on the local directory and on a real S3-compatible server."""

from __future__ import annotations

import hashlib
import os
import resource
from pathlib import Path

import pytest

from lensforge.blobs import Blobs, S3BlobStore
from lensforge.errors import BlobNotFound, PayloadTooLarge, StoreError, ValidationError


def test_put_get_exists_size(blobs: Blobs) -> None:
    data = os.urandom(10_000)
    ref = blobs.put(data)
    assert ref == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert blobs.put(data) == ref  # content-addressed: the same bytes, the same blob
    assert blobs.exists(ref) and blobs.get(ref) == data and blobs.size(ref) == 10_000
    assert blobs.get(ref.removeprefix("sha256:").upper()) == data  # any spelling of the digest


def test_missing_and_malformed_references(blobs: Blobs) -> None:
    missing = "sha256:" + "0" * 64
    assert not blobs.exists(missing)
    with pytest.raises(BlobNotFound):
        blobs.get(missing)
    with pytest.raises(BlobNotFound):
        list(blobs.stream(missing))
    with pytest.raises(ValidationError):
        blobs.get("../../etc/passwd")


def test_ranges_stream_the_right_bytes(blobs: Blobs) -> None:
    data = bytes(range(256)) * 4000  # 1,024,000 bytes: several chunks
    ref = blobs.put(data)
    assert b"".join(blobs.stream(ref)) == data
    assert b"".join(blobs.stream(ref, 1000, 1999)) == data[1000:2000]
    assert b"".join(blobs.stream(ref, 1_023_990)) == data[1_023_990:]


def test_a_streamed_upload_and_a_local_copy(blobs: Blobs) -> None:
    pieces = [os.urandom(100_000) for _ in range(12)]
    with blobs.writer(max_bytes=2_000_000) as writer:
        for piece in pieces:
            writer.write(piece)
        ref = writer.commit()
    data = b"".join(pieces)
    assert ref == f"sha256:{hashlib.sha256(data).hexdigest()}"
    with blobs.local_path(ref) as path:
        assert path.read_bytes() == data
    with pytest.raises(PayloadTooLarge), blobs.writer(max_bytes=150_000) as writer:
        for piece in pieces:
            writer.write(piece)


def test_a_100_mb_blob_round_trips_in_bounded_memory(blobs: Blobs, tmp_path: Path) -> None:
    """Streamed up and down in pieces: the process never holds the blob whole."""
    piece = os.urandom(1024 * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, high-water mark
    digest = hashlib.sha256()
    with blobs.writer() as writer:
        for i in range(100):
            chunk = piece[i:] + piece[:i]
            digest.update(chunk)
            writer.write(chunk)
        ref = writer.commit()
    assert ref == f"sha256:{digest.hexdigest()}"
    check = hashlib.sha256()
    for chunk in blobs.stream(ref):
        check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 60, f"the process grew by {grown_mb:.0f} MB for a 100 MB blob"


def test_an_unreachable_bucket_is_store_unavailable(tmp_path: Path) -> None:
    from lensforge.blobs import S3Options

    dead = S3Options(endpoint_url="http://127.0.0.1:9", access_key_id="x", secret_access_key="y")
    store = S3BlobStore("s3://nowhere/x", tmp_path, dead)
    with pytest.raises(StoreError):
        store.put(b"data")
