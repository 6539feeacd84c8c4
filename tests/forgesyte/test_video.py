"""ForgeSyte's video submit and video tools, driven with ForgeSyte's request shapes on the
real app: the upload streamed to the blob store, a durable job per tool, the tool reading a
read-only temporary copy through ``video_path`` and reporting frames as progress."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.forgesyte.support import poll
from tests.support import png
from tests.video.clips import write_scene_clip

PREFIX = "/forgesyte"
FRAMES = 30


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    return write_scene_clip(path, scenes=1, scene_s=1.0, width=160, height=96).read_bytes()


def _submit(
    client: TestClient, data: bytes, headers: dict[str, str] | None = None, **query: Any
) -> Any:
    return client.post(
        f"{PREFIX}/v1/video/submit",
        params={"plugin_id": "fs-video", **query},
        files={"file": ("clip.mp4", data, "video/mp4")},
        headers=headers,
    )


def test_a_video_job_runs_on_a_read_only_copy_that_is_removed_afterwards(
    client: TestClient, clip: bytes
) -> None:
    submitted = _submit(client, clip, tool="count_frames")
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert set(body) == {"job_id", "plugin", "status", "submitted_at", "tool"}
    assert (body["plugin"], body["tool"], body["status"]) == ("fs-video", "count_frames", "queued")

    job = poll(client, body["job_id"])
    assert job["status"] == "completed", job
    assert (job["job_type"], job["progress"], job["error_message"]) == ("video", 100, None)
    assert job["summary"] == {"frame_count": FRAMES, "detection_count": 0, "classes": []}

    result = client.get(job["result_url"])
    assert result.status_code == 200
    file = result.json()  # ForgeSyte's flattened video result: frames at the top
    assert (file["job_id"], file["status"], file["total_frames"]) == (
        body["job_id"],
        "completed",
        FRAMES,
    )
    assert [frame["frame_idx"] for frame in file["frames"]] == list(range(FRAMES))
    assert file["read_only"] is True and file["writable_by_owner"] is False
    copy = Path(file["video_path"])
    assert copy.suffix == ".mp4" and not copy.exists() and not copy.parent.exists()
    data_dir = client.app.state.services.settings.data_dir  # type: ignore[attr-defined]
    assert not copy.is_relative_to(data_dir)  # a copy, never the stored blob itself

    # The frames reached the job's progress (LensForge's own view keeps the last report).
    native = client.get(f"/v1/jobs/{body['job_id']}").json()
    assert native["progress_message"] == f"frame {FRAMES}/{FRAMES}"
    listed = client.get(f"{PREFIX}/v1/jobs").json()["jobs"]
    assert listed[0]["job_id"] == body["job_id"] and listed[0]["progress"] == 100


def test_the_progress_websocket_reports_frames_then_completion(
    client: TestClient, clip: bytes
) -> None:
    job_id = _submit(client, clip, tool="count_frames").json()["job_id"]
    messages = []
    with client.websocket_connect(f"{PREFIX}/v1/ws/jobs/{job_id}") as socket:
        while True:
            message = socket.receive_json()
            messages.append(message)
            if message.get("status") in ("completed", "error"):
                break
    progress = [m for m in messages if "current_frame" in m]
    assert all(m["job_id"] == job_id and 0 <= m["percent"] <= 100 for m in progress)
    # Once the tool reports frames, the events carry them (before: ForgeSyte's 0 of 100).
    frames = [m for m in progress if m["total_frames"] == FRAMES]
    assert frames, messages
    assert [m["current_frame"] for m in frames] == sorted(m["current_frame"] for m in frames)
    assert all(m["percent"] == int(100 * m["current_frame"] / FRAMES) for m in frames)
    assert messages[-1] == {"job_id": job_id, "status": "completed"}


def test_several_video_tools_and_capability_routing(client: TestClient, clip: bytes) -> None:
    both = _submit(client, clip, tool=["count_frames", "brightness"])
    assert both.status_code == 200, both.text
    assert both.json()["tools"] == ["count_frames", "brightness"]
    job = poll(client, both.json()["job_id"])
    assert (job["status"], job["job_type"], job["tools_total"]) == ("completed", "video_multi", 2)
    merged = client.get(job["result_url"]).json()
    assert merged["total_frames"] == FRAMES and len(merged["frames"]) == FRAMES
    first = merged["frames"][0]
    assert first["frame_idx"] == 0 and first["count_frames"] == {"detections": []}
    assert set(first["brightness"]) == {"mean"}
    assert "brightness" not in merged["frames"][1]  # it measured every tenth frame only

    routed = _submit(client, clip, logical_tool_id=["brightness", "frame_counting"])
    assert routed.json()["tools"] == [
        {"logical": "brightness", "resolved": "brightness"},
        {"logical": "frame_counting", "resolved": "count_frames"},
    ]
    one = _submit(client, clip, logical_tool_id="count")
    assert one.json()["tool"] == "count_frames"  # a tool id starting with the logical id


def test_bad_video_submits_answer_forgesyte_s_detail_with_lensforge_s_code(
    client: TestClient, clip: bytes
) -> None:
    image = _submit(client, png(), tool="count_frames")
    assert (image.status_code, image.json()["code"]) == (400, "unsupported_media_type")
    assert "image" in image.json()["detail"]
    text = _submit(client, b"just some text, certainly no video " * 4, tool="count_frames")
    assert (text.status_code, text.json()["code"]) == (400, "unsupported_media_type")
    truncated = _submit(client, clip[: len(clip) // 2], tool="count_frames")
    assert truncated.status_code == 400 and truncated.json()["code"] == "validation_error"

    image_tool = client.post(
        f"{PREFIX}/v1/video/submit",
        params={"plugin_id": "fs-shapes", "tool": "measure"},
        files={"file": ("clip.mp4", clip, "video/mp4")},
    )
    assert image_tool.status_code == 400
    assert image_tool.json()["detail"] == (
        "Tool 'measure' does not support video input (input_types: ['image_bytes'])"
    )
    video_tool = client.post(
        f"{PREFIX}/v1/image/submit",
        params={"plugin_id": "fs-video", "tool": "count_frames"},
        files={"file": ("a.png", png(), "image/png")},
    )
    assert video_tool.json()["detail"] == "Tool 'count_frames' does not support image input"
    no_file = client.post(
        f"{PREFIX}/v1/video/submit",
        params={"plugin_id": "fs-video", "tool": "count_frames"},
        files={"other": ("clip.mp4", clip, "video/mp4")},
    )
    assert no_file.status_code == 400 and "'file'" in no_file.json()["detail"]
    not_a_form = client.post(
        f"{PREFIX}/v1/video/submit",
        params={"plugin_id": "fs-video", "tool": "count_frames"},
        content=clip,
    )
    assert not_a_form.status_code == 400 and "multipart" in not_a_form.json()["detail"]
    both = _submit(client, clip, tool="count_frames", logical_tool_id="frame_counting")
    assert both.json()["detail"].startswith("Mutually exclusive parameters")
    assert client.get(f"{PREFIX}/v1/jobs").json()["count"] == 0  # nothing was queued


def test_the_web_ui_s_two_steps_upload_then_job(client: TestClient, clip: bytes) -> None:
    uploaded = client.post(
        f"{PREFIX}/v1/video/upload",
        params={"plugin_id": "fs-video"},
        files={"file": ("clip.mp4", clip, "video/mp4")},
    )
    assert uploaded.status_code == 200, uploaded.text
    video_path = uploaded.json()["video_path"]
    assert re.fullmatch(r"video/input/[0-9a-f]{64}\.mp4", video_path)
    assert client.get(f"{PREFIX}/v1/jobs").json()["count"] == 0  # no job yet

    body = {"plugin_id": "fs-video", "video_path": video_path}
    started = client.post(
        f"{PREFIX}/v1/video/job", json={**body, "lockedTools": ["count_frames", "brightness"]}
    )
    assert started.status_code == 200, started.text
    assert set(started.json()) == {"job_id"}
    job = poll(client, started.json()["job_id"])
    assert (job["status"], job["job_type"], job["tools"]) == (
        "completed",
        "video_multi",
        ["count_frames", "brightness"],
    )

    unknown = client.post(
        f"{PREFIX}/v1/video/job",
        json={**body, "video_path": "video/input/" + "0" * 64 + ".mp4", "lockedTools": ["broken"]},
    )
    assert unknown.status_code == 400
    assert unknown.json()["detail"] == f"Video file not found: video/input/{'0' * 64}.mp4"
    a_path = client.post(
        f"{PREFIX}/v1/video/job",
        json={**body, "video_path": "/etc/passwd", "lockedTools": ["broken"]},
    )
    assert a_path.json()["detail"] == "Video file not found: /etc/passwd"
    no_tools = client.post(f"{PREFIX}/v1/video/job", json={**body, "lockedTools": []})
    assert (no_tools.status_code, no_tools.json()["code"]) == (400, "validation_error")
    image_tool = client.post(
        f"{PREFIX}/v1/video/job",
        json={**body, "plugin_id": "fs-shapes", "lockedTools": ["measure"]},
    )
    assert image_tool.json()["detail"].startswith("Tool 'measure' does not support video input")
    image = client.post(
        f"{PREFIX}/v1/video/upload",
        params={"plugin_id": "fs-video"},
        files={"file": ("a.png", png(), "image/png")},
    )
    assert (image.status_code, image.json()["code"]) == (400, "unsupported_media_type")
    nowhere = client.post(
        f"{PREFIX}/v1/video/upload",
        params={"plugin_id": "nope"},
        files={"file": ("clip.mp4", clip, "video/mp4")},
    )
    assert nowhere.json()["detail"] == "Plugin 'nope' not found"


def test_a_video_tool_breaking_its_output_schema_fails_the_job(
    client: TestClient, clip: bytes
) -> None:
    job = poll(client, _submit(client, clip, tool="broken").json()["job_id"])
    assert job["status"] == "failed" and "output schema" in job["error_message"]


def test_another_tenant_cannot_see_a_video_job(client: TestClient, clip: bytes) -> None:
    keys = client.app.state.services.keys  # type: ignore[attr-defined]
    _, alice = keys.create("alice", ("analyze", "read"))
    _, bob = keys.create("bob", ("read",))
    as_alice, as_bob = {"X-API-Key": alice}, {"X-API-Key": bob}
    assert _submit(client, clip, tool="count_frames").status_code == 401
    assert _submit(client, clip, tool="count_frames", headers=as_bob).status_code == 403
    job_id = _submit(client, clip, tool="count_frames", headers=as_alice).json()["job_id"]
    assert poll(client, job_id, as_alice)["status"] == "completed"

    assert client.get(f"{PREFIX}/v1/jobs/{job_id}", headers=as_bob).status_code == 404
    assert client.get(f"{PREFIX}/v1/jobs/{job_id}/result", headers=as_bob).status_code == 404
    assert client.get(f"{PREFIX}/v1/jobs", headers=as_bob).json() == {"jobs": [], "count": 0}

    # Another tenant cannot start a job on a video it did not upload, even knowing its path.
    _, carol = keys.create("carol", ("analyze", "read"))
    uploaded = client.post(
        f"{PREFIX}/v1/video/upload",
        params={"plugin_id": "fs-video"},
        files={"file": ("clip.mp4", clip, "video/mp4")},
        headers=as_alice,
    ).json()
    body = {"plugin_id": "fs-video", "lockedTools": ["count_frames"], **uploaded}
    stolen = client.post(f"{PREFIX}/v1/video/job", json=body, headers={"X-API-Key": carol})
    assert stolen.status_code == 400 and stolen.json()["detail"].startswith("Video file not found")
    assert client.post(f"{PREFIX}/v1/video/job", json=body, headers=as_alice).status_code == 200


def test_lensforge_s_own_routes_run_the_forgesyte_video_tool(
    client: TestClient, clip: bytes
) -> None:
    """Adapted, a ForgeSyte video tool is a LensForge video tool like any other."""
    listing = client.get("/v1/plugins/fs_video").json()
    tools = {tool["name"]: tool for tool in listing["tools"]}
    assert tools["count_frames"]["video_inputs"] == ["video_path"]
    answer = client.post(
        "/v1/analyze",
        data={"plugin": "fs_video.count_frames"},
        files={"video_path": ("clip.mp4", clip, "video/mp4")},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert (result["total_frames"], result["read_only"]) == (FRAMES, True)
    assert not Path(result["video_path"]).exists()


def test_an_mcp_call_runs_the_forgesyte_video_tool_on_a_stored_video(
    installed: Path, tmp_path: Path, clip: bytes
) -> None:
    from lensforge.wiring import Services
    from tests.mcp_server.support import run

    async def call(session: Any, services: Services) -> Any:
        async def chunks() -> AsyncIterator[bytes]:
            yield clip

        stored = await services.analysis.upload(chunks(), "mcp")
        listed = await session.list_tools()
        name = next(t.name for t in listed.tools if "fs_video" in t.name and "count" in t.name)
        return await session.call_tool(name, {"video_path": {"blob": stored.blob}})

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}", data_dir=tmp_path / "data"
    )
    result = run(settings, call)
    content = getattr(result, "structured_content", None) or getattr(
        result, "structuredContent", None
    )
    assert content is not None, result
    assert (content["total_frames"], content["read_only"]) == (FRAMES, True)


@pytest.mark.parametrize("step", ["submit", "upload"])
def test_a_video_larger_than_the_body_cap_streams_under_the_video_cap(
    installed: Path, tmp_path: Path, clip: bytes, step: str
) -> None:
    """Videos are uploads: ForgeSyte's video routes get LENSFORGE_MAX_VIDEO_BYTES, not the
    body cap, which still refuses a body that large on any other route."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        executor="thread",
        max_body_bytes=1024,
    )
    assert len(clip) > 2 * settings.max_body_bytes
    with TestClient(create_app(settings)) as client:
        files = {"file": ("clip.mp4", clip, "video/mp4")}
        params = {"plugin_id": "fs-video", "tool": "count_frames"}
        answer = client.post(f"{PREFIX}/v1/video/{step}", params=params, files=files)
        assert answer.status_code == 200, answer.text
        elsewhere = client.post(f"{PREFIX}/v1/image/submit", params=params, files=files)
        assert elsewhere.status_code == 413, elsewhere.text
