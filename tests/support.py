"""Test helpers: images made in code, base64, a free loopback port, waiting for a job or for
a server to answer, starting uvicorn in a thread, and the error envelope's keys.

The test plugins live in :mod:`tests.plugins_for_tests`.
"""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})
# Every error response, on every surface, carries exactly these keys (docs/errors.md).
ENVELOPE_KEYS = frozenset(
    {
        "code",
        "message",
        "details",
        "retryable",
        "plugin",
        "tool",
        "job_id",
        "request_id",
        "timestamp",
    }
)


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


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms until it is truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_until_serving(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    path: str = "/readyz",
    timeout_s: float = 30.0,
    log: Path | None = None,
) -> None:
    """Poll ``url + path`` until it answers 200; fail the test (showing ``log``, if given)
    when the server process exits first or does not answer within ``timeout_s``."""

    def shown() -> str:
        return f":\n{log.read_text()}" if log is not None and log.exists() else ""

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited during start-up ({process.returncode}){shown()}")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server did not answer {path} within {timeout_s} s{shown()}")


@contextmanager
def serving_in_thread(app: Any, port: int, name: str = "test-server") -> Iterator[None]:
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in a daemon thread of this process
    while the block runs; fail the test if it does not start within 30 s."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", ws="none")
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert server.started, "the server did not start"
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)
