"""Streamed uploads: checked by kind before they are kept, nothing left when refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lensforge.blobs import BlobStore
from lensforge.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError
from lensforge.execution.uploads import store_upload
from lensforge.media import MediaLimits
from lensforge.video import VideoLimits, write_mp4
from tests.support import png
from tests.video.clips import scene_frames


async def chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def upload(store: BlobStore, data: bytes, limits: MediaLimits | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(store_upload(store, chunked(data), limits or MediaLimits()))


def leftovers(root: Path) -> list[Path]:
    return [p for p in (root / "incoming").glob("*")] if (root / "incoming").exists() else []


def test_a_video_is_probed_and_kept(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_mp4(clip, scene_frames())
    store = BlobStore(tmp_path / "blobs")
    stored = upload(store, clip.read_bytes())
    assert stored.kind == "video" and stored.media_type == "video/mp4"
    assert stored.facts["frame_count"] == 90 and stored.size == clip.stat().st_size
    assert store.get(stored.blob) == clip.read_bytes()
    assert stored.as_dict()["video"]["codec"] == "h264"


def test_an_image_is_checked_and_kept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    stored = upload(store, png(40, 30))
    assert (stored.kind, stored.media_type, stored.facts) == (
        "image",
        "image/png",
        {"width": 40, "height": 30},
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"PK\x03\x04" + b"\x00" * 200, UnsupportedMediaType),  # a zip
        (b"", ValidationError),
    ],
)
def test_refused_uploads_leave_nothing(tmp_path: Path, data: bytes, error: type) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(error):
        upload(store, data)
    assert leftovers(tmp_path / "blobs") == []


def test_a_truncated_video_and_limits(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_mp4(clip, scene_frames())
    data = clip.read_bytes()
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(ValidationError, match="truncated"):
        upload(store, data[: len(data) // 2])
    with pytest.raises(PayloadTooLarge):
        upload(store, data, MediaLimits(video=VideoLimits(max_duration_s=1)))
    with pytest.raises(PayloadTooLarge):  # the image cap applies to images, not the video's
        upload(store, png(400, 400) + b"\x00" * 5000, MediaLimits(max_bytes=2000))
    assert leftovers(tmp_path / "blobs") == []
