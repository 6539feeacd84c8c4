"""ForgeSyte's job routes driven with ForgeSyte's request shapes, on the real app."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.forgesyte.support import poll
from tests.support import b64, png

PREFIX = "/forgesyte"


def _submit(
    client: TestClient, image: bytes, headers: dict[str, str] | None = None, **query: Any
) -> Any:
    return client.post(
        f"{PREFIX}/v1/image/submit",
        params={"plugin_id": "fs-shapes", **query},
        files={"file": ("frame.png", image, "image/png")},
        headers=headers,
    )


def test_image_submit_by_plugin_and_tool_polls_to_completed_and_downloads(
    client: TestClient,
) -> None:
    image = png(20, 10)
    submitted = _submit(client, image, tool="measure")
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert set(body) == {"job_id", "plugin", "status", "submitted_at", "tool"}
    assert (body["plugin"], body["status"], body["tool"]) == ("fs-shapes", "queued", "measure")

    job = poll(client, body["job_id"])
    assert job["status"] == "completed"
    assert (job["plugin_id"], job["tool"], job["tools"], job["job_type"]) == (
        "fs-shapes",
        "measure",
        None,
        "image",
    )
    assert job["progress"] == 100 and job["error_message"] is None
    assert job["summary"] == {"frame_count": 0, "detection_count": 0, "classes": []}
    assert job["result_url"] == f"{PREFIX}/v1/jobs/{body['job_id']}/result"

    result = client.get(job["result_url"])
    assert result.status_code == 200
    assert result.headers["content-disposition"] == f'attachment; filename="{body["job_id"]}.json"'
    assert result.json() == {
        "plugin_id": "fs-shapes",
        "tool": "measure",
        "results": {"width": 20, "height": 10, "size": len(image), "unit": "px", "loaded": True},
    }


def test_image_submit_by_capability_one_and_several_tools(client: TestClient) -> None:
    single = _submit(client, png(color=(0, 0, 90)), logical_tool_id="color_analysis").json()
    assert single["tool"] == "color"
    assert poll(client, single["job_id"])["status"] == "completed"
    assert client.get(f"{PREFIX}/v1/jobs/{single['job_id']}/result").json()["results"] == {
        "channel": "red",
        "mean": 0,
    }

    several = _submit(client, png(8, 4), logical_tool_id=["measurement", "color_analysis"]).json()
    assert several["tools"] == [
        {"logical": "measurement", "resolved": "measure"},
        {"logical": "color_analysis", "resolved": "color"},
    ]
    job = poll(client, several["job_id"])
    assert (job["status"], job["tools"], job["job_type"], job["tools_total"]) == (
        "completed",
        ["measure", "color"],
        "image_multi",
        2,
    )
    result = client.get(f"{PREFIX}/v1/jobs/{several['job_id']}/result").json()
    assert result["plugin_id"] == "fs-shapes"
    assert result["tools"]["measure"]["width"] == 8
    assert result["tools"]["color"]["channel"] == "red"


def test_bad_submits_answer_forgesyte_s_detail_with_lensforge_s_code(client: TestClient) -> None:
    both = _submit(client, png(), tool="measure", logical_tool_id="measurement")
    assert both.status_code == 400
    assert both.json()["detail"].startswith("Mutually exclusive parameters")
    assert both.json()["code"] == "validation_error"

    unknown = client.post(
        f"{PREFIX}/v1/image/submit",
        params={"plugin_id": "nope", "tool": "x"},
        files={"file": ("a.png", png(), "image/png")},
    )
    assert (unknown.status_code, unknown.json()["detail"]) == (400, "Plugin 'nope' not found")
    assert unknown.json()["error"]["code"] == "plugin_not_found"

    video = _submit(client, png(), tool="video_track")
    assert video.json()["detail"] == "Tool 'video_track' does not support image input"
    not_image = _submit(client, b"just some text", tool="measure")
    assert (not_image.status_code, not_image.json()["code"]) == (400, "unsupported_media_type")
    no_plugin = client.post(
        f"{PREFIX}/v1/image/submit", files={"file": ("a.png", png(), "image/png")}
    )
    assert no_plugin.status_code == 400 and "plugin_id" in no_plugin.json()["detail"]

    missing = client.get(f"{PREFIX}/v1/jobs/0190a0b0-0000-7000-8000-000000000000")
    assert (missing.status_code, missing.json()["detail"]) == (404, "Job not found")


def test_failed_tools_and_unfinished_results(client: TestClient) -> None:
    broken = _submit(client, png(), tool="broken_output").json()
    job = poll(client, broken["job_id"])
    assert job["status"] == "failed"
    assert "output schema" in job["error_message"]
    assert job["result_url"] is None
    result = client.get(f"{PREFIX}/v1/jobs/{broken['job_id']}/result")
    assert (result.status_code, result.json()["detail"]) == (404, "Result not found")


def test_the_job_list_pages_newest_first(client: TestClient) -> None:
    ids = [_submit(client, png(), tool="measure").json()["job_id"] for _ in range(3)]
    for job_id in ids:
        poll(client, job_id)
    first = client.get(f"{PREFIX}/v1/jobs", params={"limit": 2}).json()
    second = client.get(f"{PREFIX}/v1/jobs", params={"limit": 2, "skip": 2}).json()
    assert [item["job_id"] for item in first["jobs"] + second["jobs"]] == ids[::-1]
    assert first["count"] == second["count"] == 3
    item = first["jobs"][0]
    assert set(item) == {
        "job_id",
        "status",
        "plugin",
        "created_at",
        "completed_at",
        "result_url",
        "summary",
        "error",
        "progress",
    }
    assert (item["status"], item["plugin"], item["progress"]) == ("completed", "fs-shapes", 100)
    assert client.get(f"{PREFIX}/v1/jobs", params={"limit": 101}).status_code == 400


def test_plugins_manifests_health_and_a_direct_tool_run(client: TestClient) -> None:
    plugins = {p["name"]: p for p in client.get(f"{PREFIX}/v1/plugins").json()}
    assert plugins["fs-shapes"]["state"] in ("LOADED", "INITIALIZED")
    assert plugins["fs_missing"]["state"] == "UNAVAILABLE"
    assert "app" in plugins["fs_missing"]["reason"]
    assert "image" in plugins  # LensForge's own plugins serve ForgeSyte's clients too
    counted = client.get(f"{PREFIX}/v1/plugins/").json()
    assert counted["total"] == len(plugins) and counted["unavailable"] >= 1

    manifest = client.get(f"{PREFIX}/v1/plugins/fs-shapes/manifest").json()
    assert manifest["id"] == "fs-shapes"
    assert [tool["id"] for tool in manifest["tools"]] == ["measure", "color", "video_track"]
    assert manifest["tools"][0]["capabilities"] == ["measurement"]
    assert client.get(f"{PREFIX}/v1/plugins/nope/manifest").status_code == 404
    health = client.get(f"{PREFIX}/v1/plugins/fs-shapes/health").json()
    assert health["name"] == "fs-shapes" and health["version"] == "2.1.0"

    ran = client.post(
        f"{PREFIX}/v1/plugins/fs-shapes/tools/color/run",
        json={"args": {"frame_base64": b64(png(color=(0, 0, 7))), "channel": "blue"}},
    )
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert (body["tool_name"], body["plugin_id"], body["result"]) == (
        "color",
        "fs-shapes",
        {"channel": "blue", "mean": 7},
    )
    assert isinstance(body["processing_time_ms"], int)
    invalid = client.post(
        f"{PREFIX}/v1/plugins/fs-shapes/tools/color/run",
        json={"args": {"image_bytes": b64(png()), "channel": "purple"}},
    )
    assert (invalid.status_code, invalid.json()["code"]) == (400, "validation_error")
    service = client.get(f"{PREFIX}/v1/health").json()
    assert service["status"] == "healthy" and service["plugins_loaded"] == len(plugins)


def test_the_progress_websocket_sends_progress_then_completion(client: TestClient) -> None:
    job_id = _submit(client, png(), tool="steps").json()["job_id"]
    messages = []
    with client.websocket_connect(f"{PREFIX}/v1/ws/jobs/{job_id}") as socket:
        socket.send_json({"type": "ping"})
        while True:
            message = socket.receive_json()
            messages.append(message)
            if message.get("status") in ("completed", "error"):
                break
    assert {"type": "pong"} in messages
    progress = [m for m in messages if "current_frame" in m]
    assert progress and progress[-1]["total_frames"] == 5
    assert all(m["job_id"] == job_id and 0 <= m["percent"] <= 100 for m in progress)
    assert messages[-1] == {"job_id": job_id, "status": "completed"}


def test_another_tenant_s_job_is_not_found(client: TestClient) -> None:
    keys = client.app.state.services.keys  # type: ignore[attr-defined]
    _, alice = keys.create("alice", ("analyze", "read"))
    _, bob = keys.create("bob", ("analyze", "read"))
    as_alice, as_bob = {"X-API-Key": alice}, {"Authorization": f"Bearer {bob}"}
    assert _submit(client, png(), tool="measure").status_code == 401  # auth is on now
    job_id = _submit(client, png(), tool="measure", headers=as_alice).json()["job_id"]
    assert poll(client, job_id, as_alice)["status"] == "completed"

    assert client.get(f"{PREFIX}/v1/jobs/{job_id}", headers=as_bob).status_code == 404
    assert client.get(f"{PREFIX}/v1/jobs/{job_id}/result", headers=as_bob).status_code == 404
    assert client.get(f"{PREFIX}/v1/jobs", headers=as_bob).json() == {"jobs": [], "count": 0}
    assert client.get(f"{PREFIX}/v1/jobs", headers=as_alice).json()["count"] == 1

    with client.websocket_connect(f"{PREFIX}/v1/ws/jobs/{job_id}", headers=as_bob) as socket:
        assert socket.receive_json()["message"] == "Job not found"
    with client.websocket_connect(f"{PREFIX}/v1/ws/jobs/{job_id}") as socket:
        socket.send_json({"type": "auth", "api_key": alice})  # the first message, not the URL
        assert socket.receive_json() == {"job_id": job_id, "status": "completed"}
    with client.websocket_connect(f"{PREFIX}/v1/ws/jobs/{job_id}?api_key={alice}") as socket:
        socket.send_json({"type": "ping"})
        assert socket.receive_json()["code"] == "unauthorized"


def test_a_job_can_be_cancelled_once(client: TestClient) -> None:
    job_id = _submit(client, png(), tool="steps").json()["job_id"]
    cancelled = client.delete(f"{PREFIX}/v1/jobs/{job_id}")
    assert cancelled.json() == {"job_id": job_id, "status": "cancelled"}
    job = poll(client, job_id)
    assert (job["status"], job["error_message"]) == ("failed", "Job was cancelled")
    again = client.delete(f"{PREFIX}/v1/jobs/{job_id}")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
