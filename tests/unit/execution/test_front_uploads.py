"""Streamed uploads (``execution/uploads.py``): the kind read from the first bytes, each
kind's cap enforced while the body streams in, what is kept and what the caller is told."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from lensforge.blobs import BlobStore
from lensforge.errors import PayloadTooLarge, UnsupportedMediaType
from lensforge.execution.uploads import StoredUpload, store_upload
from lensforge.media import MediaLimits
from lensforge.video import VideoLimits
from tests.support import png
from tests.unit.execution.front_support import Chunks, gif, mp4, split


def upload(root: Path, body: Chunks, limits: MediaLimits | None = None) -> StoredUpload:
    return asyncio.run(store_upload(BlobStore(root / "blobs"), body, limits or MediaLimits()))


def leftovers(root: Path) -> list[Path]:
    """Files under the blob store: nothing may stay behind a refused upload."""
    return [p for p in (root / "blobs").rglob("*") if p.is_file()]


def test_an_image_in_tiny_chunks_is_kept_whole_and_described(tmp_path: Path) -> None:
    data = png(40, 30)
    chunks = split(data, 4)  # too short to sniff until 64 bytes have arrived
    body = Chunks([*chunks[:3], b"", *chunks[3:]])  # an empty chunk is skipped, not the end
    stored = upload(tmp_path, body)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert stored.as_dict() == {
        "blob": digest,
        "media_type": "image/png",
        "size": len(data),
        "kind": "image",
        "image": {"width": 40, "height": 30},
    }
    assert BlobStore(tmp_path / "blobs").get(digest) == data


def test_an_image_shorter_than_the_sniffing_threshold_is_decided_at_the_end(
    tmp_path: Path,
) -> None:
    data = gif()
    assert len(data) < 64
    stored = upload(tmp_path, Chunks([data]))
    assert (stored.kind, stored.media_type, stored.size) == ("image", "image/gif", len(data))
    assert stored.facts == {"width": 1, "height": 1}


def test_a_video_is_probed_and_kept_past_the_image_cap(tmp_path: Path) -> None:
    data = mp4(tmp_path / "clip.mp4", frames=6)
    limits = MediaLimits(max_bytes=len(data) // 2)  # the image cap does not apply to videos
    stored = upload(tmp_path, Chunks(split(data, 256)), limits)
    assert (stored.kind, stored.media_type, stored.size) == ("video", "video/mp4", len(data))
    assert stored.facts["frame_count"] == 6
    assert stored.facts["width"] == 64 and stored.facts["height"] == 48
    assert stored.as_dict()["video"] == stored.facts
    assert BlobStore(tmp_path / "blobs").get(stored.blob) == data


def test_a_video_is_checked_against_the_limits_given(tmp_path: Path) -> None:
    data = mp4(tmp_path / "clip.mp4", frames=6)
    with pytest.raises(PayloadTooLarge):
        upload(tmp_path, Chunks([data]), MediaLimits(video=VideoLimits(max_frames=2)))
    assert leftovers(tmp_path) == []


def test_an_image_past_its_cap_is_refused_at_the_chunk_that_crosses_it(tmp_path: Path) -> None:
    body = Chunks(split(png(40, 30) + b"\x00" * 1000, 64))
    with pytest.raises(PayloadTooLarge) as caught:
        upload(tmp_path, body, MediaLimits(max_bytes=50))
    assert body.pulled == 1  # the first 64 bytes say "image"; they are already over 50
    assert caught.value.details == {"max_bytes": 50}
    assert leftovers(tmp_path) == []


def test_an_upload_past_every_cap_is_refused_while_it_streams(tmp_path: Path) -> None:
    data = mp4(tmp_path / "clip.mp4", frames=6)
    body = Chunks(split(data, 64))
    limits = MediaLimits(max_bytes=100, video=VideoLimits(max_bytes=200))
    with pytest.raises(PayloadTooLarge) as caught:
        upload(tmp_path / "up", body, limits)
    assert body.pulled == 4  # 256 bytes: past the larger cap, the rest is never read
    assert caught.value.details == {"max_bytes": 200}
    assert leftovers(tmp_path / "up") == []


def test_neither_an_image_nor_a_video_is_refused_with_the_formats_named(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        upload(tmp_path, Chunks([b"PK\x03\x04" + b"\x00" * 200]))
    assert caught.value.message == (
        "The upload is neither an image (PNG, JPEG, GIF, BMP, TIFF, WebP) nor a video "
        "(MP4, MOV, WebM, MKV, AVI); the format is read from the bytes themselves."
    )
    assert leftovers(tmp_path) == []


def test_an_upload_without_facts_lists_none() -> None:
    stored = StoredUpload("sha256:" + "a" * 64, "image/png", 3, "image")
    assert stored.as_dict() == {
        "blob": "sha256:" + "a" * 64,
        "media_type": "image/png",
        "size": 3,
        "kind": "image",
    }
