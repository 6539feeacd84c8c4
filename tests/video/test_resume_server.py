"""A real ``lensforge serve`` killed with SIGKILL mid-video and started again on the same
store: the video job resumes from its checkpoint and ends as an uninterrupted run does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lensforge.video import write_mp4
from tests.support import free_port, wait_until_serving
from tests.video.clips import scene_frames
from tests.video.test_resume import CHUNK, FRAMES, calls

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, tmp_path: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "LENSFORGE_PORT": self.url.rsplit(":", 1)[1],
            "LENSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'lensforge.db'}",
            "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
            "LENSFORGE_EXECUTOR": "local",
            "LENSFORGE_WORKERS": "1",
            "LENSFORGE_POLL_INTERVAL_S": "0.05",
            "LENSFORGE_LEASE_S": "60",  # recovered at start-up, not by waiting for the lease
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.video.launch_probe"], cwd=ROOT, env=self.env
        )
        wait_until_serving(self.process, self.url)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def job_body(blob: str, log: Path, delay_s: float) -> dict[str, Any]:
    inputs = {
        "video": {"blob": blob},
        "tool": "probe.mark",
        "every_s": 1 / 30,
        "inputs": {"log": str(log), "delay_s": delay_s},
        "chunk_frames": CHUNK,
    }
    return {"plugin": "video", "tool": "analyze", "inputs": inputs}


def wait_for(client: httpx.Client, job_id: str, done: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = done(client, job_id)
        if state:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: condition not met in time")


def frames_stored(client: httpx.Client, job_id: str) -> bool:
    page = client.get(f"/v1/jobs/{job_id}/frames", params={"limit": 1000}).json()
    return len(page["frames"]) >= 2 * CHUNK


def finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] in ("SUCCESS", "FAILED", "CANCELLED") else None


def test_a_server_killed_mid_video_resumes_the_job_after_restart(
    tmp_path: Path, servers: list[Server]
) -> None:
    path = tmp_path / "scenes.mp4"
    write_mp4(path, scene_frames())
    log = tmp_path / "killed.log"
    servers.append(first := Server(tmp_path))
    with httpx.Client(base_url=first.url, timeout=10) as client:
        blob = client.post(
            "/v1/blobs", content=path.read_bytes(), headers={"content-type": "video/mp4"}
        ).json()["blob"]
        job_id = client.post("/v1/jobs", json=job_body(blob, log, 0.04)).json()["job_id"]
        wait_for(client, job_id, frames_stored)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    before = calls(log)["1"]
    assert 2 * CHUNK <= before < FRAMES

    servers.append(second := Server(tmp_path))
    with httpx.Client(base_url=second.url, timeout=10) as client:
        job = wait_for(client, job_id, finished)
        assert job["status"] == "SUCCESS" and job["attempts"] == 2, job
        after = calls(log)["2"]
        assert after < FRAMES - CHUNK and before + after - FRAMES < before
        fresh = client.post("/v1/jobs", json=job_body(blob, tmp_path / "fresh.log", 0.0))
        fresh_id = fresh.json()["job_id"]
        assert wait_for(client, fresh_id, finished)["status"] == "SUCCESS"
        results = [client.get(f"/v1/jobs/{j}/result").json()["result"] for j in (job_id, fresh_id)]
        assert results[0] == results[1]
        pages = [
            client.get(f"/v1/jobs/{j}/frames", params={"limit": 1000}).json()["frames"]
            for j in (job_id, fresh_id)
        ]
        assert len(pages[0]) == FRAMES and pages[0] == pages[1]
