"""ForgeSyte plugins in a real ``lensforge serve`` (worker processes that discover them on
their own) and in ``lensforge run``: timeouts, a crashing tool, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import Server, lensforge_command
from tests.support import b64, png
from tests.video.clips import write_scene_clip

pytestmark = pytest.mark.slow


def _path(site: Path) -> str:
    return os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="module")
def server(forgesyte_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("forgesyte-server")
    running = Server(
        tmp_path,
        "forgesyte",
        PYTHONPATH=_path(forgesyte_site),
        LENSFORGE_PLUGINS_ALLOW="fs_shapes,fs_legacy,fs_missing,fs_video",
        LENSFORGE_WORKER_LOST_ATTEMPTS="1",
    ).start()
    try:
        yield running
    finally:
        running.kill()


def _analyze(server: Server, tool: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/analyze",
        json={"plugin": "fs_shapes", "tool": tool, "inputs": {"image_bytes": b64(png())}, **body},
        timeout=60,
    )


def test_the_workers_load_and_run_the_installed_plugins(server: Server) -> None:
    listing = httpx.get(f"{server.url}/v1/plugins", timeout=10).json()
    states = {entry["name"]: entry["state"] for entry in listing["plugins"]}
    assert set(states) == {"fs_shapes", "fs_legacy", "fs_missing", "fs_video"}
    assert states["fs_missing"] == "UNAVAILABLE"
    answer = _analyze(server, "measure")
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["loaded"] is True  # on_load ran as setup() in the worker


def test_a_hanging_tool_times_out_and_a_crashing_one_costs_only_its_worker(server: Server) -> None:
    hung = _analyze(server, "hang", timeout_s=1)
    assert hung.json()["error"]["code"] == "timeout", hung.text
    crashed = _analyze(server, "crash")
    assert crashed.json()["error"]["code"] == "worker_lost", crashed.text
    after = _analyze(server, "color")
    assert after.status_code == 200, after.text  # the server carries on
    assert after.json()["result"]["channel"] == "red"


def test_a_video_job_runs_in_a_worker_process_on_a_read_only_copy(
    server: Server, tmp_path: Path
) -> None:
    clip = write_scene_clip(tmp_path / "clip.mp4", scenes=1, scene_s=1.0, width=160, height=96)
    submitted = httpx.post(
        f"{server.url}/forgesyte/v1/video/submit",
        params={"plugin_id": "fs-video", "tool": "count_frames"},
        files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")},
        timeout=60,
    )
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["job_id"]
    deadline = time.monotonic() + 60
    while (job := httpx.get(f"{server.url}/forgesyte/v1/jobs/{job_id}", timeout=10).json())[
        "status"
    ] not in ("completed", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert (job["status"], job["job_type"], job["progress"]) == ("completed", "video", 100), job
    result = httpx.get(f"{server.url}{job['result_url']}", timeout=10).json()
    assert (result["total_frames"], result["read_only"]) == (30, True)
    assert not Path(result["video_path"]).exists()


def test_lensforge_run_runs_a_forgesyte_tool(forgesyte_site: Path, tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    image.write_bytes(png(9, 4))
    ran = subprocess.run(
        [*lensforge_command(), "run", "fs_legacy.analyze", "--image", str(image), "--json"],
        env={
            **os.environ,
            "PYTHONPATH": _path(forgesyte_site),
            "LENSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"] == {"size": len(png(9, 4)), "scale": 1}
