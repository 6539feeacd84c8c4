"""Pipelined workers: short calls handed out ahead, with every guarantee kept.

Real worker processes, one of them, so that the calls under test queue behind each other;
every wait is bounded in time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from tests.integration.test_durability import (
    executor,
    local_settings,
    submit,
    wait_terminal,
)
from tests.plugins_for_tests import Chaos, Testing
from tests.support import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(local_settings(tmp_path, workers=1), extra_plugins=[Testing, Chaos])
    with TestClient(app) as client:
        yield client


def warm_up(client: TestClient, depth: int = 8) -> None:
    """Short calls until the running average says "short": the one worker takes ``depth``
    calls at a time (the tests below queue up to 5 behind a running one)."""
    for _ in range(400):  # ~85 from the executor's first guess ("long") to a depth of 8
        if executor(client).capacity >= depth:
            return
        assert client.post("/v1/analyze", json={"plugin": "testing", "tool": "noop"}).is_success
    raise AssertionError(f"pipelining never got {depth} deep: {executor(client).capacity}")


def submit_with(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def test_short_calls_are_handed_out_ahead_and_all_succeed(one_worker: TestClient) -> None:
    warm_up(one_worker)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: one_worker.post(
                    "/v1/analyze", json={"plugin": "testing", "tool": "noop"}
                ),
                range(80),
            )
        )
    assert all(a.status_code == 200 and a.json()["result"] == {"ok": True} for a in answers)
    assert executor(one_worker).pipelined > 0  # some calls waited in the worker, not here


def test_a_queued_call_that_is_cancelled_never_runs(one_worker: TestClient, tmp_path: Path) -> None:
    warm_up(one_worker)
    pid = executor(one_worker).pids()
    before = executor(one_worker).pipelined
    marker = tmp_path / "ran"
    head = submit(one_worker, "testing", "sleep", seconds=1.0)
    queued = submit(one_worker, "chaos", "record", path=str(marker), pause=0.0)
    wait_until(lambda: executor(one_worker).pipelined > before)  # queued behind the sleep
    one_worker.post(f"/v1/jobs/{queued}/cancel")
    assert wait_terminal(one_worker, queued, timeout=10)["status"] == "CANCELLED"
    assert wait_terminal(one_worker, head, timeout=10)["status"] == "SUCCESS"
    assert not marker.exists()  # it never started
    assert executor(one_worker).pids() == pid  # and nobody had to be killed


def test_calls_queued_behind_a_crash_run_on_the_next_worker(one_worker: TestClient) -> None:
    warm_up(one_worker)
    before = executor(one_worker).pipelined
    crash = submit(one_worker, "chaos", "crash_after", seconds=1.0)
    queued = [submit(one_worker, "testing", "echo", text=f"n{i}") for i in range(5)]
    wait_until(lambda: executor(one_worker).pipelined >= before + 5)  # all behind the crash
    for job_id, i in zip(queued, range(5), strict=True):
        job = wait_terminal(one_worker, job_id, timeout=30)
        assert job["status"] == "SUCCESS"
        assert job["attempts"] == 1  # they never started on the dead worker: no attempt spent
        result = one_worker.get(f"/v1/jobs/{job_id}/result").json()["result"]
        assert result["text"] == f"n{i}"
    assert executor(one_worker).moved > 0  # the path under test was taken
    assert wait_terminal(one_worker, crash, timeout=30)["error"]["code"] == "worker_lost"


def test_a_queued_calls_time_limit_starts_when_it_starts(one_worker: TestClient) -> None:
    warm_up(one_worker)
    before = executor(one_worker).pipelined
    head = submit(one_worker, "testing", "sleep", seconds=0.8)
    queued = submit_with(
        one_worker,
        {"plugin": "testing", "tool": "sleep", "inputs": {"seconds": 0.1}, "timeout_s": 0.5},
    )
    started = time.monotonic()
    wait_until(lambda: executor(one_worker).pipelined > before)
    assert wait_terminal(one_worker, queued, timeout=10)["status"] == "SUCCESS"
    assert time.monotonic() - started >= 0.7  # it did wait behind the head, past 0.5 s
    assert wait_terminal(one_worker, head, timeout=10)["status"] == "SUCCESS"
