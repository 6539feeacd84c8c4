"""Helpers shared by the REST API's tests."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


def wait_for(
    client: TestClient,
    job_id: str,
    statuses: set[str] | frozenset[str] = TERMINAL,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{job_id}`` until the job is in one of ``statuses``."""
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {set(statuses)}: {job}")
