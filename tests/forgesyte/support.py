"""Helpers of the ForgeSyte route tests."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient


def poll(
    client: TestClient, job_id: str, headers: dict[str, str] | None = None, limit_s: float = 30
) -> dict[str, Any]:
    """ForgeSyte's status of ``job_id``, polled until it is ``completed`` or ``failed``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/forgesyte/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "failed"):
            return job
        assert job["status"] in ("pending", "running")
        assert 0 <= job["progress"] <= 100
        time.sleep(0.03)
    raise AssertionError(f"job {job_id} did not finish")
