"""Helpers shared by the REST API's tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.conftest import TEST_PLUGINS

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


def thread_app(root: Path) -> FastAPI:
    """The real app on a SQLite file under ``root``, tools on threads (jobs end in ms)."""
    settings = Settings(
        database_url=f"sqlite:///{root / 'lensforge.db'}",
        data_dir=root / "data",
        executor="thread",
        workers=2,
        poll_interval_s=0.05,
    )
    return create_app(settings, extra_plugins=TEST_PLUGINS)


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
