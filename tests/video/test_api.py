"""Video over REST: streamed upload, probe at submission, a video job, Range downloads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from lensforge.video import write_mp4
from tests.support import png
from tests.video.clips import scene_frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clips") / "scenes.mp4"
    write_mp4(path, scene_frames())
    return path.read_bytes()


def upload(client: TestClient, data: bytes) -> Any:
    return client.post("/v1/blobs", content=data, headers={"content-type": "video/mp4"})


def wait(client: TestClient, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("SUCCESS", "FAILED", "CANCELLED"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_upload_then_analyze_a_video(client: TestClient, clip: bytes) -> None:
    stored = upload(client, clip)
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["kind"] == "video" and body["media_type"] == "video/mp4"
    assert body["video"]["frame_count"] == 90 and body["size"] == len(clip)
    response = client.post(
        "/v1/analyze", json={"plugin": "video.scenes", "inputs": {"video": {"blob": body["blob"]}}}
    )
    assert response.status_code == 200, response.text
    assert [c["frame"] for c in response.json()["result"]["cuts"]] == [30, 60]


def test_a_video_as_a_multipart_upload(client: TestClient, clip: bytes) -> None:
    response = client.post(
        "/v1/jobs",
        data={"plugin": "video.info"},
        files={"video": ("clip.mp4", clip, "video/mp4")},
    )
    assert response.status_code in (200, 202), response.text
    job = wait(client, response.json()["job_id"])
    assert job["status"] == "SUCCESS"
    result = client.get(f"/v1/jobs/{job['id']}/result").json()["result"]
    assert result["frame_count"] == 90


def test_bad_videos_are_refused_at_submission(client: TestClient, clip: bytes) -> None:
    zip_named_mp4 = upload(client, b"PK\x03\x04" + b"\x00" * 500)
    assert zip_named_mp4.status_code == 415
    assert zip_named_mp4.json()["error"]["code"] == "unsupported_media_type"
    truncated = upload(client, clip[: len(clip) // 2])
    assert truncated.status_code == 422 and "truncated" in truncated.json()["error"]["message"]
    # a PNG stored as an image, then named as a video: refused when the job is submitted
    image = upload(client, png(20, 20)).json()
    as_video = client.post(
        "/v1/jobs", json={"plugin": "video.info", "inputs": {"video": {"blob": image["blob"]}}}
    )
    assert as_video.status_code == 415, as_video.text
    assert as_video.json()["error"]["details"]["field"] == "video"
    as_base64 = client.post("/v1/jobs", json={"plugin": "video.info", "inputs": {"video": "AAAA"}})
    assert as_base64.status_code == 422


def test_range_requests_return_the_right_bytes(client: TestClient, clip: bytes) -> None:
    ref = upload(client, clip).json()["blob"]
    digest = ref.removeprefix("sha256:")
    whole = client.get(f"/v1/blobs/{digest}")
    assert whole.status_code == 200 and whole.content == clip
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = client.get(f"/v1/blobs/{digest}", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == clip[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(clip)}"
    tail = client.get(f"/v1/blobs/{digest}", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == clip[-500:]
    beyond = client.get(f"/v1/blobs/{digest}", headers={"Range": f"bytes={len(clip)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(clip)}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"


def test_an_upload_is_streamed_past_the_json_body_cap(settings: Settings, tmp_path: Path) -> None:
    """Requests are capped at max_body_bytes; uploads to /v1/blobs at the video cap."""
    frames = [f.copy() for f in scene_frames(width=640, height=360, scenes=2)]
    for i, frame in enumerate(frames):  # noise, so the file does not compress away
        frame[::7, ::5] = (i * 37) % 255
    path = tmp_path / "big.mp4"
    write_mp4(path, frames, crf=0)
    data = path.read_bytes()
    small = settings.model_copy(update={"max_body_bytes": 100_000, "max_video_bytes": 10**8})
    assert len(data) > 2 * small.max_body_bytes
    with TestClient(create_app(small)) as client:
        assert upload(client, data).status_code == 201
        too_big = client.post("/v1/jobs", content=b"x" * len(data))
        assert too_big.status_code == 413
    tiny = settings.model_copy(update={"max_video_bytes": len(data) // 2})
    with TestClient(create_app(tiny)) as client:
        refused = upload(client, data)
        assert refused.status_code == 413, refused.text
