"""What a worker process's environment holds: one-thread numeric pools, malloc that keeps
freed memory, and the operator's own settings of either kept as they are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.execution.executors.local import WORKER_ENVIRONMENT
from tests.integration.test_durability import executor, local_settings
from tests.plugins_for_tests import Testing

pytestmark = pytest.mark.slow


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def test_workers_get_the_defaults_and_keep_the_operators_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the operator's choice
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    app = create_app(local_settings(tmp_path, workers=1), extra_plugins=[Testing])
    with TestClient(app) as client:
        assert client.post("/v1/analyze", json={"plugin": "testing", "tool": "noop"}).is_success
        (pid,) = executor(client).pids()
        env = environment_of(pid)
    assert env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["OPENCV_FOR_THREADS_NUM"] == "1"
    assert env["MALLOC_MMAP_THRESHOLD_"] == WORKER_ENVIRONMENT["MALLOC_MMAP_THRESHOLD_"]
    assert int(env["MALLOC_TRIM_THRESHOLD_"]) >= int(env["MALLOC_MMAP_THRESHOLD_"])
    # a worker imports from the server's path (plugins found through a path it added)
    assert env["PYTHONPATH"].split(os.pathsep) == [p for p in sys.path if p]


@pytest.mark.skipif(sys.platform != "linux", reason="SCHED_BATCH is Linux's")
def test_workers_run_under_the_batch_scheduling_policy(tmp_path: Path) -> None:
    """So that a woken worker does not preempt the API process (docs/execution.md)."""
    app = create_app(local_settings(tmp_path, workers=1), extra_plugins=[Testing])
    with TestClient(app) as client:
        assert client.post("/v1/analyze", json={"plugin": "testing", "tool": "noop"}).is_success
        (pid,) = executor(client).pids()
        assert os.sched_getscheduler(pid) == os.SCHED_BATCH
