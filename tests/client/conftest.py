"""A real LensForge server (``python -m tests.launch_mcp http``) for the client and CLI tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]


def start_server(tmp_path: Path) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "LENSFORGE_PORT": str(port),
        "LENSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'lensforge.db'}",
        "LENSFORGE_DATA_DIR": str(tmp_path / "data"),
        "LENSFORGE_EXECUTOR": "local",
        "LENSFORGE_WORKERS": "2",
        "LENSFORGE_POLL_INTERVAL_S": "0.05",
        "LENSFORGE_SHUTDOWN_GRACE_S": "0.5",
        "LENSFORGE_CANCEL_GRACE_S": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.launch_mcp", "http"], cwd=ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Server(url, process)
        except httpx.HTTPError:
            pass
        assert process.poll() is None, "server exited during start-up"
        time.sleep(0.05)
    process.kill()
    raise AssertionError("server did not become ready")


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("client-server"))
    try:
        yield running
    finally:
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(timeout=10)
