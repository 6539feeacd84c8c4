"""probe_video: what a file is, refused early when it is not a usable video."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from lensforge.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError
from lensforge.video import VideoLimits, probe_video, write_mp4
from tests.video.clips import scene_frames, write_scene_clip, write_with


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene_clip(tmp_path_factory.mktemp("clips") / "scenes.mp4")


def test_an_mp4_is_described_exactly(clip: Path) -> None:
    info = probe_video(clip)
    assert (info.container, info.media_type, info.codec) == ("mp4", "video/mp4", "h264")
    assert (info.width, info.height, info.fps) == (320, 180, 30.0)
    assert info.frame_count == 90
    assert info.duration_s == pytest.approx(3.0, abs=0.05)
    assert info.rotation == 0 and info.audio == []
    assert info.file_size == clip.stat().st_size


def test_a_file_object_is_probed_and_left_where_it_was(clip: Path) -> None:
    with clip.open("rb") as file:
        file.read(10)
        assert probe_video(file).frame_count == 90
        assert file.tell() == 10


@pytest.mark.parametrize(
    ("container", "codec", "suffix", "expected"),
    [
        ("webm", "libvpx-vp9", "webm", ("webm", "vp9")),
        ("matroska", "libx264", "mkv", ("mkv", "h264")),
        ("avi", "mpeg4", "avi", ("avi", "mpeg4")),
    ],
)
def test_other_containers(
    tmp_path: Path, container: str, codec: str, suffix: str, expected: tuple[str, str]
) -> None:
    info = probe_video(write_with(tmp_path / f"clip.{suffix}", container, codec))
    assert (info.container, info.codec) == expected
    assert info.frame_count == 30 and (info.width, info.height) == (160, 96)


def test_non_videos_are_415(tmp_path: Path) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("movie.txt", "not a movie")
    zip_named_mp4 = tmp_path / "movie.mp4"
    zip_named_mp4.write_bytes(archive.getvalue())
    png = Path(__file__).parents[2] / "examples" / "sample.png"
    for path in (zip_named_mp4, png):
        with pytest.raises(UnsupportedMediaType, match="not a video"):
            probe_video(path)


def test_empty_and_truncated_files_are_422(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValidationError, match="empty"):
        probe_video(empty)
    frames = scene_frames()
    for faststart in (True, False):  # index at the front (cut data) or at the end (cut index)
        whole = tmp_path / f"whole-{faststart}.mp4"
        write_mp4(whole, frames, faststart=faststart)
        data = whole.read_bytes()
        cut = tmp_path / f"cut-{faststart}.mp4"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValidationError, match="truncated"):
            probe_video(cut)


@pytest.mark.parametrize(
    ("limits", "fact"),
    [
        (VideoLimits(max_duration_s=2.0), "max_duration_s"),
        (VideoLimits(max_pixels=320 * 100), "max_pixels"),
        (VideoLimits(max_frames=60), "max_frames"),
        (VideoLimits(max_bytes=1000), "max_bytes"),
    ],
)
def test_limits_are_checked_from_the_header(clip: Path, limits: VideoLimits, fact: str) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        probe_video(clip, limits)
    assert fact in caught.value.details
