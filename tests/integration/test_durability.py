"""Isolated, durable execution: real worker processes, real kills, bounded in time."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from lensforge.store import JobStore, Status
from tests.plugins_for_tests import Chaos, Testing
from tests.support import wait_until

pytestmark = pytest.mark.slow
TERMINAL = {"SUCCESS", "FAILED", "CANCELLED"}


def local_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'lensforge.db'}",
        "data_dir": tmp_path / "data",
        "executor": "local",
        "workers": 2,
        "poll_interval_s": 0.05,
        "lease_s": 3.0,
        "cancel_grace_s": 0.5,
        "worker_memory_mb": 256,
        "shutdown_grace_s": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(local_settings(tmp_path), extra_plugins=[Testing, Chaos])
    with TestClient(app) as client:
        yield client


def executor(client: TestClient) -> Any:
    return client.app.state.services.jobs.plugins.executor  # type: ignore[attr-defined]


def submit(client: TestClient, plugin: str, tool: str, **inputs: Any) -> str:
    response = client.post("/v1/jobs", json={"plugin": plugin, "tool": tool, "inputs": inputs})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_terminal(client: TestClient, job_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return dict(job)
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not terminal after {timeout}s: {job}")


def events(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/jobs/{job_id}/events").json()["events"])


def test_tools_run_in_worker_processes_loaded_once(local: TestClient) -> None:
    pids = {
        local.post("/v1/analyze", json={"plugin": "testing", "tool": "pid"}).json()["result"]["pid"]
        for _ in range(10)
    }
    assert os.getpid() not in pids
    assert pids <= set(executor(local).pids())


def test_hanging_tool_times_out_and_its_worker_is_replaced(local: TestClient) -> None:
    before = set(executor(local).pids())
    started = time.monotonic()
    response = local.post("/v1/analyze", json={"plugin": "chaos", "tool": "hang", "timeout_s": 1})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert 1.0 <= elapsed < 2.0
    wait_until(lambda: len(executor(local).pids()) == 2 and set(executor(local).pids()) != before)
    gone = before - set(executor(local).pids())
    assert len(gone) == 1
    (pid,) = gone
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    ok = local.post("/v1/analyze", json={"plugin": "testing", "tool": "noop"})
    assert ok.status_code == 200


def test_other_jobs_continue_while_one_hangs(local: TestClient) -> None:
    hung = submit(local, "chaos", "hang")
    for _ in range(5):
        ok = local.post(
            "/v1/analyze", json={"plugin": "testing", "tool": "echo", "inputs": {"text": "hi"}}
        )
        assert ok.status_code == 200
    local.post(f"/v1/jobs/{hung}/cancel")
    assert wait_terminal(local, hung)["status"] == "CANCELLED"


def test_memory_cap_turns_runaway_allocation_into_resource_exhausted(local: TestClient) -> None:
    own_rss = _rss_kb(os.getpid())
    response = local.post(
        "/v1/analyze", json={"plugin": "chaos", "tool": "allocate", "inputs": {"megabytes": 4096}}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "resource_exhausted"
    assert _rss_kb(os.getpid()) < own_rss + 100_000  # the server's memory is not affected
    assert local.post("/v1/analyze", json={"plugin": "testing", "tool": "noop"}).status_code == 200


def test_segfault_is_worker_lost_after_the_configured_attempts(local: TestClient) -> None:
    job_id = submit(local, "chaos", "segfault")
    job = wait_terminal(local, job_id, timeout=30)
    assert job["status"] == "FAILED"
    assert job["error"]["code"] == "worker_lost"
    assert job["attempts"] == 3
    retries = [e for e in events(local, job_id) if e["from"] == "RUNNING" and e["to"] == "PENDING"]
    assert len(retries) == 2
    assert local.post("/v1/analyze", json={"plugin": "testing", "tool": "noop"}).status_code == 200


def test_os_exit_costs_one_worker_not_the_server(local: TestClient) -> None:
    job_id = submit(local, "chaos", "exit")
    error = wait_terminal(local, job_id, timeout=30)["error"]
    assert error["code"] == "worker_lost"
    assert error["details"] == {"exit_code": 3}  # the tool's os._exit(3)
    assert local.get("/healthz").status_code == 200


def test_cancel_running_job_kills_the_process_that_ran_it(local: TestClient) -> None:
    job_id = submit(local, "chaos", "hang")
    wait_until(lambda: local.get(f"/v1/jobs/{job_id}").json()["status"] == "RUNNING")
    busy = {w.pid for w in executor(local)._workers if w.call is not None}
    assert len(busy) == 1
    started = time.monotonic()
    response = local.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code in (200, 202)
    job = wait_terminal(local, job_id, timeout=5)
    assert job["status"] == "CANCELLED"
    assert time.monotonic() - started < 0.5 + 1.5  # the grace period plus a margin
    (pid,) = busy
    deadline = time.monotonic() + 3  # killed at once; reaped by the executor a moment later
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"worker {pid}, which ran the cancelled job, is still alive")
    assert local.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def test_cooperative_cancel_stops_a_tool_that_checks(local: TestClient) -> None:
    job_id = submit(local, "testing", "sleep", seconds=30)
    wait_until(lambda: local.get(f"/v1/jobs/{job_id}").json()["status"] == "RUNNING")
    pids = set(executor(local).pids())
    local.post(f"/v1/jobs/{job_id}/cancel")
    assert wait_terminal(local, job_id, timeout=3)["status"] == "CANCELLED"
    assert set(executor(local).pids()) == pids  # it stopped itself: no worker killed


def test_cancel_pending_job_is_immediate(tmp_path: Path) -> None:
    app = create_app(local_settings(tmp_path, workers=1), extra_plugins=[Testing, Chaos])
    with TestClient(app) as client:
        blocker = submit(client, "testing", "sleep", seconds=30)
        queued = submit(client, "testing", "noop")
        response = client.post(f"/v1/jobs/{queued}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "CANCELLED"
        client.post(f"/v1/jobs/{blocker}/cancel")


def test_declared_retries_back_off_and_show_in_events(local: TestClient, tmp_path: Path) -> None:
    job_id = submit(local, "chaos", "flaky", marker=str(tmp_path / "flaky"), failures=2)
    job = wait_terminal(local, job_id, timeout=20)
    assert job["status"] == "SUCCESS"
    assert job["attempts"] == 3
    assert local.get(f"/v1/jobs/{job_id}/result").json()["result"] == {"attempt": 3}
    retries = [e for e in events(local, job_id) if e["to"] == "PENDING" and e["from"] == "RUNNING"]
    assert len(retries) == 2
    assert all("retry after plugin_error" in e["reason"] for e in retries)


def test_retries_stop_at_max_attempts_with_a_retryable_error(
    local: TestClient, tmp_path: Path
) -> None:
    job_id = submit(local, "chaos", "flaky", marker=str(tmp_path / "never"), failures=10)
    job = wait_terminal(local, job_id, timeout=20)
    assert job["status"] == "FAILED"
    assert job["attempts"] == 3
    assert job["error"]["code"] == "plugin_error"
    assert job["error"]["retryable"] is True


def test_idempotency_key_under_concurrency_creates_one_job(local: TestClient) -> None:
    body = {"plugin": "testing", "tool": "echo", "inputs": {"text": "once"}}
    answers: list[Any] = []

    def post() -> None:
        answers.append(local.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"}))

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 20
    assert {r.status_code for r in answers} <= {200, 202}
    assert len({r.json()["job_id"] for r in answers}) == 1
    jobs = local.get("/v1/jobs", params={"tool": "echo"}).json()["jobs"]
    assert len(jobs) == 1
    other = local.post(
        "/v1/jobs", json={**body, "inputs": {"text": "other"}}, headers={"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 409


def test_sse_stream_shows_increasing_progress_and_ends_with_success(local: TestClient) -> None:
    job_id = submit(local, "testing", "sleep", seconds=1.0)
    seen: list[tuple[str, dict[str, Any]]] = []
    with local.stream("GET", f"/v1/jobs/{job_id}/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                import json

                seen.append((str(event), json.loads(line.removeprefix("data: "))))
    assert seen[-1][0] == "done"
    assert seen[-1][1]["status"] == "SUCCESS"
    progress = [data["progress"] for name, data in seen if name == "progress"]
    assert len(progress) >= 2
    assert progress == sorted(progress)


def test_progress_is_visible_when_polling(local: TestClient) -> None:
    job_id = submit(local, "testing", "sleep", seconds=1.5)
    wait_until(lambda: local.get(f"/v1/jobs/{job_id}").json()["progress"] > 0.2, timeout=5)
    job = local.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "RUNNING"
    assert job["progress_message"] == "sleeping"
    wait_terminal(local, job_id)


def test_back_pressure_answers_429_with_retry_after(tmp_path: Path) -> None:
    app = create_app(
        local_settings(tmp_path, workers=1, max_queue=3), extra_plugins=[Testing, Chaos]
    )
    with TestClient(app) as client:
        blocker = submit(client, "testing", "sleep", seconds=30)
        wait_until(lambda: client.get(f"/v1/jobs/{blocker}").json()["status"] == "RUNNING")
        for _ in range(3):
            submit(client, "testing", "noop")
        response = client.post("/v1/jobs", json={"plugin": "testing", "tool": "noop"})
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1
        client.post(f"/v1/jobs/{blocker}/cancel")


def test_kill_one_worker_while_200_jobs_run(local: TestClient, tmp_path: Path) -> None:
    marker = tmp_path / "completions"
    ids = [submit(local, "chaos", "record", path=str(marker), pause=0.01) for _ in range(200)]
    wait_until(lambda: marker.exists() and marker.read_text().count("done") >= 20, timeout=30)
    os.kill(executor(local).pids()[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    store = JobStore(local.app.state.services.settings.database_url)  # type: ignore[attr-defined]
    try:
        while time.monotonic() < deadline:
            counts = asyncio.run(store.counts())
            if counts["PENDING"] == 0 and counts["RUNNING"] == 0:
                break
            time.sleep(0.1)
        jobs = asyncio.run(store.get_many(ids))
        assert len(jobs) == len(ids)
        assert all(job is not None for job in jobs)
        statuses = {job.status for job in jobs if job is not None}
        assert statuses <= {Status.SUCCESS, Status.FAILED}
        for job in jobs:
            assert job is not None
            if job.status is Status.FAILED:
                assert job.error is not None and job.error["error"]["code"] == "worker_lost"
            events = asyncio.run(store.events(job.id))
            successes = [e for e in events if e.to_status == "SUCCESS"]
            assert len(successes) <= 1  # never completed twice
    finally:
        store.close()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
