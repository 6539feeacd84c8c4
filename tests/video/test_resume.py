"""Resumable video jobs on real worker processes: a worker killed mid-video, a cancel
mid-video, and the per-frame results paged with a cursor.

The clip is generated here (90 frames); the image tool is :class:`FrameProbe`, which logs
every call, so the frames processed again after a kill can be counted.
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from lensforge.video import write_mp4
from tests.support import wait_until
from tests.video.clips import scene_frames
from tests.video.probe_plugin import FrameProbe

pytestmark = pytest.mark.slow
TERMINAL = {"SUCCESS", "FAILED", "CANCELLED"}
FRAMES = 90
CHUNK = 10


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        executor="local",
        workers=1,
        poll_interval_s=0.05,
        lease_s=3.0,
        cancel_grace_s=0.5,
        shutdown_grace_s=0.5,
    )
    with TestClient(create_app(settings, extra_plugins=[FrameProbe])) as client:
        yield client


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clips") / "scenes.mp4"
    write_mp4(path, scene_frames())
    return path.read_bytes()


def submit(client: TestClient, clip: bytes, tool: str, log: Path, delay_s: float = 0.0) -> str:
    blob = client.post("/v1/blobs", content=clip, headers={"content-type": "video/mp4"})
    assert blob.status_code == 201, blob.text
    inputs = {
        "video": {"blob": blob.json()["blob"]},
        "tool": "probe.mark",
        "every_s": 1 / 30,  # every frame
        "inputs": {"log": str(log), "delay_s": delay_s},
        "chunk_frames": CHUNK,
    }
    response = client.post("/v1/jobs", json={"plugin": "video", "tool": tool, "inputs": inputs})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def terminal(client: TestClient, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(client.get(f"/v1/jobs/{job_id}").json())
        return found["status"] in TERMINAL

    wait_until(done, timeout=60)
    return found


def all_frames(client: TestClient, job_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | (
            {"cursor": cursor} if cursor is not None else {}
        )
        page = client.get(f"/v1/jobs/{job_id}/frames", params=params)
        assert page.status_code == 200, page.text
        frames += page.json()["frames"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return frames


def stored(client: TestClient, job_id: str) -> int:
    return len(client.get(f"/v1/jobs/{job_id}/frames", params={"limit": 1000}).json()["frames"])


def calls(log: Path) -> Counter[str]:
    """Image-tool calls per attempt ("1", "2", ...)."""
    if not log.exists():
        return Counter()
    return Counter(line.split()[1] for line in log.read_text().splitlines())


@pytest.mark.parametrize("tool", ["analyze", "track"])
def test_a_killed_worker_resumes_from_its_checkpoint(
    local: TestClient, clip: bytes, tmp_path: Path, tool: str
) -> None:
    log = tmp_path / "killed.log"
    job_id = submit(local, clip, tool, log, delay_s=0.04)
    wait_until(lambda: stored(local, job_id) >= 2 * CHUNK, timeout=30)
    executor = local.app.state.services.jobs.plugins.executor  # type: ignore[attr-defined]
    os.kill(executor.pids()[0], signal.SIGKILL)
    job = terminal(local, job_id)
    assert job["status"] == "SUCCESS", job
    assert job["attempts"] == 2
    reasons = [e["reason"] or "" for e in local.get(f"/v1/jobs/{job_id}/events").json()["events"]]
    assert any("worker_lost" in reason for reason in reasons), reasons

    per_attempt = calls(log)
    before, after = per_attempt["1"], per_attempt["2"]
    again = before + after - FRAMES  # frames processed by both attempts
    assert before >= 2 * CHUNK
    assert after < FRAMES - CHUNK  # resumed from a checkpoint, not from frame 0
    assert 0 <= again < before and again <= 2 * CHUNK

    fresh = submit(local, clip, tool, tmp_path / "fresh.log")
    assert terminal(local, fresh)["status"] == "SUCCESS"
    assert calls(tmp_path / "fresh.log")["1"] == FRAMES
    result = local.get(f"/v1/jobs/{job_id}/result").json()["result"]
    assert result == local.get(f"/v1/jobs/{fresh}/result").json()["result"]
    resumed_frames = all_frames(local, job_id)
    assert [f["frame"] for f in resumed_frames] == list(range(FRAMES))  # each frame once
    assert [f["seq"] for f in resumed_frames] == list(range(FRAMES))
    assert resumed_frames == all_frames(local, fresh)
    if tool == "analyze":
        assert result["summary"]["frames_analyzed"] == FRAMES and result["frames"] is None
    else:
        assert [len(t["points"]) for t in result["tracks"]] == [30, 30]  # scenes 1 and 3


def test_cancel_mid_video_stops_within_one_chunk(
    local: TestClient, clip: bytes, tmp_path: Path
) -> None:
    log = tmp_path / "cancel.log"
    job_id = submit(local, clip, "analyze", log, delay_s=0.05)
    wait_until(lambda: stored(local, job_id) >= CHUNK, timeout=30)
    running = local.get(f"/v1/jobs/{job_id}").json()
    assert re.fullmatch(r"frame \d+ of 90, ETA \d+ s", running["progress_message"]), running
    assert 0 < running["progress"] < 1
    response = local.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code in (200, 202), response.text
    at_cancel = calls(log)["1"]
    assert terminal(local, job_id)["status"] == "CANCELLED"
    assert calls(log)["1"] - at_cancel <= CHUNK
    assert calls(log)["1"] < FRAMES
    assert stored(local, job_id) < FRAMES


def test_frames_are_paged_with_a_cursor(local: TestClient, clip: bytes, tmp_path: Path) -> None:
    job_id = submit(local, clip, "analyze", tmp_path / "paged.log")
    assert terminal(local, job_id)["status"] == "SUCCESS"
    every = all_frames(local, job_id)
    assert len(every) == FRAMES
    first = local.get(f"/v1/jobs/{job_id}/frames", params={"limit": 7}).json()
    assert [f["seq"] for f in first["frames"]] == list(range(7)) and first["next_cursor"] == 6
    second = local.get(f"/v1/jobs/{job_id}/frames", params={"limit": 7, "cursor": 6}).json()
    assert [f["seq"] for f in second["frames"]] == list(range(7, 14))
    assert all_frames(local, job_id, limit=7) == every
    item = every[45]
    assert item["frame"] == 45 and item["timestamp_s"] == pytest.approx(1.5)
    assert set(item["item"]["result"]) == {"mean", "objects"}
    last = local.get(f"/v1/jobs/{job_id}/frames", params={"cursor": FRAMES - 1}).json()
    assert last == {"job_id": job_id, "frames": [], "next_cursor": None}
    missing = local.get("/v1/jobs/00000000-0000-7000-8000-000000000000/frames")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    bad = local.get(f"/v1/jobs/{job_id}/frames", params={"cursor": -1})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
