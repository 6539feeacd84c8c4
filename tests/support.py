"""Test helpers: images made in code, base64, a free loopback port, waiting for a job.

The test plugins live in :mod:`tests.plugins_for_tests`.
"""

from __future__ import annotations

import base64
import io
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(
    width: int = 32, height: int = 24, color: tuple[int, int, int] = (10, 200, 10), **save: Any
) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_job(
    client: TestClient,
    job_id: str,
    statuses: frozenset[str] | set[str] = TERMINAL,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}`` until the job is in one of ``statuses``; fail the test
    if it is not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {sorted(statuses)}: {job}")
