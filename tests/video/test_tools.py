"""The video plugin through the real ToolRunner (inline, on a real blob store), on clips
generated here with known content: scene cuts, a QR code sliding across, a face moving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from lensforge.blobs import BlobStore
from lensforge.builtin.video import VideoPlugin
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.registry import load_registry
from lensforge.video import write_mp4
from tests.plugins.support import qr
from tests.video.clips import scene_frames

PAYLOAD = "https://lensforge.example/v/42"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ToolRunner:
    registry = load_registry(allow=["video", "codes", "faces"], extra=[VideoPlugin])
    registry.initialize()
    return ToolRunner(registry, BlobStore(tmp_path_factory.mktemp("blobs")), MediaLimits())


def run(runner: ToolRunner, video_tool: str, video: str, **inputs: Any) -> Outcome:
    call = ToolCall("video", video_tool, {"video": {"blob": video}, **inputs}, job_id="j1")
    return runner.run(call)


def store(runner: ToolRunner, path: Path) -> str:
    return runner.blobs.put(path.read_bytes())


@pytest.fixture(scope="module")
def scenes_clip(runner: ToolRunner, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("clips") / "scenes.mp4"
    write_mp4(path, scene_frames())
    return store(runner, path)


@pytest.fixture(scope="module")
def qr_clip(runner: ToolRunner, tmp_path_factory: pytest.TempPathFactory) -> str:
    """2 s at 15 fps: a QR code enters at 0.6 s and slides right; none before."""
    code = np.asarray(qr(PAYLOAD, scale=4).convert("RGB"))
    frames = []
    for i in range(30):
        frame = np.full((240, 426, 3), 235, np.uint8)
        if i >= 9:
            x = 20 + (i - 9) * 6
            frame[40 : 40 + code.shape[0], x : x + code.shape[1]] = code
        frames.append(frame)
    path = tmp_path_factory.mktemp("clips") / "qr.mp4"
    write_mp4(path, frames, fps=15, crf=12)
    return store(runner, path)


@pytest.fixture(scope="module")
def face_clip(
    runner: ToolRunner, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[int]]:
    """The astronaut's face pasted on a grey background, moving 8 px right per frame."""
    from skimage import data

    face = PILImage.fromarray(data.astronaut()).crop((140, 20, 300, 220)).resize((120, 150))
    xs = [30 + 8 * i for i in range(24)]
    frames = []
    for x in xs:
        canvas = PILImage.new("RGB", (480, 270), (128, 128, 128))
        canvas.paste(face, (x, 60))
        frames.append(np.asarray(canvas))
    path = tmp_path_factory.mktemp("clips") / "face.mp4"
    write_mp4(path, frames, fps=12, crf=15)
    return store(runner, path), xs


def test_video_info_is_exact(runner: ToolRunner, scenes_clip: str) -> None:
    outcome = run(runner, "info", scenes_clip)
    assert outcome.ok, outcome.error
    info = outcome.result
    assert (info["container"], info["codec"], info["width"], info["height"]) == (
        "mp4",
        "h264",
        320,
        180,
    )
    assert info["fps"] == 30.0 and info["frame_count"] == 90
    assert info["duration_s"] == pytest.approx(3.0, abs=0.05)


def test_scenes_are_found_within_one_frame(runner: ToolRunner, scenes_clip: str) -> None:
    outcome = run(runner, "scenes", scenes_clip)
    assert outcome.ok, outcome.error
    cuts = outcome.result["cuts"]
    assert [c["frame"] for c in cuts] == [30, 60]
    scenes = outcome.result["scenes"]
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == [(0, 29), (30, 59), (60, 89)]


def test_frames_come_back_as_stored_images(runner: ToolRunner, scenes_clip: str) -> None:
    outcome = run(runner, "frames", scenes_clip, every_s=1.0, format="PNG")
    assert outcome.ok, outcome.error
    frames = outcome.result["frames"]
    assert [f["index"] for f in frames] == [0, 30, 60]
    assert len(outcome.artifacts) == 3
    assert all(runner.blobs.exists(f["image"]["blob"]) for f in frames)
    by_scene = run(runner, "frames", scenes_clip, scenes=True).result["frames"]
    assert [f["index"] for f in by_scene] == [0, 30, 60]


def test_analyze_runs_an_image_tool_per_sampled_frame(runner: ToolRunner, qr_clip: str) -> None:
    outcome = run(runner, "analyze", qr_clip, tool="codes.decode", every_s=0.2)
    assert outcome.ok, outcome.error
    result = outcome.result
    assert result["summary"]["frames_analyzed"] == 10 and result["summary"]["failures"] == 0
    read = {f["index"]: [c["text"] for c in f["result"]["codes"]] for f in result["frames"]}
    assert sorted(read) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert all(read[i] == [] for i in (0, 3, 6))  # before the code appears
    assert all(read[i] == [PAYLOAD] for i in (9, 12, 15, 18, 21, 24, 27))


def test_analyze_reports_a_bad_tool_per_frame_without_failing(
    runner: ToolRunner, qr_clip: str
) -> None:
    outcome = run(runner, "analyze", qr_clip, tool="codes.nope", every_s=1.0)
    assert outcome.ok
    assert outcome.result["summary"]["failures"] == 2
    assert {e["error"]["code"] for e in outcome.result["errors"]} == {"tool_not_found"}


def test_track_keeps_one_id_along_the_face_path(
    runner: ToolRunner, face_clip: tuple[str, list[int]]
) -> None:
    ref, xs = face_clip
    outcome = run(runner, "track", ref, tool="faces.detect")
    assert outcome.ok, outcome.error
    tracks = outcome.result["tracks"]
    assert len(tracks) == 1
    points = tracks[0]["points"]
    assert len(points) >= 20  # found on (nearly) every frame
    for point in points:
        centre = point["box"]["x"] + point["box"]["width"] / 2
        assert abs(centre - (xs[point["frame"]] + 60)) < 25  # the face moves with the paste
