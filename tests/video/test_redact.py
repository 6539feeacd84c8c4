"""faces.redact_video: a redacted H.264 MP4 of a generated clip with a moving face and a
textured background, through the real ToolRunner (inline, on a real blob store) and once
through the REST API end to end."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from lensforge.blobs import BlobStore
from lensforge.builtin.redaction import redact_boxes
from lensforge.execution.tool_runner import Outcome, ToolCall, ToolRunner
from lensforge.media import MediaLimits
from lensforge.registry import load_registry
from lensforge.results import Box
from lensforge.video import VideoLimits
from lensforge.video.frames import Frame
from lensforge.video.transcode import rewrite_video, video_encoder
from tests.support import png
from tests.video.test_api import upload, wait

WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 15, 24
FACE_W, FACE_H, FACE_Y = 90, 112, 50
XS = [20 + 6 * i for i in range(FRAMES)]  # the face's left edge on each frame
SAMPLE_RATE = 22_050


def background() -> np.ndarray:
    """Diagonal stripes and a gradient: detail that a blur would visibly change."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    stripes = ((x + y) // 8 % 2) * 120 + 60
    frame = np.stack([stripes, (x * 255 // WIDTH), (y * 255 // HEIGHT)], axis=2)
    return frame.astype(np.uint8)


def face_frames() -> list[np.ndarray]:
    from skimage import data

    face = PILImage.fromarray(data.astronaut()).crop((140, 20, 300, 220)).resize((FACE_W, FACE_H))
    frames = []
    for x in XS:
        canvas = PILImage.fromarray(background())
        canvas.paste(face, (x, FACE_Y))
        frames.append(np.asarray(canvas))
    return frames


def write_clip(path: Path, *, audio: bool) -> Path:
    """The face clip in H.264/MP4, with a 440 Hz AAC tone as long as the video if ``audio``."""
    with av.open(str(path), mode="w", format="mp4") as out:
        video: Any = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "12", "preset": "veryfast"}
        sound: Any = out.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for rgb in face_frames():
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            count = SAMPLE_RATE * FRAMES // FPS
            tone = (0.3 * np.sin(np.arange(count) * 2 * np.pi * 440 / SAMPLE_RATE)).astype("f4")
            for start in range(0, count, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="flt", layout="mono"
                )
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def decode(data: bytes) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Every frame (RGB) of an MP4 in memory, and facts about its streams."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        facts: dict[str, Any] = {
            "format": container.format.name,
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "size": (video.codec_context.width, video.codec_context.height),
            "fps": float(video.average_rate or 0),
            "audio": [
                (a.codec_context.name, a.codec_context.sample_rate) for a in container.streams.audio
            ],
        }
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
    if facts["audio"]:
        with av.open(io.BytesIO(data)) as container:
            facts["audio_packets"] = sum(
                1 for p in container.demux(container.streams.audio[0]) if p.size
            )
    return frames, facts


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ToolRunner:
    registry = load_registry(allow=["faces"])
    registry.initialize()
    return ToolRunner(registry, BlobStore(tmp_path_factory.mktemp("blobs")), MediaLimits())


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "audio": write_clip(root / "audio.mp4", audio=True).read_bytes(),
        "silent": write_clip(root / "silent.mp4", audio=False).read_bytes(),
    }


def run(
    runner: ToolRunner, data: bytes, progress: list[float] | None = None, **inputs: Any
) -> tuple[Outcome, ToolCall]:
    ref = runner.blobs.put(data)
    call = ToolCall("faces", "redact_video", {"video": {"blob": ref}, **inputs}, job_id="j1")
    ctx = call.context(on_progress=None if progress is None else lambda f, _m: progress.append(f))
    return runner.run(call, ctx), call


def test_the_face_is_redacted_and_the_rest_kept(
    runner: ToolRunner, clips: dict[str, bytes]
) -> None:
    progress: list[float] = []
    outcome, _ = run(runner, clips["audio"], progress)
    assert outcome.ok, outcome.error
    result = outcome.result
    artifact = result["video"]
    assert artifact["media_type"] == "video/mp4" and artifact["codec"] == "h264"
    assert outcome.artifacts == [artifact["blob"].removeprefix("sha256:")]
    data = runner.blobs.get(artifact["blob"])
    out_frames, facts = decode(data)
    in_frames, in_facts = decode(clips["audio"])
    assert facts["format"].startswith("mov") and facts["codec"] == "h264"
    assert facts["pix_fmt"] == "yuv420p" and facts["size"] == (WIDTH, HEIGHT)
    assert facts["fps"] == pytest.approx(FPS)
    assert abs(len(out_frames) - len(in_frames)) <= 1 and result["frames"] == len(out_frames)
    assert (artifact["width"], artifact["height"], artifact["frame_count"]) == (
        WIDTH,
        HEIGHT,
        len(out_frames),
    )
    assert result["frames_detected"] == result["frames"] == FRAMES
    assert result["frames_with_faces"] >= FRAMES - 2 and result["max_faces"] == 1
    for index in (0, FRAMES // 2, FRAMES - 1):
        before, after = in_frames[index].astype(int), out_frames[index].astype(int)
        x = XS[index]
        centre = (slice(FACE_Y + 25, FACE_Y + FACE_H - 25), slice(x + 20, x + FACE_W - 20))
        far = (slice(HEIGHT - 40, HEIGHT), slice(0, WIDTH))  # under the face's path
        face_change = np.abs(after[centre] - before[centre]).mean()
        # re-encoding alone (4:2:0 chroma on sharp colour stripes) moves pixels by ~2-4
        background_change = np.abs(after[far] - before[far]).mean()
        assert background_change < 5, f"frame {index}: the background changed"
        assert face_change > 20 and face_change > 5 * background_change, f"frame {index}"
    # audio: copied packet for packet, not re-encoded
    assert result["audio"] == "copied"
    assert facts["audio"] == in_facts["audio"] == [("aac", SAMPLE_RATE)]
    assert facts["audio_packets"] == in_facts["audio_packets"]
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    assert len(progress) == FRAMES  # one report per frame (the job store throttles writes)


def test_every_n_carries_boxes_and_audio_can_be_dropped(
    runner: ToolRunner, clips: dict[str, bytes]
) -> None:
    outcome, _ = run(runner, clips["audio"], every_n=5, audio="drop", mode="fill", padding=0.3)
    assert outcome.ok, outcome.error
    result = outcome.result
    assert result["frames_detected"] == len(range(0, FRAMES, 5))
    assert result["audio"] == "dropped" and result["mode"] == "fill"
    out_frames, facts = decode(runner.blobs.get(result["video"]["blob"]))
    assert facts["audio"] == []
    # frame 4 reuses frame 0's boxes: the face moved 24 px, the padding (27 px) still covers it
    x = XS[4]
    centre = out_frames[4][FACE_Y + 30 : FACE_Y + FACE_H - 30, x + 25 : x + FACE_W - 25]
    assert centre.mean() < 20, "the carried-over box missed the face"


def test_a_silent_source_has_no_audio(runner: ToolRunner, clips: dict[str, bytes]) -> None:
    outcome, _ = run(runner, clips["silent"], mode="pixelate")
    assert outcome.ok, outcome.error
    assert outcome.result["audio"] == "none"


def test_a_turned_video_is_searched_upright(runner: ToolRunner, tmp_path: Path) -> None:
    """A clip stored a quarter turn clockwise with a display rotation of 90 (players turn it
    back counter-clockwise): the Haar cascade, which finds only upright faces, finds the face
    because frames are searched as shown, and the copy keeps the rotation."""
    path = tmp_path / "turned.mp4"
    with av.open(str(path), mode="w", format="mp4") as out:
        stream: Any = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        stream.set_display_rotation(90)
        for rgb in face_frames()[:8]:
            stored = np.ascontiguousarray(np.rot90(rgb, -1))
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    outcome, _ = run(runner, path.read_bytes(), detector="haar", mode="fill")
    assert outcome.ok, outcome.error
    assert outcome.result["frames_with_faces"] >= 6
    data = runner.blobs.get(outcome.result["video"]["blob"])
    (first, *_), facts = decode(data)
    assert facts["size"] == (HEIGHT, WIDTH)
    with av.open(io.BytesIO(data)) as container:
        assert next(container.decode(video=0)).rotation == 90
    upright = np.rot90(first, 1)
    assert upright[FACE_Y + 30 : FACE_Y + FACE_H - 30, XS[0] + 25 : XS[0] + FACE_W - 25].max() < 20


def test_odd_sizes_are_cropped_even_and_any_container_is_read(tmp_path: Path) -> None:
    source = tmp_path / "odd.avi"
    with av.open(str(source), mode="w", format="avi") as out:
        stream: Any = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 161, 97, "yuvj444p"
        for i in range(5):
            pixels = np.full((97, 161, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    seen: list[tuple[int, tuple[int, ...]]] = []

    def keep(frame: Frame) -> np.ndarray:
        seen.append((frame.index, frame.rgb.shape))
        return frame.rgb

    written = rewrite_video(source, tmp_path / "even.mp4", keep)
    assert (written.width, written.height, written.frames) == (160, 96, 5)
    assert seen == [(i, (96, 160, 3)) for i in range(5)]
    frames, facts = decode((tmp_path / "even.mp4").read_bytes())
    assert facts["size"] == (160, 96) and len(frames) == 5
    assert [round(float(f.mean()) / 40) for f in frames] == [0, 1, 2, 3, 4]


def test_a_cancelled_job_stops_between_frames(runner: ToolRunner, clips: dict[str, bytes]) -> None:
    ref = runner.blobs.put(clips["silent"])
    call = ToolCall("faces", "redact_video", {"video": {"blob": ref}}, job_id="j2")
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float, _message: str | None) -> None:
        seen.append(fraction)
        if len(seen) == 3:
            cancel.set()

    outcome = runner.run(call, call.context(on_progress=progress, cancel_event=cancel))
    assert outcome.error is not None and outcome.error["error"]["code"] == "cancelled"
    assert len(seen) == 3, "frames were processed after the cancel"


def test_an_image_is_refused_as_a_video(runner: ToolRunner) -> None:
    ref = runner.blobs.put(png(32, 32))
    outcome = runner.run(ToolCall("faces", "redact_video", {"video": {"blob": ref}}))
    assert outcome.error is not None
    assert outcome.error["error"]["code"] == "unsupported_media_type"
    assert outcome.error["error"]["details"]["field"] == "video"
    bad = runner.run(ToolCall("faces", "redact_video", {"video": {"blob": ref}, "every_n": 0}))
    assert bad.error is not None and bad.error["error"]["code"] == "validation_error"


def test_the_video_limits_apply(runner: ToolRunner, clips: dict[str, bytes]) -> None:
    limits = MediaLimits(video=VideoLimits(max_frames=FRAMES - 1))
    small = ToolRunner(runner.registry, runner.blobs, limits)
    ref = runner.blobs.put(clips["silent"])
    outcome = small.run(ToolCall("faces", "redact_video", {"video": {"blob": ref}}))
    assert outcome.error is not None
    assert outcome.error["error"]["code"] == "payload_too_large"
    assert outcome.error["error"]["details"]["max_frames"] == FRAMES - 1


def test_the_image_path_shares_the_pixel_operation() -> None:
    pixels = np.tile(np.arange(100, dtype=np.uint8)[None, :, None], (50, 1, 3))
    before = pixels.copy()
    (region,) = redact_boxes(pixels, [Box(x=10, y=10, width=20, height=20)], "fill", 0.5, 0.5)
    assert (region.x, region.y, region.width, region.height) == (0, 0, 40, 40)
    assert not pixels[:40, :40].any() and (pixels[:, 40:] == before[:, 40:]).all()


def test_an_encoder_is_found() -> None:
    assert video_encoder() in ("libx264", "h264", "mpeg4")


def test_redact_a_video_over_rest(client: TestClient, clips: dict[str, bytes]) -> None:
    stored = upload(client, clips["audio"])
    assert stored.status_code == 201, stored.text
    submitted = client.post(
        "/v1/jobs",
        json={"plugin": "faces.redact_video", "inputs": {"video": {"blob": stored.json()["blob"]}}},
    )
    assert submitted.status_code in (200, 202), submitted.text
    job = wait(client, submitted.json()["job_id"], timeout_s=120)
    assert job["status"] == "SUCCESS", job
    assert job["progress"] == 1.0
    assert job["progress_message"] == f"frame {FRAMES} of {FRAMES}"  # the tool's own report
    result = client.get(f"/v1/jobs/{job['id']}/result").json()["result"]
    digest = result["video"]["blob"].removeprefix("sha256:")
    download = client.get(f"/v1/blobs/{digest}")
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "video/mp4"
    frames, facts = decode(download.content)
    assert facts["codec"] == "h264" and len(frames) == result["frames"] == FRAMES
    assert facts["audio"] == [("aac", SAMPLE_RATE)]
    # an image named as the video is refused at submission, with the field named
    image = upload(client, png(20, 20)).json()
    refused = client.post(
        "/v1/jobs",
        json={"plugin": "faces.redact_video", "inputs": {"video": {"blob": image["blob"]}}},
    )
    assert refused.status_code == 415, refused.text
    assert refused.json()["error"]["details"]["field"] == "video"
