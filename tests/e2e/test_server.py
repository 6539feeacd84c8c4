"""``lensforge serve`` as a real process on a free port: HTTP, shutdown, durability."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, png, wait_until_serving

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def lensforge_command() -> list[str]:
    script = Path(sys.executable).with_name("lensforge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lensforge.cli"]


class Server:
    """One ``lensforge serve`` process bound to 127.0.0.1 on a free port."""

    def __init__(self, tmp_path: Path, name: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{name}.log"
        self.env = {
            **os.environ,
            "LENSFORGE_HOST": "127.0.0.1",
            "LENSFORGE_PORT": str(self.port),
            "LENSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'server.db'}",
            "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
            "LENSFORGE_WORKERS": "1",
            "LENSFORGE_LOG_LEVEL": "warning",
            **env,
        }
        self.cwd = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*lensforge_command(), "serve"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_serving(
            self.process, self.url, path="/healthz", timeout_s=START_TIMEOUT_S, log=self.log
        )
        return self

    def terminate(self) -> float:
        """SIGTERM; returns how long the process took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers a test started; any still running at the end are killed."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            server.kill()


def test_serve_answers_stops_on_sigterm_and_keeps_jobs(
    tmp_path: Path, servers: list[Server]
) -> None:
    first = Server(tmp_path, "first")
    servers.append(first)
    first.start()
    image = base64.b64encode(png(40, 30)).decode()
    response = httpx.post(
        f"{first.url}/v1/analyze",
        json={"plugin": "image", "tool": "info", "inputs": {"image": image}},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    result = response.json()["result"]
    assert (result["width"], result["height"]) == (40, 30)
    multipart = httpx.post(
        f"{first.url}/v1/analyze",
        files={"image": ("x.png", png(8, 8), "image/png")},
        data={"plugin": "image.info"},
        timeout=30,
    )
    assert multipart.status_code == 200, multipart.text

    took = first.terminate()
    assert took < STOP_TIMEOUT_S
    assert first.process is not None
    assert first.process.returncode in (0, -signal.SIGTERM), first.log.read_text()
    assert "Traceback" not in first.log.read_text()

    second = Server(tmp_path, "second")  # same database, new process and port
    servers.append(second)
    second.start()
    job = httpx.get(f"{second.url}/v1/jobs/{job_id}", timeout=10)
    assert job.status_code == 200, job.text
    assert job.json()["status"] == "SUCCESS"
    stored = httpx.get(f"{second.url}/v1/jobs/{job_id}/result", timeout=10)
    assert stored.json()["result"] == result
    events = httpx.get(f"{second.url}/v1/jobs/{job_id}/events", timeout=10).json()["events"]
    assert [e["to"] for e in events] == ["PENDING", "RUNNING", "SUCCESS"]
    second.terminate()


def test_body_limits_on_a_real_socket(tmp_path: Path, servers: list[Server]) -> None:
    limit = 64 * 1024
    server = Server(tmp_path, "limits", LENSFORGE_MAX_BODY_BYTES=str(limit))
    servers.append(server)
    server.start()
    body = b'{"plugin": "image", "tool": "info", "inputs": {"image": "' + b"A" * (limit * 2)
    body += b'"}}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        streamed = client.post("/v1/analyze", content=chunks(), headers=headers)
        assert streamed.request.headers.get("transfer-encoding") == "chunked"
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["error"]["code"] == "payload_too_large"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        declared = client.post("/v1/analyze", content=body, headers=headers)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"
    # still serving, and no request left a traceback behind
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    server.terminate()
    assert "Traceback" not in server.log.read_text()
