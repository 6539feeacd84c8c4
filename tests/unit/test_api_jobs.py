"""The jobs API and the rest of the REST surface, over the real app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.plugins_for_tests import TEST_PLUGINS
from tests.support import TERMINAL, b64, png
from tests.unit.api.support import wait_for

JOB_FIELDS = {
    "id",
    "plugin",
    "tool",
    "status",
    "progress",
    "progress_message",
    "attempts",
    "max_attempts",
    "cancel_requested",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
}


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    """This module's tests share one app."""
    return module_client


def submit(client: TestClient, tool: str, plugin: str = "testing", **inputs: Any) -> str:
    response = client.post("/v1/jobs", json={"plugin": plugin, "tool": tool, "inputs": inputs})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def analyze(client: TestClient, plugin: str, tool: str | None = None, **inputs: Any) -> Any:
    body: dict[str, Any] = {"plugin": plugin, "inputs": inputs}
    if tool is not None:
        body["tool"] = tool
    response = client.post("/v1/analyze", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# -- submit, status, result, events ---------------------------------------------------------


def test_submit_returns_202_with_location_and_the_job_succeeds(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs", json={"plugin": "testing", "tool": "echo", "inputs": {"text": "hi"}}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"job_id", "status"}
    assert body["status"] in {"PENDING", "RUNNING"}
    assert response.headers["location"] == f"/v1/jobs/{body['job_id']}"
    job = wait_for(client, body["job_id"])
    assert job["status"] == "SUCCESS"
    result = client.get(f"/v1/jobs/{body['job_id']}/result")
    assert result.status_code == 200
    assert result.json() == {
        "job_id": body["job_id"],
        "status": "SUCCESS",
        "result": {"text": "hi", "times": 1},
    }


def test_job_view_is_flat(client: TestClient) -> None:
    job_id = analyze(client, "testing", "echo", text="x", times=2)["job_id"]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert set(job) == JOB_FIELDS
    assert (job["id"], job["plugin"], job["tool"]) == (job_id, "testing", "echo")
    assert job["status"] == "SUCCESS"
    assert job["progress"] == 1.0
    assert (job["attempts"], job["max_attempts"]) == (1, 1)
    assert job["cancel_requested"] is False
    stamps = [job["created_at"], job["started_at"], job["finished_at"]]
    assert all(isinstance(s, str) and s.endswith("Z") for s in stamps)
    assert stamps == sorted(stamps)


def test_failed_job_view_carries_its_error(client: TestClient) -> None:
    job_id = submit(client, "fail", message="nope")
    job = wait_for(client, job_id)
    assert job["status"] == "FAILED"
    assert set(job) == JOB_FIELDS | {"error"}
    assert job["error"]["code"] == "plugin_error"
    assert job["error"]["job_id"] == job_id
    assert "RuntimeError" in job["error"]["message"]


def test_events_show_the_state_machine(client: TestClient) -> None:
    job_id = analyze(client, "testing", "noop")["job_id"]
    response = client.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == job_id
    transitions = [(e["from"], e["to"]) for e in body["events"]]
    assert transitions == [(None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "SUCCESS")]
    assert body["events"][1]["worker"]
    assert all(e["at"].endswith("Z") for e in body["events"])


# -- listing ---------------------------------------------------------------------------------


def test_list_filters_by_status_plugin_and_tool(client: TestClient) -> None:
    ok = analyze(client, "single", value=3)["job_id"]
    failed = submit(client, "fail")
    wait_for(client, failed)
    echo = analyze(client, "testing", "echo", text="e")["job_id"]

    def ids(**params: Any) -> list[str]:
        response = client.get("/v1/jobs", params={"limit": 500, **params})
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["jobs"]]

    assert ok in ids(plugin="single")
    assert all(job_id not in ids(plugin="single") for job_id in (failed, echo))
    assert echo in ids(tool="echo")
    assert ok not in ids(tool="echo")
    assert failed in ids(status="FAILED")
    assert ok not in ids(status="FAILED")
    assert ok in ids(status="SUCCESS", plugin="single", tool="only")
    everything = ids()
    assert everything.index(echo) < everything.index(failed) < everything.index(ok)
    for job in client.get("/v1/jobs", params={"status": "FAILED"}).json()["jobs"]:
        assert job["status"] == "FAILED"


def test_cursor_paging_walks_every_job_once_newest_first(client: TestClient) -> None:
    for i in range(5):
        analyze(client, "single", value=i)
    everything = [j["id"] for j in client.get("/v1/jobs?limit=500").json()["jobs"]]
    assert len(everything) >= 5
    seen: list[str] = []
    cursor = None
    for _ in range(len(everything) + 1):  # bounded
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/jobs", params=params).json()
        assert len(page["jobs"]) <= 2
        seen.extend(job["id"] for job in page["jobs"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    assert seen == sorted(seen, reverse=True)  # ids are time-ordered


# -- cancel ----------------------------------------------------------------------------------


@pytest.fixture
def one_worker(settings: Settings) -> Iterator[TestClient]:
    """A server with room for one job at a time, so a second job stays PENDING."""
    single = settings.model_copy(update={"workers": 1})
    with TestClient(create_app(single, extra_plugins=TEST_PLUGINS)) as test_client:
        yield test_client


def test_cancel_a_pending_job(one_worker: TestClient) -> None:
    blocker = submit(one_worker, "sleep", seconds=5)
    wait_for(one_worker, blocker, {"RUNNING"})
    queued = submit(one_worker, "noop")
    assert one_worker.get(f"/v1/jobs/{queued}").json()["status"] == "PENDING"
    response = one_worker.post(f"/v1/jobs/{queued}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    events = one_worker.get(f"/v1/jobs/{queued}/events").json()["events"]
    assert [e["to"] for e in events] == ["PENDING", "CANCELLED"]
    assert one_worker.post(f"/v1/jobs/{blocker}/cancel").status_code in {200, 202}


def test_cancel_a_running_job(client: TestClient) -> None:
    job_id = submit(client, "sleep", seconds=5)
    wait_for(client, job_id, {"RUNNING"})
    started = time.monotonic()
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code in {200, 202}, response.text
    job = wait_for(client, job_id, TERMINAL, timeout_s=4)
    assert time.monotonic() - started < 3.0
    assert job["status"] == "CANCELLED"
    assert job["error"]["code"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert client.get(f"/v1/jobs/{job_id}/result").status_code == 409
    # the server goes on serving
    assert analyze(client, "single", value=1)["result"] == {"value": 2}


# -- idempotency -----------------------------------------------------------------------------


def test_idempotency_key(client: TestClient) -> None:
    body = {"plugin": "testing", "tool": "echo", "inputs": {"text": "once"}}
    headers = {"Idempotency-Key": f"key-{time.time_ns()}"}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    other = client.post("/v1/jobs", json={**body, "inputs": {"text": "twice"}}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "conflict"
    assert other.json()["error"]["job_id"] == first.json()["job_id"]
    fresh = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": f"k2-{time.time_ns()}"})
    assert fresh.json()["job_id"] != first.json()["job_id"]


@pytest.mark.parametrize(
    "changed",
    [
        {"tool": "pid"},  # another tool of the same plugin, the same (empty) inputs
        {"plugin": "single", "tool": None},  # another plugin, the same inputs
        {"timeout_s": 5.0},  # another time limit
    ],
    ids=["tool", "plugin", "time-limit"],
)
def test_the_idempotency_key_covers_tool_and_time_limit(
    client: TestClient, changed: dict[str, object]
) -> None:
    """Reusing a key for another tool or time limit is a conflict, never the other job."""
    body: dict[str, object] = {"plugin": "testing", "tool": "noop", "inputs": {}}
    headers = {"Idempotency-Key": f"cover-{time.time_ns()}"}
    first = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == 202
    other = client.post("/v1/jobs", json={**body, **changed}, headers=headers)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "conflict"


def test_idempotency_key_on_sync_analyze(client: TestClient) -> None:
    body = {"plugin": "single", "inputs": {"value": 21}}
    headers = {"Idempotency-Key": f"sync-{time.time_ns()}"}
    first = client.post("/v1/analyze", json=body, headers=headers)
    again = client.post("/v1/analyze", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()


# -- the analysis front door -------------------------------------------------------------------


def test_multipart_upload(client: TestClient) -> None:
    response = client.post(
        "/v1/analyze",
        files={"image": ("x.png", png(40, 30), "image/png")},
        data={"plugin": "testing", "tool": "size"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"width": 40, "height": 30}


def test_multipart_upload_with_other_inputs_as_json(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs",
        files={"image": ("x.png", png(8, 6), "image/png")},
        data={"plugin": "image.info"},
    )
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["job_id"])
    assert job["status"] == "SUCCESS"
    result = client.get(f"/v1/jobs/{job['id']}/result").json()["result"]
    assert (result["width"], result["height"]) == (8, 6)


def test_base64_image_in_json(client: TestClient) -> None:
    result = analyze(client, "testing", "size", image=b64(png(12, 7)))["result"]
    assert result == {"width": 12, "height": 7}


def test_single_tool_plugin_needs_no_tool_name(client: TestClient) -> None:
    assert analyze(client, "single", value=4)["result"] == {"value": 8}


def test_dotted_plugin_and_tool(client: TestClient) -> None:
    result = analyze(client, "image.info", image=b64(png(20, 10)))["result"]
    assert (result["format"], result["width"], result["height"]) == ("PNG", 20, 10)
    assert result["media_type"] == "image/png"


def test_json_schema_tool(client: TestClient) -> None:
    assert analyze(client, "testing", "repeat", word="hi", n=3)["result"] == {
        "words": ["hi", "hi", "hi"]
    }
    assert analyze(client, "testing", "repeat", word="yo")["result"] == {"words": ["yo", "yo"]}


def test_blob_reference_reuses_an_uploaded_image(client: TestClient) -> None:
    import hashlib

    data = png(9, 9)
    analyze(client, "testing", "size", image=b64(data))
    digest = hashlib.sha256(data).hexdigest()
    result = analyze(client, "testing", "size", image={"blob": f"sha256:{digest}"})["result"]
    assert result == {"width": 9, "height": 9}
    blob = client.get(f"/v1/blobs/{digest}")
    assert blob.status_code == 200
    assert blob.content == data
    assert blob.headers["content-type"] == "image/png"


# -- plugins, health, metrics, docs ----------------------------------------------------------


def test_plugin_list_and_manifest(client: TestClient) -> None:
    listing = client.get("/v1/plugins")
    assert listing.status_code == 200
    names = [p["name"] for p in listing.json()["plugins"]]
    assert {"testing", "single", "image"} <= set(names)
    assert names == sorted(names)
    manifest = client.get("/v1/plugins/testing").json()
    assert (manifest["name"], manifest["version"]) == ("testing", "0.0.1")
    assert manifest["state"] in {"LOADED", "INITIALIZED", "RUNNING"}
    tools = {t["name"]: t for t in manifest["tools"]}
    assert {"noop", "echo", "size", "fail", "sleep", "repeat"} <= set(tools)
    echo = tools["echo"]
    assert echo["qualified_name"] == "testing.echo"
    assert echo["description"] == "Return the text and how many times it was asked for."
    assert echo["input_schema"]["properties"]["text"]["type"] == "string"
    assert echo["input_schema"]["required"] == ["text"]
    assert set(echo["output_schema"]["properties"]) == {"text", "times"}
    assert tools["size"]["media_inputs"] == ["image"]
    assert tools["sleep"]["timeout_s"] == 30
    assert tools["repeat"]["input_schema"]["required"] == ["word"]


def test_manifest_metrics_count_calls(client: TestClient) -> None:
    def echo_metrics() -> dict[str, Any]:
        tools = client.get("/v1/plugins/testing").json()["tools"]
        return next(t["metrics"] for t in tools if t["name"] == "echo")

    def fail_metrics() -> dict[str, Any]:
        tools = client.get("/v1/plugins/testing").json()["tools"]
        return next(t["metrics"] for t in tools if t["name"] == "fail")

    before, fail_before = echo_metrics(), fail_metrics()
    for _ in range(3):
        analyze(client, "testing", "echo", text="m")
    assert client.post("/v1/analyze", json={"plugin": "testing", "tool": "fail"}).status_code == 502
    after, fail_after = echo_metrics(), fail_metrics()
    assert after["calls"] == before["calls"] + 3
    assert after["successes"] == before["successes"] + 3
    assert after["errors"] == before["errors"]
    assert after["latency_ms"]["p50"] is not None
    assert after["latency_ms"]["max"] >= after["latency_ms"]["p50"] >= 0
    assert fail_after["calls"] == fail_before["calls"] + 1
    assert fail_after["errors"].get("plugin_error", 0) == (
        fail_before["errors"].get("plugin_error", 0) + 1
    )
    plugin = client.get("/v1/plugins/testing").json()["metrics"]
    assert plugin["calls"] >= after["calls"] + fail_after["calls"]


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert "testing" in ready.json()["plugins"]


def test_prometheus_metrics(client: TestClient) -> None:
    analyze(client, "single", value=1)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "lensforge_tool_calls" in text
    assert 'plugin="single"' in text
    assert "lensforge_jobs" in text


def _counter(text: str, name: str) -> float:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[1])


def test_store_write_counters(client: TestClient) -> None:
    before = client.get("/metrics").text
    analyze(client, "single", value=1)  # a job: created, then finished: two writes
    after = client.get("/metrics").text
    writes = _counter(after, "lensforge_store_writes_total")
    assert writes - _counter(before, "lensforge_store_writes_total") >= 2
    transactions = _counter(after, "lensforge_store_transactions_total")
    assert 1 <= transactions <= writes


def test_docs_and_openapi(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/v1/analyze", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/plugins", "/healthz"):
        assert path in paths
