"""ForgeSyte's /v1/analyze-execution routes: the same shapes, served by the same services."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support import b64, png

BASE = "/v1/analyze-execution"
JSON = {"Content-Type": "application/json"}
JOB_KEYS = {"id", "plugin", "status", "created_at", "updated_at"}
RESULT_KEYS = {"job_id", "plugin", "status", "result", "error", "created_at", "completed_at"}
LEGACY_TERMINAL = {"done", "error", "cancelled"}


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    """This module's tests share one app."""
    return module_client


def truncated_png() -> bytes:
    data = png(64, 64)
    return data[: len(data) - 70]


def submit_async(client: TestClient, **body: Any) -> str:
    response = client.post(f"{BASE}/async", json=body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"job_id"}
    job_id: str = response.json()["job_id"]
    return job_id


def wait_legacy(
    client: TestClient, job_id: str, statuses: set[str] = LEGACY_TERMINAL, timeout_s: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"{BASE}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()["job"]
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def sleeping_job(client: TestClient, seconds: float = 5) -> str:
    """A long job, submitted through the native API (no compat tool takes this long)."""
    response = client.post(
        "/v1/jobs", json={"plugin": "testing", "tool": "sleep", "inputs": {"seconds": seconds}}
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


# -- synchronous execution ---------------------------------------------------------------------


def test_execute_returns_the_result(client: TestClient) -> None:
    response = client.post(BASE, json={"plugin": "image", "image": b64(png(40, 30))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"plugin", "job_id", "status", "result"}
    assert (body["plugin"], body["status"]) == ("image", "done")
    assert (body["result"]["width"], body["result"]["height"]) == (40, 30)
    assert client.get(f"/v1/jobs/{body['job_id']}").json()["status"] == "SUCCESS"


def test_execute_with_a_tool_name_and_mime_type(client: TestClient) -> None:
    body = {"plugin": "testing", "tool_name": "size", "image": b64(png(5, 6))}
    response = client.post(BASE, json={**body, "mime_type": "image/jpeg"})  # ignored: sniffed
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"width": 5, "height": 6}
    assert response.json()["plugin"] == "testing"


def test_execute_unknown_plugin(client: TestClient) -> None:
    response = client.post(BASE, json={"plugin": "nope", "image": b64(png())})
    detail = legacy_detail(response, 400, "plugin_not_found")
    assert detail["type"] == "plugin_not_found"


def legacy_detail(response: Any, status: int, code: str) -> dict[str, Any]:
    """ForgeSyte's one error shape on these routes, with LensForge's code inside."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    detail: dict[str, Any] = body["detail"]
    assert set(detail) == {"type", "message", "code", "job_id"}, detail
    assert detail["code"] == code, detail
    assert isinstance(detail["message"], str) and detail["message"]
    return detail


def test_plugin_is_required_no_default_in_the_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ExecutionBody"]
    assert "plugin" in schema["required"]
    assert "default" not in schema["properties"]["plugin"]
    detail = legacy_detail(client.post(BASE, json={"image": b64(png())}), 422, "validation_error")
    assert detail["type"] == "validation_error"
    assert "plugin" in detail["message"]


def test_a_malformed_body_gets_the_same_shape(client: TestClient) -> None:
    for body in ([1, 2], {"plugin": "image"}, {"plugin": "image", "image": 5}):
        legacy_detail(client.post(BASE, json=body), 422, "validation_error")
    response = client.post(f"{BASE}/async", content=b"{not json", headers=JSON)
    legacy_detail(response, 422, "validation_error")
    legacy_detail(client.get(f"{BASE}/jobs", params={"limit": 0}), 422, "validation_error")


def test_the_dotted_plugin_form_is_accepted(client: TestClient) -> None:
    response = client.post(BASE, json={"plugin": "testing.size", "image": b64(png(7, 3))})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"width": 7, "height": 3}
    assert response.json()["plugin"] == "testing"
    job_id = submit_async(client, plugin="image.info", image=b64(png(2, 5)))
    assert wait_legacy(client, job_id)["status"] == "done"


def test_a_tool_that_takes_no_image_is_a_validation_error(client: TestClient) -> None:
    body = {"plugin": "testing.sleep", "image": b64(png())}
    detail = legacy_detail(client.post(BASE, json=body), 400, "validation_error")
    assert "takes no image" in detail["message"]


def test_execute_unknown_tool(client: TestClient) -> None:
    response = client.post(BASE, json={"plugin": "image", "tool_name": "nope", "image": b64(png())})
    assert legacy_detail(response, 400, "tool_not_found")["type"] == "invalid_plugin"


def test_execute_failed_job_reports_its_error(client: TestClient) -> None:
    response = client.post(BASE, json={"plugin": "image", "image": b64(truncated_png())})
    detail = legacy_detail(response, 400, "validation_error")
    assert detail["type"] == "execution_error"
    assert "truncated" in detail["message"]
    assert detail["job_id"]


def test_execute_invalid_base64(client: TestClient) -> None:
    response = client.post(BASE, json={"plugin": "image", "image": "%%%"})
    assert legacy_detail(response, 400, "validation_error")["type"] == "validation_error"


# -- async execution and jobs ------------------------------------------------------------------


def test_async_job_really_runs(client: TestClient) -> None:
    job_id = submit_async(client, plugin="image", image=b64(png(9, 4)))
    job = wait_legacy(client, job_id)
    assert job["status"] == "done"
    assert set(job) == JOB_KEYS
    assert (job["id"], job["plugin"]) == (job_id, "image")
    assert job["created_at"] <= job["updated_at"]
    response = client.get(f"{BASE}/jobs/{job_id}")
    assert set(response.json()) == {"job"}


def test_async_unknown_plugin(client: TestClient) -> None:
    response = client.post(f"{BASE}/async", json={"plugin": "nope", "image": b64(png())})
    legacy_detail(response, 400, "plugin_not_found")


def test_unknown_job(client: TestClient) -> None:
    missing = "00000000-0000-7000-8000-000000000000"
    for response in (
        client.get(f"{BASE}/jobs/{missing}"),
        client.get(f"{BASE}/jobs/{missing}/result"),
        client.delete(f"{BASE}/jobs/{missing}"),
    ):
        detail = legacy_detail(response, 404, "job_not_found")
        assert (detail["message"], detail["job_id"]) == ("Job not found", None)


def test_result_of_a_done_job(client: TestClient) -> None:
    job_id = submit_async(client, plugin="image", image=b64(png(3, 2)))
    wait_legacy(client, job_id)
    response = client.get(f"{BASE}/jobs/{job_id}/result")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESULT_KEYS
    assert (body["job_id"], body["plugin"], body["status"]) == (job_id, "image", "done")
    assert (body["result"]["width"], body["result"]["height"]) == (3, 2)
    assert body["error"] is None
    assert body["completed_at"] is not None
    assert body["created_at"] <= body["completed_at"]


def test_result_while_queued_or_running_is_409(client: TestClient) -> None:
    job_id = sleeping_job(client, seconds=3)
    response = client.get(f"{BASE}/jobs/{job_id}/result")
    assert "not ready" in legacy_detail(response, 409, "result_not_ready")["message"]
    assert client.get(f"{BASE}/jobs/{job_id}").json()["job"]["status"] in {"queued", "running"}
    client.post(f"/v1/jobs/{job_id}/cancel")


def test_failed_job_result_carries_its_error(client: TestClient) -> None:
    job_id = submit_async(client, plugin="image", image=b64(truncated_png()))
    job = wait_legacy(client, job_id)
    assert job["status"] == "error"
    body = client.get(f"{BASE}/jobs/{job_id}/result").json()
    assert set(body) == RESULT_KEYS
    assert body["status"] == "error"
    assert body["result"] is None
    assert isinstance(body["error"], str) and "truncated" in body["error"]
    assert "Traceback" not in str(body)


def test_list_filters_newest_first_with_count(client: TestClient) -> None:
    first = submit_async(client, plugin="image", image=b64(png(2, 2)))
    second = submit_async(client, plugin="testing", tool_name="size", image=b64(png(2, 2)))
    third = submit_async(client, plugin="image", image=b64(png(4, 4)))
    for job_id in (first, second, third):
        wait_legacy(client, job_id)
    response = client.get(f"{BASE}/jobs", params={"plugin": "image"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"jobs", "count"}
    assert body["count"] == len(body["jobs"])
    ids = [job["id"] for job in body["jobs"]]
    assert ids.index(third) < ids.index(first)
    assert second not in ids
    assert all(job["plugin"] == "image" for job in body["jobs"])
    assert all(set(job) == JOB_KEYS for job in body["jobs"])
    created = [job["created_at"] for job in body["jobs"]]
    assert created == sorted(created, reverse=True)
    done = client.get(f"{BASE}/jobs", params={"status_filter": "done", "plugin": "testing"}).json()
    assert second in [job["id"] for job in done["jobs"]]
    assert all(job["status"] == "done" for job in done["jobs"])
    limited = client.get(f"{BASE}/jobs", params={"limit": 1}).json()
    assert limited["count"] == 1


def test_list_by_error_status(client: TestClient) -> None:
    job_id = submit_async(client, plugin="image", image=b64(truncated_png()))
    wait_legacy(client, job_id)
    errors = client.get(f"{BASE}/jobs", params={"status_filter": "error"}).json()
    assert job_id in [job["id"] for job in errors["jobs"]]
    assert all(job["status"] == "error" for job in errors["jobs"])


def test_list_with_an_unknown_status_is_empty(client: TestClient) -> None:
    assert client.get(f"{BASE}/jobs", params={"status_filter": "weird"}).json() == {
        "jobs": [],
        "count": 0,
    }


def test_delete_answers_what_a_get_right_after_shows(client: TestClient) -> None:
    job_id = sleeping_job(client)
    wait_legacy(client, job_id, {"running"})
    response = client.delete(f"{BASE}/jobs/{job_id}")
    assert response.status_code == 200, response.text
    assert response.json() == {"job_id": job_id, "status": "cancelled", "cancelled": True}
    assert client.get(f"{BASE}/jobs/{job_id}").json()["job"]["status"] == "cancelled"


def test_a_cancelled_jobs_error_is_the_same_whenever_it_was_cancelled(client: TestClient) -> None:
    # Two workers: two sleepers run, the third waits in the queue.
    running = [sleeping_job(client), sleeping_job(client)]
    for job_id in running:
        wait_legacy(client, job_id, {"running"})
    queued = sleeping_job(client)
    assert client.get(f"{BASE}/jobs/{queued}").json()["job"]["status"] == "queued"
    errors = set()
    for job_id in (queued, *running):
        answer = client.delete(f"{BASE}/jobs/{job_id}").json()
        assert answer["status"] == client.get(f"{BASE}/jobs/{job_id}").json()["job"]["status"]
        wait_legacy(client, job_id, {"cancelled"})
        result = client.get(f"{BASE}/jobs/{job_id}/result").json()
        assert (result["status"], result["result"]) == ("cancelled", None)
        errors.add(result["error"])
    assert len(errors) == 1 and None not in errors, errors


def test_delete_of_a_finished_job_is_409(client: TestClient) -> None:
    done = client.post(BASE, json={"plugin": "image", "image": b64(png())}).json()
    response = client.delete(f"{BASE}/jobs/{done['job_id']}")
    assert legacy_detail(response, 409, "conflict")["job_id"] == done["job_id"]
    assert client.get(f"{BASE}/jobs/{done['job_id']}").json()["job"]["status"] == "done"
